// Retained updates in the browser: the demo's prices and scores are
// published with `retain`, so a page opened between two ticks is filled at
// once, from the hub's snapshot, not by the next tick. The demo ticks once
// a minute here (`--demo-tick-ms 60000`), so "before the next tick" holds
// by construction: a direct subscriber sees nothing new meanwhile. The
// `id: HEAD` block after the snapshot sets Chromium's EventSource last
// event id without dispatching anything: after a cut, the browser
// reconnects with `Last-Event-ID: HEAD`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, startProxy, launchBrowser, waitFor } from '../lib.mjs';
import { demoArgs, sleep, subscribeDirect, supports } from '../demo-lib.mjs';

test('a fresh page shows the current prices and scores within a second, before the next tick', async (t) => {
  if (!(await supports('--demo-tick-ms'))) {
    t.skip('this hub has no --demo-tick-ms');
    return;
  }
  const hub = await startHub([...(await demoArgs()), '--demo-tick-ms', '60000']);
  const proxy = await startProxy(hub.port);
  const browser = await launchBrowser();
  let history = null;
  try {
    // The first tick publishes every price and every match at once; then
    // nothing for a minute. Everything the hub holds, from the start:
    history = await subscribeDirect(hub.url, undefined, undefined, 'earliest');
    await waitFor(
      () => history.events.filter((e) => e.type === 'price').length === 5 && history.events.filter((e) => e.type === 'score').length === 3,
      10000,
      'the first tick',
    );
    await sleep(300);
    const heldBefore = history.ids.slice();
    const head = history.lastId();

    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(err.message));
    const requests = [];
    page.on('request', (request) => {
      if (request.url().includes('/.well-known/mercure')) requests.push(request);
    });
    await page.goto(`${proxy.url}/`);
    const loaded = Date.now();
    await waitFor(
      async () => (await page.locator('#prices tr').count()) === 5 && (await page.locator('#matches .match').count()) === 3,
      1000,
      'five prices and three matches within a second of load',
    );
    const filledIn = Date.now() - loaded;
    const state = await page.evaluate(() => window.tidingsDemo.state);
    // Nothing was published meanwhile: the page was filled by the snapshot.
    assert.deepEqual(history.ids, heldBefore, 'no tick happened');
    assert.equal(state.received, 8, 'the 8 retained updates, each once, and nothing for the HEAD block');
    assert.equal(state.duplicates, 0);
    const prices = history.events.filter((e) => e.type === 'price').map((e) => e.id);
    const scores = history.events.filter((e) => e.type === 'score').map((e) => e.id);
    assert.deepEqual([...state.ids].sort(), [...prices, ...scores].sort());
    assert.ok(!new URL(requests[0].url()).searchParams.has('lastEventID'), 'a first visit does not resume');

    // Chromium took HEAD as its last event id: after a cut it resumes from it.
    proxy.cut();
    await waitFor(async () => (await page.getAttribute('#status', 'data-state')) === 'reconnecting', 10000, 'the cut');
    proxy.restore();
    await waitFor(async () => (await page.getAttribute('#status', 'data-state')) === 'open', 15000, 'the reconnection');
    const reconnect = requests.at(-1);
    const headers = await reconnect.allHeaders();
    assert.equal(headers['last-event-id'], head, 'the browser resumes from HEAD, the newest event when it subscribed');
    await sleep(300);
    const after = await page.evaluate(() => window.tidingsDemo.state);
    assert.equal(after.received, 8, 'the resume brought nothing twice');
    assert.deepEqual(problems, []);
    t.diagnostic(`filled ${filledIn} ms after the load event`);
  } finally {
    history?.close?.();
    await browser.close();
    await proxy.close();
    await hub.stop();
  }
});
