// The demo page (`tidings serve --demo`, GET /) in headless Chromium, fed
// by the browser's EventSource through a proxy the test can cut: values
// change by themselves; the publish form's notification comes back through
// the stream; after a cut the badge says reconnecting, and once the
// connection is back the page catches up (Last-Event-ID) to the same last
// event id as a direct subscriber, each event once; a reload resumes from
// the id kept in sessionStorage (lastEventID); an id the hub no longer has
// brings the gap notice. Saves the screenshot docs/demo.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHub, startProxy, launchBrowser, waitFor } from '../lib.mjs';
import { ROOT, demoArgs, sleep, subscribeDirect, watchDemo } from '../demo-lib.mjs';

const SCREENSHOT = process.env.DEMO_SCREENSHOT ?? join(ROOT, 'docs', 'demo.png');

test('the demo page updates, catches up after a cut and a reload, with no duplicate', async () => {
  const hub = await startHub(await demoArgs());
  const proxy = await startProxy(hub.port);
  // Subscribed before the page loads, so it sees everything the page does.
  const direct = await subscribeDirect(hub.url);
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (msg) => {
      // The cuts are meant to fail requests; anything else is a problem.
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource: net::')) problems.push(msg.text());
    });
    // Every stream request the page makes, with the headers it sent.
    // Every stream request the page makes, with the headers it sent.
    const { streams, sent, badge, state, caughtUp } = watchDemo(page, direct);

    await page.goto(`${proxy.url}/`);
    await waitFor(async () => (await badge()) === 'open', 10000, 'the badge to say open');
    assert.equal((await sent()).length, 1);
    assert.ok(!new URL(streams[0].url).searchParams.has('lastEventID'), 'a first visit asks for live events only');

    // Values change by themselves: the clock, and the prices.
    const clock = await page.textContent('#clock-time');
    await waitFor(async () => (await page.textContent('#clock-time')) !== clock && !(await page.textContent('#clock-time')).includes('-'), 5000, 'the clock to tick');
    await waitFor(async () => (await page.locator('#prices tr').count()) === 5, 10000, 'five symbols');
    const prices = await page.locator('#prices .price').allTextContents();
    await waitFor(async () => {
      const now = await page.locator('#prices .price').allTextContents();
      return now.some((p, i) => p !== prices[i]);
    }, 10000, 'a price to change');
    await waitFor(async () => (await page.locator('#matches .match').count()) === 3, 10000, 'three matches');

    // The form publishes through /publish; the stream brings it back.
    await page.fill('#publish-text', 'Hello from the browser test');
    await page.selectOption('#publish-level', 'success');
    await page.click('#publish button[type=submit]');
    const published = await waitFor(() => page.getAttribute('#publish-result', 'data-id'), 5000, 'the publish reply');
    const note = page.locator(`#notes li[data-id="${published}"]`);
    await waitFor(() => note.count(), 5000, 'the published notification in the feed');
    assert.match(await note.textContent(), /Hello from the browser test/);
    assert.ok(direct.ids.includes(published), 'a direct subscriber got it too');

    // Cut the connection: the badge says so, nothing arrives meanwhile.
    await waitFor(caughtUp, 5000, 'the page to be level with a direct subscriber');
    proxy.cut();
    await waitFor(async () => (await badge()) === 'reconnecting', 10000, 'the badge to say reconnecting');
    const cutAt = (await state()).lastEventId;
    const missedFrom = direct.ids.length;
    await sleep(3000);
    assert.equal((await state()).lastEventId, cutAt, 'nothing arrives while cut');
    assert.ok(direct.ids.length - missedFrom >= 5, 'the demo kept publishing meanwhile');

    // Restore: the browser reconnects with Last-Event-ID and catches up.
    proxy.restore();
    await waitFor(async () => (await badge()) === 'open', 15000, 'the reconnection');
    const reconnect = (await sent()).at(-1);
    assert.equal(reconnect.headers['last-event-id'], cutAt, 'the browser resumes from its last event id');
    await waitFor(caughtUp, 10000, 'the catch-up');
    let s = await state();
    assert.equal(s.duplicates, 0);
    assert.ok(s.ids.includes(direct.ids[missedFrom]), 'what was published during the cut arrived');
    // The page shows its last event id: rendered at the next frame while
    // the demo keeps publishing, so both are read at once, until they agree.
    await waitFor(
      () => page.evaluate(() => document.getElementById('last-id').textContent === window.tidingsDemo.state.lastEventId),
      5000,
      'the page to show its last event id',
    );

    // Reload: the page resumes from the id it kept, with its state.
    const before = s.ids;
    await page.reload();
    await waitFor(async () => (await badge()) === 'open', 10000, 'the badge after the reload');
    const resumedFrom = new URL((await sent()).at(-1).url).searchParams.get('lastEventID');
    s = await waitFor(caughtUp, 10000, 'the catch-up after the reload');
    assert.ok(s.ids.includes(resumedFrom), `the reload resumes from a seen id (${resumedFrom})`);
    assert.deepEqual(s.ids.slice(0, before.length), before, 'the state survived the reload');
    assert.equal(s.duplicates, 0);
    assert.equal(s.received, s.ids.length, 'every event applied once');
    assert.ok(s.resumes >= 2);
    await waitFor(async () => (await page.locator('#notes li.note').count()) >= 2, 15000, 'notifications');

    // A moment for the last flash to fade, then the README's screenshot.
    await sleep(400);
    mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });

    // An id the hub never made: the gap notice, and the page starts over
    // from the history the hub keeps.
    await page.evaluate(() => {
      const saved = JSON.parse(sessionStorage.getItem('tidings-demo'));
      saved.lastEventId = 'urn:tidings:1';
      sessionStorage.setItem('tidings-demo', JSON.stringify(saved));
      window.tidingsDemo.save = () => {}; // keep the doctored state through pagehide
    });
    await page.reload();
    await waitFor(() => page.isVisible('#notice'), 10000, 'the gap notice');
    assert.match(await page.textContent('#notice-text'), /urn:tidings:1/);
    s = await waitFor(async () => {
      const now = await state();
      return now.gaps === 1 && now.lastEventId === direct.lastId() ? now : null;
    }, 10000, 'the rebuilt page');
    assert.equal(s.duplicates, 0);
    assert.equal(await page.locator('#prices tr').count(), 5);

    assert.deepEqual(problems, [], 'no script errors');
  } finally {
    direct.close();
    await browser.close();
    await proxy.close();
    await hub.stop();
  }
});
