// graphql-ws's own client against a running server, as a frontend uses it.
// Usage: node graphql-ws-client.mjs ws://127.0.0.1:PORT/graphql TOKEN ORDER_ID
// Prints one JSON object per line on stdout:
//   {"refused": [...]}          what the client reported for subscriptions refused before they ran
//   {"unauthenticated": {...}}  what a connection without a token got for a subscription
//   {"live": true}              once the order's subscription delivers (the caller then acts)
//   {"events": [...]}           the first three events of the order that are not probes
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, orderId] = process.argv.slice(2);
if (!url || !token || !orderId) {
  console.error('usage: node graphql-ws-client.mjs <websocket URL> <token> <order id>');
  process.exit(2);
}
const print = (line) => console.log(JSON.stringify(line));

function connect(connectionParams) {
  return createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams,
    retryAttempts: 0,
    lazy: true,
  });
}

// What a client's sink sees for one operation: its results, then how it ended.
function run(client, payload) {
  return new Promise((resolve) => {
    const results = [];
    client.subscribe(payload, {
      next: (result) => results.push(result),
      error: (error) => {
        const errors = Array.isArray(error)
          ? error.map((e) => ({ message: e.message, code: e.extensions?.code }))
          : [{ message: String(error.reason ?? error.message ?? error), closeCode: error.code }];
        resolve({ results, ended: 'error', errors });
      },
      complete: () => resolve({ results, ended: 'complete' }),
    });
  });
}

const authorized = connect({ Authorization: `Bearer ${token}` });
const refused = [];
for (const query of [
  'subscription { orderEvents { type }',
  'subscription { orderEvents { nope } }',
  'subscription A { orderEvents { type } } subscription B { orderEvents { type } }',
]) {
  refused.push({ query, ...(await run(authorized, { query })) });
}
print({ refused });

const anonymous = connect({});
print({ unauthenticated: await run(anonymous, { query: 'subscription { orderEvents { type } }' }) });
await anonymous.dispose();

const events = [];
await new Promise((resolve, reject) => {
  let live = false;
  const stop = authorized.subscribe(
    {
      query: 'subscription ($id: ID) { orderEvents(orderId: $id) { type fromStatus toStatus } }',
      variables: { id: orderId },
    },
    {
      next: ({ data, errors }) => {
        if (errors) return reject(new Error(JSON.stringify(errors)));
        if (!live) {
          live = true;
          print({ live: true });
        }
        if (data.orderEvents.type !== 'probe') events.push(data.orderEvents);
        if (events.length === 3) {
          stop();
          resolve();
        }
      },
      error: (error) => reject(error),
      complete: () => resolve(),
    },
  );
});
print({ events });
await authorized.dispose();
