// The GraphQL-over-HTTP server audit (every MUST and SHOULD) against a running bankql.
// Usage: node audit.mjs http://127.0.0.1:8000/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}
const results = await auditServer({ url });
const failed = results.filter((result) => result.status !== 'ok');
for (const result of failed) {
  console.log(`FAIL [${result.id}] ${result.name}: ${result.reason}`);
}
console.log(`${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
