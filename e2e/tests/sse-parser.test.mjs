// The demo's fetch() transport (crates/tidings-http/assets/sse.mjs) against
// the SSE conformance vectors (conformance/ at the repository root): the parser fed as given, byte by
// byte and whole; then the client against a real loopback server that
// serves each vector, checking what it dispatches, when it fails the
// connection, and the Last-Event-ID it sends when it reconnects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventStreamParser, FetchEventSource } from '../../crates/tidings-http/assets/sse.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const vectorsPath = process.env.SSE_VECTORS ?? join(here, '..', '..', 'conformance', 'sse-vectors.json');
const { vectors } = JSON.parse(readFileSync(vectorsPath, 'utf8'));

/** Every event type some vector dispatches. */
const allTypes = new Set(['message', ...vectors.flatMap((v) => v.events.map((e) => e.type))]);

function chunksOf(vector) {
  return vector.chunks_b64.map((c) => new Uint8Array(Buffer.from(c, 'base64')));
}

function parse(chunks) {
  const events = [];
  let retry = null;
  const parser = new EventStreamParser({
    onEvent: (e) => events.push({ type: e.type, data: e.data, id: e.lastEventId }),
    onRetry: (ms) => {
      retry = ms;
    },
  });
  for (const chunk of chunks) parser.feed(chunk);
  parser.end();
  return { events, retry, lastEventId: parser.lastEventId };
}

test('the parser passes every vector in every chunking', () => {
  assert.equal(vectors.length, 53);
  let checked = 0;
  for (const v of vectors) {
    if (v.expect_fail_connection) continue;
    const chunks = chunksOf(v);
    const whole = Buffer.concat(chunks);
    const bytewise = [...whole].map((b) => new Uint8Array([b]));
    for (const [how, feed] of [['as given', chunks], ['byte by byte', bytewise], ['whole', [new Uint8Array(whole)]]]) {
      const got = parse(feed);
      assert.deepEqual(got.events, v.events, `${v.name} (${how}): events`);
      assert.equal(got.retry, v.retry_ms, `${v.name} (${how}): retry`);
      assert.equal(got.lastEventId, v.last_event_id_after_eof, `${v.name} (${how}): last event id`);
      checked += 1;
    }
  }
  assert.ok(checked >= 3 * 40, `only ${checked} runs`);
});

test('a CR at the end of one chunk and a LF at the start of the next are one line break', () => {
  const got = parse([new TextEncoder().encode('data: a\r'), new TextEncoder().encode('\ndata: b\r\n\r\n')]);
  assert.deepEqual(got.events, [{ type: 'message', data: 'a\nb', id: '' }]);
});

/**
 * Serves `vector` on the first request of each path; answers 204 (which
 * ends an EventSource for good) to the next, recording its Last-Event-ID.
 */
async function vectorServer() {
  const requests = new Map();
  const server = http.createServer(async (req, res) => {
    const name = decodeURIComponent(req.url.slice(1));
    const seen = requests.get(name) ?? [];
    requests.set(name, seen);
    const header = req.headers['last-event-id'];
    // Node reads header bytes as Latin-1: back to the UTF-8 they were.
    seen.push(header === undefined ? null : Buffer.from(header, 'latin1').toString('utf8'));
    const v = vectors.find((x) => x.name === name);
    if (!v || seen.length > 1) {
      res.writeHead(204).end();
      return;
    }
    res.writeHead(v.status, { 'content-type': v.content_type });
    for (const chunk of chunksOf(v)) {
      res.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, requests, close: () => new Promise((r) => server.close(r)) };
}

/** Runs the client on one vector until it closes; resolves to what it saw. */
function runClient(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const events = [];
    const source = new FetchEventSource(url, { retry: 20 });
    const timer = setTimeout(() => {
      source.close();
      reject(new Error(`${url}: the client did not close within ${timeoutMs} ms`));
    }, timeoutMs);
    const record = (e) => events.push({ type: e.type, data: e.data, id: e.lastEventId });
    for (const type of allTypes) source.addEventListener(type, record);
    let opens = 0;
    source.addEventListener('open', () => {
      opens += 1;
    });
    source.addEventListener('error', (e) => {
      if (e.fatal) {
        clearTimeout(timer);
        resolve({ events, opens, status: e.status });
      }
    });
  });
}

test('the client dispatches, fails and reconnects as EventSource does', async () => {
  const server = await vectorServer();
  try {
    const runs = vectors.map(async (v) => {
      const got = await runClient(`${server.url}/${encodeURIComponent(v.name)}`, 15000);
      const requests = server.requests.get(v.name);
      if (v.expect_fail_connection) {
        assert.deepEqual(got.events, [], `${v.name}: no events`);
        assert.equal(got.opens, 0, `${v.name}: never open`);
        assert.equal(requests.length, 1, `${v.name}: no reconnection`);
        return;
      }
      assert.equal(got.opens, 1, v.name);
      assert.deepEqual(got.events, v.events, `${v.name}: events`);
      // The stream ended: one reconnection, with the right Last-Event-ID
      // (none when the last event id is empty), answered 204.
      assert.equal(requests.length, 2, `${v.name}: one reconnection`);
      assert.equal(requests[0], null, `${v.name}: no Last-Event-ID at first`);
      const expected = v.last_event_id_after_eof === '' ? null : v.last_event_id_after_eof;
      assert.equal(requests[1], expected, `${v.name}: Last-Event-ID`);
      assert.equal(got.status, 204);
    });
    await Promise.all(runs);
  } finally {
    await server.close();
  }
});

test('the client backs off while the server is unreachable', async () => {
  // A port with nothing behind it: bind, learn the port, close.
  const probe = http.createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  const waits = [];
  const source = new FetchEventSource(`http://127.0.0.1:${port}/`, { retry: 10, maxRetry: 80 });
  await new Promise((resolve) => {
    source.addEventListener('error', (e) => {
      waits.push(e.retryIn);
      if (waits.length === 6) {
        source.close();
        resolve();
      }
    });
  });
  assert.deepEqual(waits, [10, 20, 40, 80, 80, 80]);
  assert.equal(source.readyState, FetchEventSource.CLOSED);
});
