// Shared pieces of the browser tests: start the real hub, a TCP proxy that
// can cut connections, and headless Chromium.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The hub binary: $TIDINGS_BIN, or the release build. */
export const BIN = process.env.TIDINGS_BIN ?? join(root, 'target', 'release', 'tidings');

/** `env` without RUST_LOG and TIDINGS_LOG. */
function withoutLogFilters(env) {
  const { RUST_LOG: _rust, TIDINGS_LOG: _tidings, ...rest } = env;
  return rest;
}

/**
 * Starts `tidings serve` on a free loopback port with `args`; resolves to
 * { url, port, child, stop() } once it listens.
 */
export async function startHub(args = []) {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-e2e-'));
  // A fresh history directory per hub, unless the test chose a store.
  const chosen = args.includes('--memory') || args.includes('--data-dir');
  const storeArgs = chosen || !(await supports('--data-dir')) ? [] : ['--data-dir', dir];
  const child = spawn(
    BIN,
    ['serve', '--listen', '127.0.0.1:0', '--log-json', ...storeArgs, ...args],
    // The `listening` line is read from the log: a filter from the
    // tester's environment must not hide it.
    { stdio: ['ignore', 'ignore', 'pipe'], env: withoutLogFilters(process.env) },
  );
  const lines = createInterface({ input: child.stderr });
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the hub did not start')), 15000);
    child.once('exit', (code) => reject(new Error(`the hub exited with ${code}`)));
    lines.on('line', (line) => {
      try {
        const { fields } = JSON.parse(line);
        if (fields?.message === 'listening') {
          clearTimeout(timer);
          resolve(fields.address);
        }
      } catch {
        // Not JSON: ignore.
      }
    });
  });
  const port = Number(address.split(':').pop());
  return {
    url: `http://${address}`,
    port,
    child,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether `tidings serve` has the flag `name`. */
async function supports(name) {
  const help = spawn(BIN, ['serve', '--help'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let text = '';
  help.stdout.on('data', (chunk) => {
    text += chunk;
  });
  await new Promise((resolve) => help.once('exit', resolve));
  return text.includes(name);
}

/**
 * A TCP proxy on a free loopback port to `target` (a port number). `cut()`
 * destroys every proxied connection and refuses new ones until `restore()`.
 */
export async function startProxy(target) {
  const sockets = new Set();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    cut() {
      refusing = true;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    restore() {
      refusing = false;
    },
    async close() {
      this.cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Headless Debian Chromium. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Publishes a form-encoded update; resolves to the id. */
export async function publish(hubUrl, fields) {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(fields)) {
    for (const v of [].concat(value)) body.append(name, v);
  }
  const response = await fetch(`${hubUrl}/.well-known/mercure`, { method: 'POST', body });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`publish failed: ${response.status} ${text}`);
  return text;
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function waitFor(check, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
