// A frontend's journey through bankql with real GraphQL clients (urql over HTTP, graphql-ws
// for the live statement), as an app would write it: union results switched on __typename,
// and the session kept alive by refreshing on UNAUTHENTICATED, then retrying once.
// Usage: node client.mjs http://127.0.0.1:8000/graphql
// (against a server with a short BANKQL_TOKEN_TTL_SECONDS, so that the token lapses on the way)
import { Client, fetchExchange, gql } from '@urql/core';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.argv[2];
let token = null;
let refreshToken = null;
let expiresAt = null;
let refreshes = 0;
const client = new Client({
  url,
  exchanges: [fetchExchange],
  requestPolicy: 'network-only',
  fetchOptions: () => (token ? { headers: { Authorization: `Bearer ${token}` } } : {}),
});

const REGISTER = gql`
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      __typename
      ... on AuthPayload { token expiresAt refreshToken user { email } }
      ... on Error { message }
    }
  }
`;
const LOGIN = gql`
  mutation Login($input: LoginInput!) {
    login(input: $input) {
      __typename
      ... on AuthPayload { token expiresAt refreshToken }
      ... on Error { message }
    }
  }
`;
const REFRESH = gql`
  mutation Refresh($input: RefreshSessionInput!) {
    refreshSession(input: $input) {
      __typename
      ... on AuthPayload { token expiresAt refreshToken }
      ... on Error { message }
    }
  }
`;
const SIGN_OUT = gql`
  mutation SignOut { signOut { endedSessions } }
`;
// viewer is null, not an error, without a valid token: the protected accounts field is
// what answers UNAUTHENTICATED.
const MINE = gql`
  query Mine { accounts { totalCount } viewer { email sessions { edges { node { current } } } } }
`;
const OPEN = gql`
  mutation Open($input: OpenAccountInput!) {
    openAccount(input: $input) {
      __typename
      ... on AccountPayload { account { id name balance { amount currency } } }
      ... on ValidationError { field message }
    }
  }
`;
const DEPOSIT = gql`
  mutation Deposit($input: DepositInput!) {
    deposit(input: $input) {
      __typename
      ... on MoneyMovement { destinationAccount { balance { amount } } }
      ... on Error { message }
    }
  }
`;
const TRANSFER = gql`
  mutation Transfer($input: TransferInput!) {
    transfer(input: $input) {
      __typename
      ... on MoneyMovement { transaction { id kind } sourceAccount { balance { amount } } }
      ... on InsufficientFunds { available { amount } requested { amount } }
      ... on Error { message }
    }
  }
`;
const STATEMENT = gql`
  query Statement($id: ID!) {
    account(id: $id) {
      name
      balance { amount }
      entries(first: 10) { edges { node { amount { amount } balanceAfter { amount } transaction { kind } } } }
    }
  }
`;

const LIVE = `
  subscription Live($id: ID!) {
    accountEntries(accountId: $id) { amount { amount } balanceAfter { amount } transaction { kind } }
  }
`;

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

function signedIn(payload) {
  ({ token, refreshToken, expiresAt } = payload);
}

// One refresh at a time, shared by every request that needs it: a refresh token works once,
// and two refreshes with it would end the session.
let refreshing = null;
function refresh() {
  refreshing ??= (async () => {
    const result = await client.mutation(REFRESH, { input: { refreshToken } }).toPromise();
    const payload = result.data?.refreshSession;
    if (payload?.__typename !== 'AuthPayload') throw new Error('signed out: sign in again');
    refreshes += 1;
    signedIn(payload);
  })().finally(() => { refreshing = null; });
  return refreshing;
}

const unauthenticated = (result) => result.error?.graphQLErrors
  ?.some((error) => error.extensions?.code === 'UNAUTHENTICATED');

// A request, sent again once after a refresh when the access token was refused.
async function send(operation, document, variables) {
  let result = await client[operation](document, variables).toPromise();
  if (unauthenticated(result) && refreshToken) {
    await refresh();
    result = await client[operation](document, variables).toPromise();
  }
  if (result.error) throw result.error;
  return result.data;
}
const run = (document, variables) => send('mutation', document, variables);
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
// Until the access token has lapsed, as it does while an app sits idle.
const untilLapsed = () => sleep(Math.max(0, Date.parse(expiresAt) - Date.now()) + 1100);

const email = `client-${Date.now()}@example.com`;
const password = 'a client password';
const registered = (await run(REGISTER, { input: { email, password } })).register;
check('register', registered.__typename === 'AuthPayload', registered);
const again = (await run(REGISTER, { input: { email, password } })).register;
check('register twice', again.__typename === 'EmailAlreadyRegistered', again);

const login = (await run(LOGIN, { input: { email, password } })).login;
check('login', login.__typename === 'AuthPayload', login);
signedIn(login);

