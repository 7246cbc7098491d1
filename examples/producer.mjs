#!/usr/bin/env node
// A producer in Node (20+, built-in fetch, no packages): publishes a few
// stock prices to a running Tidings hub, as JSON this time (the hub takes
// form encoding or JSON; non-string `data` is sent on as compact JSON).
// The events have the demo's shape (type `price` on
// https://demo.tidings.dev/prices/NODE), so the demo page shows a NODE row.
//
//   node examples/producer.mjs [HUB_URL]     default http://127.0.0.1:8080
//   COUNT=20 INTERVAL=0.5 node examples/producer.mjs
//   TOKEN=<publisher JWT> node examples/producer.mjs https://hub.example
//
// Prints the id the hub gave each event.

const hub = process.argv[2] ?? 'http://127.0.0.1:8080';
const count = Number(process.env.COUNT ?? 5);
const interval = Number(process.env.INTERVAL ?? 1);
const headers = { 'Content-Type': 'application/json' };
if (process.env.TOKEN) headers.Authorization = `Bearer ${process.env.TOKEN}`;

const open = 250;
let price = open;
for (let i = 0; i < count; i++) {
  price = Math.max(1, Math.round(price * (1 + (Math.random() - 0.5) * 0.01) * 100) / 100);
  const change = Math.round((price - open) * 100) / 100;
  const response = await fetch(`${hub}/publish`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      topic: 'https://demo.tidings.dev/prices/NODE',
      type: 'price',
      data: { symbol: 'NODE', name: 'Node producer', price, open, change, changePct: Math.round((change * 10000) / open) / 100, time: Date.now() },
    }),
  });
  const reply = await response.text();
  if (!response.ok) {
    console.error(`publish failed: ${response.status} ${reply}`);
    process.exit(1);
  }
  console.log(reply);
  if (i + 1 < count) await new Promise((resolve) => setTimeout(resolve, interval * 1000));
}
