// Pieces shared by the demo's tests (tests/demo*.test.mjs, examples,
// cross-origin): flags the built hub has, a direct subscription to compare
// the page with, running example scripts.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN } from './lib.mjs';
import { FetchEventSource } from '../crates/tidings-http/assets/sse.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What the demo page subscribes to. */
export const DEMO_SELECTORS = [
  'https://demo.tidings.dev/prices/{symbol}',
  'https://demo.tidings.dev/scores/{match}',
  'https://demo.tidings.dev/notifications',
  'https://demo.tidings.dev/clock',
];

const helpText = new Promise((resolve) => {
  const help = spawn(BIN, ['serve', '--help'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let text = '';
  help.stdout.on('data', (chunk) => {
    text += chunk;
  });
  help.once('error', () => resolve(''));
  help.once('exit', () => resolve(text));
});

/** Whether `tidings serve` has the flag `name` (e.g. `--cors-origin`). */
export async function supports(name) {
  return new RegExp(`(^|\\s)${name}[\\s=]`, 'm').test(await helpText);
}

/** The flags of a demo hub: `--demo`, and `--memory` where it exists. */
export async function demoArgs() {
  return (await supports('--memory')) ? ['--demo', '--memory'] : ['--demo'];
}

/**
 * Subscribes from Node to `selectors` on the hub at `hubUrl` (directly, not
 * through a page or proxy), resuming after `lastEventId` if given (e.g.
 * `earliest`). Resolves once the stream is open to
 * { events, ids, lastId(), close() }.
 */
export async function subscribeDirect(hubUrl, selectors = DEMO_SELECTORS, types = ['price', 'score', 'notification', 'clock', 'message'], lastEventId = '') {
  const query = new URLSearchParams();
  for (const s of selectors) query.append('topic', s);
  const source = new FetchEventSource(`${hubUrl}/.well-known/mercure?${query}`, { retry: 200, lastEventId });
  const events = [];
  for (const type of types) {
    source.addEventListener(type, (e) => events.push({ type, data: e.data, id: e.lastEventId }));
  }
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the direct subscription did not open')), 10000);
    source.addEventListener('open', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return {
    events,
    get ids() {
      return events.map((e) => e.id);
    },
    lastId: () => events.at(-1)?.id ?? '',
    close: () => source.close(),
  };
}

/**
 * Runs `command args` with `env` added; resolves to { code, stdout, stderr }
 * (rejects after `ms`, killing it).
 */
export function run(command, args, { env = {}, ms = 30000, cwd = ROOT } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${ms} ms\n${stdout}\n${stderr}`));
    }, ms);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Whether `page` (the ids the page applied, in order) is a run of
 * `direct` (every id a direct subscriber saw): the same ids in the same
 * order, none missing in between, none twice.
 */
export function isRunOf(page, direct) {
  if (page.length === 0 || new Set(page).size !== page.length) return false;
  const start = direct.indexOf(page[0]);
  if (start < 0) return false;
  return page.every((id, i) => direct[start + i] === id);
}

/** At most this many events open a fresh page: the demo's retained updates (5 prices, 3 matches). */
export const MAX_SNAPSHOT = 8;

/**
 * Whether `page` (the ids the page applied, in order) is what a fresh
 * subscription gets: a snapshot of retained updates (at most
 * MAX_SNAPSHOT events, in the order of `direct`, all before what follows),
 * then a run of `direct` (see isRunOf). A page that resumed has no snapshot.
 */
export function isSnapshotThenRun(page, direct) {
  if (page.length === 0 || new Set(page).size !== page.length) return false;
  const last = direct.indexOf(page.at(-1));
  if (last < 0) return false;
  let i = page.length - 1;
  let j = last;
  while (i > 0 && j > 0 && page[i - 1] === direct[j - 1]) {
    i -= 1;
    j -= 1;
  }
  if (i > MAX_SNAPSHOT) return false;
  let before = -1;
  for (const id of page.slice(0, i)) {
    const at = direct.indexOf(id);
    if (at <= before || at >= j) return false;
    before = at;
  }
  return true;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Watches the page's stream requests (to the hub URL) and gives probes of the
 * demo page: `streams` (url, resource type, headers sent), `sent()` (the
 * streams once their headers are known), `badge()` (the connection badge's
 * state), `state()` (the page's `window.tidingsDemo.state`) and `caughtUp()`
 * (that state when the page has exactly what `direct` has since the page's
 * snapshot of retained updates, else null).
 */
export function watchDemo(page, direct) {
  const streams = [];
  const pending = [];
  page.on('request', (request) => {
    if (!request.url().includes('/.well-known/mercure')) return;
    const entry = { url: request.url(), type: request.resourceType(), headers: {} };
    streams.push(entry);
    // What was sent; a request that failed may only have what was asked.
    const headers = request.allHeaders().catch(() => request.headers());
    pending.push(headers.then((h) => {
      entry.headers = h;
    }));
  });
  const sent = async () => {
    await Promise.all(pending);
    return streams;
  };
  const badge = () => page.getAttribute('#status', 'data-state');
  const state = () => page.evaluate(() => window.tidingsDemo.state);
  const caughtUp = async () => {
    const s = await state();
    return s.lastEventId === direct.lastId() && isSnapshotThenRun(s.ids, direct.ids) ? s : null;
  };
  return { streams, sent, badge, state, caughtUp };
}
