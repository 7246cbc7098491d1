// The operator page (`tidings serve --ui`, GET /ui/) in headless Chromium,
// against a hub with a JWT key and --subscriptions: the page asks for a
// token and keeps it out of every URL; a subscriber connecting elsewhere
// appears in the live list (API, then subscription events from its
// lastEventID) and disappears when it leaves; a publish from the form
// reaches a subscriber and the page's own console, which shows the raw
// event with its id. Saves the screenshot docs/ui.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHub, launchBrowser, waitFor } from '../lib.mjs';
import { ROOT, sleep } from '../demo-lib.mjs';
import { FetchEventSource } from '../../crates/tidings-http/assets/sse.mjs';

const SCREENSHOT = process.env.UI_SCREENSHOT ?? join(ROOT, 'docs', 'ui.png');
const SECRET = 'e2e-secret-for-the-operator-page-0123456789';
const TEMPLATE = '/.well-known/mercure/subscriptions{/topic}{/subscriber}';

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An HS256 JWT with `mercure` claims. */
function jwt(mercure) {
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ mercure })}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

/** A subscriber from Node to `topic`; resolves once its stream is open. */
async function subscriber(hubUrl, topic, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const source = new FetchEventSource(`${hubUrl}/.well-known/mercure?topic=${encodeURIComponent(topic)}`, { headers, retry: 200 });
  const events = [];
  for (const type of ['message', 'headline']) {
    source.addEventListener(type, (e) => events.push({ id: e.lastEventId, data: e.data }));
  }
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the subscriber did not open')), 10000);
    source.addEventListener('open', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return { events, close: () => source.close() };
}

test('the operator page lists subscribers live, publishes and shows raw events', async () => {
  const hub = await startHub(['--memory', '--jwt-key', SECRET, '--subscriptions', '--ui']);
  const operator = jwt({ subscribe: [TEMPLATE, 'https://example.com/{+path}'], publish: ['*'] });
  const browser = await launchBrowser();
  const others = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(msg.text());
    });
    const requests = [];
    page.on('request', (request) => requests.push({ url: request.url(), headers: request.headers() }));

    await page.goto(`${hub.url}/ui/`);
    // The hub has a key: the page asks for a token.
    await waitFor(() => page.isVisible('#token-form'), 10000, 'the token prompt');
    await page.fill('#token', operator);
    await page.click('#token-form button[type=submit]');
    await waitFor(async () => (await page.getAttribute('#live', 'data-state')) === 'open', 10000, 'the live list');
    const own = await page.evaluate(() => window.tidingsUi.list.state);
    assert.ok(own.fetched >= 1);

    // A subscriber elsewhere appears; it leaves, it is gone.
    const payload = { user: 'https://example.com/users/ann' };
    const visitor = await subscriber(hub.url, 'https://example.com/rooms/{room}', jwt({ subscribe: [], payload }));
    others.push(visitor);
    const row = page.locator('#subscriptions tr[data-topic="https://example.com/rooms/{room}"]');
    await waitFor(() => row.count(), 10000, 'the visitor in the list');
    assert.match(await row.locator('.payload').textContent(), /users\/ann/);
    assert.match(await row.getAttribute('data-subscriber'), /^urn:uuid:[0-9a-f-]{36}$/);
    const applied = (await page.evaluate(() => window.tidingsUi.list.state)).applied;
    assert.ok(applied >= 1, 'it came by a subscription event, not a refetch');
    visitor.close();
    await waitFor(async () => (await row.count()) === 0, 10000, 'the visitor to leave the list');

    // The console subscribes; the form publishes; a subscriber elsewhere
    // and the console get it, with the id the form was answered.
    const reader = await subscriber(hub.url, 'https://example.com/news');
    others.push(reader);
    await page.fill('#console-topics', 'https://example.com/{+path}');
    await page.click('#console-toggle');
    await waitFor(async () => (await page.getAttribute('#console-state', 'data-state')) === 'open', 10000, 'the console stream');
    await page.fill('#pub-type', 'headline');
    await page.click('#publish button[type=submit]');
    const published = await waitFor(() => page.getAttribute('#publish-result', 'data-id'), 10000, 'the publish reply');
    assert.match(published, /^urn:tidings:\d+$/);
    await waitFor(() => reader.events.some((e) => e.id === published), 10000, 'the publish at the other subscriber');
    const entry = page.locator(`#console-log li[data-id="${published}"]`);
    await waitFor(() => entry.count(), 10000, 'the raw event in the console');
    assert.equal(await entry.locator('.type').textContent(), 'headline');
    assert.match(await entry.locator('pre').textContent(), /Hello from the operator page/);
    // Without a token a publish of a private update is refused... by the
    // hub, not the page; here the token allows it: private works too.
    await page.check('#pub-private');
    await page.fill('#pub-data', 'private news');
    await page.click('#publish button[type=submit]');
    await waitFor(async () => (await page.getAttribute('#publish-result', 'data-id')) !== published, 10000, 'the second reply');
    const second = await page.getAttribute('#publish-result', 'data-id');
    await waitFor(() => page.locator(`#console-log li[data-id="${second}"]`).count(), 10000, 'the private event in the console');
    await sleep(300);
    assert.ok(!reader.events.some((e) => e.id === second), 'an anonymous subscriber does not get the private update');

    // A subscriber that stays, for the picture.
    others.push(await subscriber(hub.url, 'https://example.com/books/{id}', jwt({ subscribe: [], payload: { user: 'bob' } })));
    await waitFor(() => page.locator('#subscriptions tr[data-topic="https://example.com/books/{id}"]').count(), 10000, 'the second visitor');
    await sleep(700);
    mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });

    // The token never went into a URL; it went in the Authorization header.
    assert.ok(requests.length > 0);
    assert.ok(requests.every((r) => !r.url.includes(operator)), 'no URL carries the token');
    const api = requests.filter((r) => r.url.includes('/.well-known/mercure'));
    assert.ok(api.some((r) => r.headers.authorization === `Bearer ${operator}`), 'sent as a header');
    assert.deepEqual(problems, [], 'no script errors');
  } finally {
    for (const other of others) other.close();
    await browser.close();
    await hub.stop();
  }
});

test('without --ui or --demo there is no operator page; with --ui and without --subscriptions it says so', async () => {
  const plain = await startHub(['--memory']);
  try {
    const response = await fetch(`${plain.url}/ui/`);
    assert.equal(response.status, 404);
  } finally {
    await plain.stop();
  }
  const hub = await startHub(['--memory', '--ui']);
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.goto(`${hub.url}/ui/`);
    await waitFor(async () => /--subscriptions/.test(await page.textContent('#list-note')), 10000, 'the note');
    assert.equal(await page.isVisible('#token-form'), false, 'dev mode asks for no token');
  } finally {
    await browser.close();
    await hub.stop();
  }
});
