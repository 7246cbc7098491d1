// The demo page's second variant, /fetch.html: the same widgets fed by
// fetch() and the streaming parser of sse.mjs. Values change; after a cut
// it reconnects with a Last-Event-ID header (backing off while refused)
// and catches up to a direct subscriber with no duplicate; after a reload
// it sends the saved id as a header on its very first request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, startProxy, launchBrowser, waitFor } from '../lib.mjs';
import { demoArgs, sleep, subscribeDirect, watchDemo } from '../demo-lib.mjs';

test('the fetch() variant updates, reconnects with Last-Event-ID and catches up exactly', async () => {
  const hub = await startHub(await demoArgs());
  const proxy = await startProxy(hub.port);
  const direct = await subscribeDirect(hub.url);
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(err.message));
    // Every stream request the page makes, with the headers it sent.
    const { streams, sent, badge, state, caughtUp } = watchDemo(page, direct);

    await page.goto(`${proxy.url}/fetch.html`);
    assert.equal(await page.textContent('#variant'), 'fetch()');
    assert.equal(await page.getAttribute('#other-variant', 'href'), '/');
    await waitFor(async () => (await badge()) === 'open', 10000, 'the badge to say open');
    await sent();
    assert.equal(streams[0].type, 'fetch', 'subscribed with fetch(), not EventSource');
    assert.equal(streams[0].headers['last-event-id'], undefined);
    await waitFor(async () => (await page.locator('#prices tr').count()) === 5, 10000, 'five symbols');
    const prices = await page.locator('#prices .price').allTextContents();
    await waitFor(async () => {
      const now = await page.locator('#prices .price').allTextContents();
      return now.some((p, i) => p !== prices[i]);
    }, 10000, 'a price to change');
    await waitFor(caughtUp, 5000, 'the page to be level with a direct subscriber');

    proxy.cut();
    await waitFor(async () => (await badge()) === 'reconnecting', 10000, 'the badge to say reconnecting');
    const cutAt = (await state()).lastEventId;
    await sleep(2500);
    assert.equal((await state()).lastEventId, cutAt, 'nothing arrives while cut');
    const attempts = streams.length;
    proxy.restore();
    await waitFor(async () => (await badge()) === 'open', 15000, 'the reconnection');
    await sent();
    assert.ok(streams.length > attempts, 'a new request after the restore');
    assert.ok(streams.slice(1).every((r) => r.headers['last-event-id'] === cutAt), 'every retry resumes from the last id');
    let s = await waitFor(caughtUp, 10000, 'the catch-up');
    assert.equal(s.duplicates, 0);

    await page.reload();
    await waitFor(async () => (await badge()) === 'open', 10000, 'the badge after the reload');
    const first = (await sent()).at(-1);
    assert.ok(!new URL(first.url).searchParams.has('lastEventID'), 'the id goes in a header, not the query');
    s = await waitFor(caughtUp, 10000, 'the catch-up after the reload');
    assert.ok(s.ids.includes(first.headers['last-event-id']), 'the reload resumes from a seen id');
    assert.equal(s.duplicates, 0);
    assert.equal(s.received, s.ids.length);
    assert.deepEqual(problems, []);
  } finally {
    direct.close();
    await browser.close();
    await proxy.close();
    await hub.stop();
  }
});
