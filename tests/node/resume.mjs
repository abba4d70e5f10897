// A live statement that survives a dropped connection, as the README shows it: the client
// remembers the last line it saw and, on reconnecting, resumes after it. Lines committed
// while it was away come first, then new ones; none is missed or shown twice.
// Usage: node resume.mjs http://127.0.0.1:8000/graphql
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.argv[2];
let passed = 0;
let failed = 0;
function check(what, condition, detail) {
  if (condition) {
    passed += 1;
  } else {
    failed += 1;
    console.log(`FAIL ${what}: ${JSON.stringify(detail)}`);
  }
}

let token = null;
async function run(query, variables) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

const registered = await run(
  `mutation ($input: RegisterInput!) { register(input: $input) { ... on AuthPayload { token } } }`,
  { input: { email: `resume-${Date.now()}@example.com`, password: 'a client password' } },
);
token = registered.register.token;
const opened = await run(
  `mutation ($input: OpenAccountInput!) { openAccount(input: $input) {
     ... on AccountPayload { account { id entries(first: 1) { edges { node { id } } } } } } }`,
  { input: { name: 'Main', currency: 'EUR', initialDeposit: '1' } },
);
const account = opened.openAccount.account;
const deposit = (amount) => run(
  `mutation ($input: DepositInput!) { deposit(input: $input) { __typename } }`,
  { input: { accountId: account.id, amount: { amount, currency: 'EUR' } } },
);

// Each socket the client opens, so that the test can cut the current one.
const sockets = [];
class TrackedWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    sockets.push(this);
  }
}

// --- The client, as an app would write it --------------------------------------------------
const LIVE = `subscription Live($id: ID!, $after: ID) {
  accountEntries(accountId: $id, afterEntryId: $after) { id amount { amount } } }`;
const client = createClient({
  url: url.replace(/^http/, 'ws'),
  webSocketImpl: TrackedWebSocket,
  connectionParams: () => ({ Authorization: `Bearer ${token}` }),
  // Reconnecting is this loop's job: it resumes after the last line it saw, where the
  // client's own retry would subscribe again from the first line asked for.
  retryAttempts: 0,
});
const seen = [];
let lastSeen = account.entries.edges[0].node.id; // resume after the opening deposit
let stopped = false;
let connections = 0;
async function follow() {
  while (!stopped) {
    connections += 1;
    try {
      const lines = client.iterate({ query: LIVE, variables: { id: account.id, after: lastSeen } });
      for await (const { data } of lines) {
        lastSeen = data.accountEntries.id;
        seen.push(data.accountEntries);
      }
    } catch {
      // A dropped connection: wait a moment, then resume after lastSeen.
    }
    if (!stopped) await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
// ---------------------------------------------------------------------------------------------

const until = async (condition, what) => {
  for (let waited = 0; waited < 20000; waited += 50) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  console.log(`FAIL waiting for ${what}: saw ${JSON.stringify(seen)}`);
  return false;
};

const following = follow();
for (const amount of ['2.00', '3.00', '4.00']) await deposit(amount);
check('lines arrive', await until(() => seen.length >= 3, 'three lines'), seen);

sockets.at(-1).terminate(); // the connection drops, with no closing handshake
for (const amount of ['5.00', '6.00', '7.00']) await deposit(amount); // while it is away
check('it reconnects', await until(() => connections >= 2, 'a reconnect'), connections);
for (const amount of ['8.00', '9.00']) await deposit(amount);
check('every line arrives', await until(() => seen.length >= 8, 'eight lines'), seen);

await new Promise((resolve) => setTimeout(resolve, 500)); // room for a line shown twice
stopped = true;
await client.dispose();
await following;
const amounts = seen.map((line) => line.amount.amount);
check('each line once, in order', JSON.stringify(amounts) === JSON.stringify(
  ['2.00', '3.00', '4.00', '5.00', '6.00', '7.00', '8.00', '9.00'],
), amounts);
check('distinct lines', new Set(seen.map((line) => line.id)).size === seen.length, seen);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
