// GraphiQL in headless Chromium with every request to another host blocked: the page must
// load from bankql alone, run a query with a token from the Headers tab, and show the result;
// then run a subscription and show the line a deposit made.
// Usage: node browser.mjs http://127.0.0.1:8000 screenshot.png
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, screenshot] = process.argv.slice(2);
const email = `browser-${Date.now()}@example.com`;

async function graphql(query, variables, bearer) {
  const headers = { 'content-type': 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(`${base}/graphql`, {
    method: 'POST', headers, body: JSON.stringify({ query, variables }),
  });
  return (await response.json()).data;
}

const registered = await graphql(
  'mutation($i: RegisterInput!) { register(input: $i) { ... on AuthPayload { token } } }',
  { i: { email, password: 'a browser password' } },
);
const token = registered.register.token;
const opened = await graphql(
  'mutation { openAccount(input: {name: "Live", currency: "EUR"}) { ... on AccountPayload { account { id } } } }',
  {},
  token,
);
const accountId = opened.openAccount.account.id;

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'bankql-')), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  ],
  viewport: { width: 1280, height: 800 },
});
const ownHost = new URL(base).host;
const blocked = [];
await context.route('**/*', (route) => {
  const url = new URL(route.request().url());
  if (url.host === ownHost || url.protocol === 'data:') return route.continue();
  blocked.push(url.href);
  return route.abort();
});

const page = await context.newPage();
const pageErrors = [];
page.on('pageerror', (error) => pageErrors.push(String(error)));
await page.goto(`${base}/graphql`, { waitUntil: 'networkidle' });
await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 30000 });

await page.evaluate(() => {
  document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror
    .setValue('{ viewer { email role } }');
});
await page.getByText('Headers', { exact: true }).click();
await page.evaluate((bearer) => {
  const headers = document.querySelector(
    '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror',
  );
  headers.CodeMirror.setValue(JSON.stringify({ Authorization: `Bearer ${bearer}` }));
}, token);
// GraphiQL takes up an edited header on its next render; run until the result shows it.
for (let attempt = 0; attempt < 10; attempt += 1) {
  await page.click('.graphiql-execute-button');
  try {
    await page.waitForFunction(
      (expected) => (document.querySelector('.result-window')?.textContent ?? '').includes(expected),
      email,
      { timeout: 1000 },
    );
    break;
  } catch {
    // not yet: the first run may have gone out with the old headers
  }
}
const result = await page.evaluate(
  () => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue(),
);

// The same tab and token, now for a subscription: deposit until its first line shows.
await page.evaluate((id) => {
  document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(
    `subscription { accountEntries(accountId: "${id}") { amount { amount } transaction { kind } } }`,
  );
}, accountId);
// As with headers, GraphiQL parses an edited document on its next render: until it has,
// it sends the subscription as an HTTP request, which bankql refuses; then run it again.
const shownNow = () => page.evaluate(
  () => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue(),
);
for (let attempt = 0; attempt < 10; attempt += 1) {
  await page.click('.graphiql-execute-button');
  await page.waitForTimeout(300);
  if (!(await shownNow()).includes('not allowed when using POST')) break;
}
let live = '';
for (let cents = 1; cents < 30 && !live.includes('accountEntries'); cents += 1) {
  await graphql(
    'mutation($i: DepositInput!) { deposit(input: $i) { __typename } }',
    { i: { accountId, amount: { amount: `0.${String(cents).padStart(2, '0')}`, currency: 'EUR' } } },
    token,
  );
  try {
    await page.waitForFunction(
      () => (document.querySelector('.result-window')?.textContent ?? '').includes('accountEntries'),
      null,
      { timeout: 1000 },
    );
  } catch {
    // not live yet: the next deposit will show
  }
  live = await shownNow();
}
await page.screenshot({ path: screenshot });
await context.close();

const shown = JSON.parse(result);
const line = live.includes('accountEntries') ? JSON.parse(live).data.accountEntries : null;
const ok = shown.data?.viewer?.email === email && line?.transaction?.kind === 'DEPOSIT'
  && pageErrors.length === 0;
console.log(`result: ${result.replace(/\s+/g, ' ')}`);
console.log(`subscription: ${live.replace(/\s+/g, ' ')}`);
console.log(`blocked requests to other hosts: ${blocked.length ? blocked.join(', ') : 'none'}`);
if (pageErrors.length) console.log(`page errors: ${pageErrors.join('; ')}`);
console.log(`${ok ? 1 : 0} passed, ${ok ? 0 : 1} failed`);
process.exit(ok ? 0 : 1);
