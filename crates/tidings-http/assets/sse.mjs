// Server-Sent Events over fetch(): a streaming parser that follows the
// WHATWG HTML "Parsing an event stream" algorithm, and a client with
// EventSource's behaviour (reconnection, `retry`, `Last-Event-ID`) that
// can also send headers, another method or a body, which EventSource
// cannot. No DOM: it runs in browsers and in Node 18+ alike (hence .mjs:
// Node loads it as an ES module without a package.json).

/**
 * The event-stream parser. Feed it the body's bytes in any chunking; it
 * calls `onEvent({ type, data, lastEventId })` for each dispatched event,
 * `onRetry(ms)` for each valid `retry` field and `onComment(text)` for
 * comments.
 */
export class EventStreamParser {
  constructor({ onEvent = () => {}, onRetry = () => {}, onComment = () => {}, lastEventId = '' } = {}) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.onComment = onComment;
    // UTF-8 decode as the spec says: invalid bytes become U+FFFD, and one
    // leading byte order mark is dropped (TextDecoder's default, across
    // chunk boundaries too). A second BOM is content.
    this.decoder = new TextDecoder('utf-8');
    /** The part of the current line received so far. */
    this.line = '';
    /** The last chunk ended with CR: a LF starting the next one ends nothing. */
    this.skipLF = false;
    this.data = '';
    this.eventType = '';
    /**
     * The last event ID buffer. It starts from the client's last event id,
     * as browsers do on reconnection, so an event without `id` keeps it.
     */
    this.idBuffer = lastEventId;
    /** The last event ID string: set from the buffer at each dispatch. */
    this.lastEventId = lastEventId;
  }

  /** Parses the next bytes of the body. */
  feed(bytes) {
    this.push(this.decoder.decode(bytes, { stream: true }));
  }

  /**
   * The body ended. An unfinished line and an undispatched event are
   * discarded, as the spec says.
   */
  end() {
    this.push(this.decoder.decode());
    this.line = '';
    this.data = '';
    this.eventType = '';
  }

  /** Parses decoded text. */
  push(text) {
    let start = 0;
    if (this.skipLF && text.length > 0) {
      this.skipLF = false;
      if (text.charCodeAt(0) === 10) start = 1;
    }
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.line + text.slice(start, i);
      this.line = '';
      if (c === 13) {
        if (i + 1 === text.length) this.skipLF = true;
        else if (text.charCodeAt(i + 1) === 10) i += 1;
      }
      start = i + 1;
      this.processLine(line);
    }
    this.line += text.slice(start);
  }

  processLine(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) {
      this.onComment(line.slice(1));
      return;
    }
    let field = line;
    let value = '';
    if (colon > 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + (line.charCodeAt(colon + 1) === 32 ? 2 : 1));
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data += `${value}\n`;
        break;
      case 'id':
        if (!value.includes('\0')) this.idBuffer = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.onRetry(Number.parseInt(value, 10));
        break;
      default:
        break;
    }
  }

  dispatch() {
    this.lastEventId = this.idBuffer;
    if (this.data === '') {
      this.eventType = '';
      return;
    }
    const data = this.data.endsWith('\n') ? this.data.slice(0, -1) : this.data;
    const type = this.eventType || 'message';
    this.data = '';
    this.eventType = '';
    this.onEvent({ type, data, lastEventId: this.lastEventId });
  }
}

/**
 * `text` as UTF-8 bytes, one character per byte: the form fetch() takes
 * header values in (the spec sends Last-Event-ID as UTF-8).
 */
function byteString(text) {
  return String.fromCharCode(...new TextEncoder().encode(text));
}

/** Whether a Content-Type is text/event-stream (parameters ignored). */
export function isEventStream(contentType) {
  const essence = String(contentType ?? '').split(';')[0].trim().toLowerCase();
  return essence === 'text/event-stream';
}

/**
 * An EventSource over fetch(). Events: `open` (with `response`), `error`
 * (with `fatal`, `status`, `error`), and one per SSE type (`message` when
 * none), each with `data` and `lastEventId`.
 *
 * Reconnection follows EventSource: after the stream ends or the network
 * fails, wait the reconnection time (the last `retry`, else `retry` here)
 * and reconnect with a `Last-Event-ID` header. Attempts that fail before
 * the stream opens back off exponentially up to `maxRetry`. A status other
 * than 200 or a Content-Type other than text/event-stream fails the
 * connection for good (readyState CLOSED), as EventSource does.
 */
export class FetchEventSource extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;

  constructor(url, { headers = {}, method = 'GET', body, lastEventId = '', retry = 3000, maxRetry = 30000, fetch: fetchImpl } = {}) {
    super();
    this.url = url;
    this.headers = headers;
    this.method = method;
    this.body = body;
    this.lastEventId = lastEventId;
    this.retry = retry;
    this.maxRetry = maxRetry;
    this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.readyState = FetchEventSource.CONNECTING;
    /** Attempts that failed since the last open, for the backoff. */
    this.failures = 0;
    this.abort = null;
    this.run();
  }

  close() {
    this.readyState = FetchEventSource.CLOSED;
    this.abort?.abort();
  }

  emit(type, fields) {
    const event = new Event(type);
    Object.assign(event, fields);
    this.dispatchEvent(event);
  }

  async run() {
    while (this.readyState !== FetchEventSource.CLOSED) {
      const opened = await this.connect();
      if (this.readyState === FetchEventSource.CLOSED) return;
      this.failures = opened ? 0 : this.failures + 1;
      this.readyState = FetchEventSource.CONNECTING;
      const wait = opened ? this.retry : Math.min(this.retry * 2 ** (this.failures - 1), this.maxRetry);
      this.emit('error', { fatal: false, retryIn: wait });
      await this.sleep(wait);
    }
  }

  /** One connection; resolves to whether the stream opened. */
  async connect() {
    this.abort = new AbortController();
    const headers = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache', ...this.headers };
    if (this.lastEventId) headers['Last-Event-ID'] = byteString(this.lastEventId);
    let response;
    try {
      response = await this.fetch(this.url, {
        method: this.method,
        body: this.body,
        headers,
        cache: 'no-store',
        signal: this.abort.signal,
      });
    } catch (error) {
      return false;
    }
    if (response.status !== 200 || !isEventStream(response.headers.get('content-type'))) {
      this.readyState = FetchEventSource.CLOSED;
      response.body?.cancel().catch(() => {});
      this.emit('error', { fatal: true, status: response.status });
      return false;
    }
    this.readyState = FetchEventSource.OPEN;
    this.emit('open', { response });
    const parser = new EventStreamParser({
      lastEventId: this.lastEventId,
      onEvent: (e) => {
        this.lastEventId = e.lastEventId;
        if (this.readyState === FetchEventSource.OPEN) this.emit(e.type, { data: e.data, lastEventId: e.lastEventId });
      },
      onRetry: (ms) => {
        this.retry = ms;
      },
    });
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(value);
        if (this.readyState === FetchEventSource.CLOSED) break;
      }
    } catch {
      // The network failed mid-stream: reconnect like at the end.
    }
    parser.end();
    // What the last dispatch committed, also for id-only blocks.
    this.lastEventId = parser.lastEventId;
    return true;
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.abort = { abort: () => { clearTimeout(timer); resolve(); } };
    });
  }
}
