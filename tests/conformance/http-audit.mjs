// The GraphQL over HTTP audit of graphql-http against a running server.
// Usage: node http-audit.mjs http://127.0.0.1:PORT/graphql
// Prints one JSON object per line: {id, name, status, reason?}; exits 0 whatever the results,
// so that the caller judges them (every MUST passes; SHOULDs are reported).
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node http-audit.mjs <graphql endpoint URL>');
  process.exit(2);
}

const results = await auditServer({ url });
for (const result of results) {
  const { id, name, status } = result;
  const line = { id, name, status };
  if (status !== 'ok') {
    line.reason = result.reason;
    line.responseStatus = result.response?.status;
  }
  console.log(JSON.stringify(line));
}
