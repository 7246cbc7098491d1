// A browser's own EventSource against the hub: published and named events
// arrive, and after the connection is cut it reconnects with Last-Event-ID
// and gets exactly what it missed, no more, no less.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, startProxy, launchBrowser, publish, waitFor } from '../lib.mjs';

test('EventSource receives, reconnects and catches up exactly', async () => {
  const hub = await startHub();
  const proxy = await startProxy(hub.port);
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    // The page comes through the proxy too, so the stream is same-origin.
    await page.goto(`${proxy.url}/`);
    await page.evaluate(() => {
      window.received = [];
      window.opens = 0;
      window.errors = 0;
      const source = new EventSource('/.well-known/mercure?topic=' + encodeURIComponent('https://e2e.test/{thing}'));
      const record = (e) => window.received.push({ type: e.type, data: e.data, id: e.lastEventId });
      source.onmessage = record;
      source.addEventListener('greeting', record);
      source.onopen = () => {
        window.opens += 1;
      };
      source.onerror = () => {
        window.errors += 1;
      };
      window.source = source;
    });
    await waitFor(() => page.evaluate(() => window.opens === 1), 10000, 'the stream to open');

    const published = [];
    const send = async (fields) => {
      const id = await publish(hub.url, fields);
      published.push({ type: fields.type ?? 'message', data: fields.data, id });
    };
    await send({ topic: 'https://e2e.test/a', data: 'plain message' });
    await send({ topic: 'https://e2e.test/b', data: 'named event', type: 'greeting' });
    await send({ topic: 'https://e2e.test/x', data: 'line one\nline two' });
    await publish(hub.url, { topic: 'https://elsewhere.test/a', data: 'not for this page' });
    await waitFor(() => page.evaluate((n) => window.received.length >= n, published.length), 10000, 'live events');

    // Cut the connection; publish while the browser is away.
    proxy.cut();
    await waitFor(() => page.evaluate(() => window.errors >= 1), 10000, 'the browser to notice');
    assert.equal(await page.evaluate(() => window.source.readyState), 0, 'CONNECTING');
    for (let i = 0; i < 3; i++) {
      await send({ topic: 'https://e2e.test/missed', data: `missed ${i}` });
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    proxy.restore();
    await waitFor(() => page.evaluate(() => window.opens === 2), 15000, 'the reconnection');
    await send({ topic: 'https://e2e.test/after', data: 'live again' });
    await waitFor(() => page.evaluate((n) => window.received.length >= n, published.length), 10000, 'the catch-up');
    // Nothing more arrives: no duplicates.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const received = await page.evaluate(() => window.received);
    assert.deepEqual(received, published);
  } finally {
    await browser.close();
    await proxy.close();
    await hub.stop();
  }
});