// The access token lapses; the next request is refused, refreshes, and goes through.
await untilLapsed();
const spent = refreshToken;
const mine = await send('query', MINE);
check('refreshed on UNAUTHENTICATED and retried', refreshes === 1
  && mine.viewer?.email === email && mine.accounts.totalCount === 0 && refreshToken !== spent,
{ refreshes, mine });
// Two sessions: register's and login's, newest (this one) first.
check('sessions listed, this one current', JSON.stringify(mine.viewer.sessions.edges)
  === JSON.stringify([{ node: { current: true } }, { node: { current: false } }]),
mine.viewer.sessions);

const checking = (await run(OPEN, { input: { name: 'Checking', currency: 'EUR' } })).openAccount;
check('open checking', checking.__typename === 'AccountPayload', checking);
const savings = (await run(OPEN, { input: { name: 'Savings', currency: 'EUR' } })).openAccount;
const bad = (await run(OPEN, { input: { name: ' ', currency: 'EUR' } })).openAccount;
check('validation error', bad.__typename === 'ValidationError' && bad.field === 'name', bad);

const deposit = (
  await run(DEPOSIT, {
    input: { accountId: checking.account.id, amount: { amount: '100.25', currency: 'EUR' } },
  })
).deposit;
check('deposit', deposit.__typename === 'MoneyMovement'
  && deposit.destinationAccount.balance.amount === '100.25', deposit);

// The savings account's live statement. A subscription sends what commits after it began,
// which a client cannot see, so marker deposits go in until the first one comes back.
// A stream lasts as long as the access token it signed in with: start it on a fresh one.
await refresh();
const received = [];
let wake = null;
const sockets = createClient({
  url: url.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  connectionParams: () => ({ Authorization: `Bearer ${token}` }),
});
const unsubscribe = sockets.subscribe({ query: LIVE, variables: { id: savings.account.id } }, {
  next: ({ data, errors }) => { received.push(errors ? { errors } : data.accountEntries); wake?.(); },
  error: (error) => { received.push({ error: String(error) }); wake?.(); },
  complete: () => {},
});
const nextLine = (waitMs) => new Promise((resolve) => {
  if (received.length) { resolve(received.shift()); return; }
  const timer = setTimeout(() => { wake = null; resolve(null); }, waitMs);
  wake = () => { clearTimeout(timer); wake = null; resolve(received.shift()); };
});
const markers = [];
let live = null;
for (let cents = 1; cents < 40 && !live; cents += 1) {
  markers.push(`0.${String(cents).padStart(2, '0')}`);
  const amount = { amount: markers.at(-1), currency: 'EUR' };
  await run(DEPOSIT, { input: { accountId: savings.account.id, amount } });
  live = await nextLine(500);
}
check('subscription goes live', markers.includes(live?.amount?.amount), live);
for (const marker of markers.slice(markers.indexOf(live?.amount?.amount) + 1)) {
  const line = await nextLine(10000);
  check('each marker once, in order', line?.amount?.amount === marker, line);
}
const markedCents = (markers.length * (markers.length + 1)) / 2;

const transferInput = (amount) => ({
  input: {
    sourceAccountId: checking.account.id,
    destinationAccountId: savings.account.id,
    amount: { amount, currency: 'EUR' },
    idempotencyKey: `move-${amount}`,
  },
});
const moved = (await run(TRANSFER, transferInput('40'))).transfer;
check('transfer', moved.__typename === 'MoneyMovement'
  && moved.sourceAccount.balance.amount === '60.25', moved);
const replay = (await run(TRANSFER, transferInput('40'))).transfer;
check('idempotent replay', replay.transaction?.id === moved.transaction.id, replay);
const overdraw = (await run(TRANSFER, transferInput('1000'))).transfer;
check('insufficient funds', overdraw.__typename === 'InsufficientFunds'
  && overdraw.available.amount === '60.25', overdraw);

const incoming = await nextLine(10000);
const savingsCents = markedCents + 4000;
check('the live statement shows the transfer alone', JSON.stringify(incoming) === JSON.stringify({
  amount: { amount: '40.00' },
  balanceAfter: { amount: `${Math.floor(savingsCents / 100)}.${String(savingsCents % 100).padStart(2, '0')}` },
  transaction: { kind: 'TRANSFER' },
}), incoming);
unsubscribe();
await sockets.dispose();

await untilLapsed();
const before = refreshes;
const statement = await send('query', STATEMENT, { id: checking.account.id });
check('refreshed again after the second lapse', refreshes === before + 1, refreshes);
const lines = statement.account.entries.edges.map(({ node }) => [
  node.transaction.kind, node.amount.amount, node.balanceAfter.amount,
]);
check('statement', JSON.stringify(lines) === JSON.stringify([
  ['TRANSFER', '-40.00', '60.25'], ['DEPOSIT', '100.25', '100.25'],
]), lines);

// Signing out ends the session: its access token is refused at once, and so is the
// refresh token, so the client has to sign in again.
const out = (await run(SIGN_OUT)).signOut;
check('sign out', out.endedSessions === 1, out);
const afterwards = await send('query', MINE).then(() => 'served', (error) => error.message);
check('signed out for good', afterwards === 'signed out: sign in again', afterwards);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
