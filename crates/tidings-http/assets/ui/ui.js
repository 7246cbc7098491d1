// The operator page (`tidings serve --ui`): the live list of active
// subscriptions, a publish form and a subscribe console.
//
// The list is built the way the Mercure protocol means it: fetch the
// subscriptions API, then subscribe to the subscription events from the
// API's `lastEventID`, so that nothing is lost in between, and apply each
// event (active: add, inactive: remove). Streams go through fetch() and the
// parser of /assets/sse.mjs, so that a token travels in the Authorization
// header: never in a URL, where proxies and logs would keep it.
import { FetchEventSource } from '/assets/sse.mjs';

const HUB = '/.well-known/mercure';
const API = '/.well-known/mercure/subscriptions';
const EVENTS = '/.well-known/mercure/subscriptions{/topic}{/subscriber}';

const $ = (id) => document.getElementById(id);

/** The token, in this tab's memory only. */
let token = '';

const headers = () => (token ? { Authorization: `Bearer ${token}` } : {});

/** A FetchEventSource that also reports every event, whatever its type. */
class AnyEventSource extends FetchEventSource {
  emit(type, fields) {
    super.emit(type, fields);
    if (type !== 'open' && type !== 'error') super.emit('any', { ...fields, eventType: type });
  }
}

function setBadge(el, state, text = state) {
  el.dataset.state = state;
  el.textContent = text;
}

// ---- the list ---------------------------------------------------------

const list = {
  /** id → document. */
  subs: new Map(),
  source: null,
  poll: null,
  /** What the page did, for people and tests. */
  state: { lastEventID: null, applied: 0, fetched: 0 },

  render() {
    const body = $('subscriptions');
    const rows = [...this.subs.values()].sort((a, b) => a.topic.localeCompare(b.topic) || a.subscriber.localeCompare(b.subscriber));
    body.replaceChildren(...rows.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.id = s.id;
      tr.dataset.topic = s.topic;
      tr.dataset.subscriber = s.subscriber;
      for (const [text, cls] of [[s.topic, 'topic'], [s.subscriber, 'subscriber'], [s.payload === undefined ? '' : JSON.stringify(s.payload), 'payload']]) {
        const td = document.createElement('td');
        td.className = cls;
        td.textContent = text;
        td.title = text;
        tr.append(td);
      }
      return tr;
    }));
    $('count').textContent = String(this.subs.size);
    $('list-empty').hidden = this.subs.size > 0;
  },

  apply(doc) {
    if (doc.type !== 'Subscription' || typeof doc.id !== 'string') return;
    if (doc.active) this.subs.set(doc.id, doc);
    else this.subs.delete(doc.id);
    this.state.applied += 1;
    this.render();
  },

  stop() {
    this.source?.close();
    this.source = null;
    clearInterval(this.poll);
    this.poll = null;
  },

  /** Fetches the list; then follows the events from its lastEventID. */
  async start() {
    this.stop();
    setBadge($('live'), 'connecting');
    let response;
    try {
      response = await fetch(API, { headers: headers(), cache: 'no-store' });
    } catch (err) {
      setBadge($('live'), 'error');
      $('list-note').textContent = `Cannot reach the hub: ${err.message}`;
      setTimeout(() => this.start(), 2000);
      return;
    }
    if (response.status === 401) {
      setBadge($('live'), 'locked', 'token needed');
      askForToken(token ? 'The hub refused this token.' : '');
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      setBadge($('live'), 'off');
      $('list-note').textContent = body.error ?? `The subscriptions API answered ${response.status}.`;
      return;
    }
    this.state.fetched += 1;
    this.state.lastEventID = body.lastEventID;
    $('list-last-id').textContent = body.lastEventID;
    this.subs = new Map(body.subscriptions.map((s) => [s.id, s]));
    this.render();
    if (!token) {
      // Dev mode: subscription events are private, and private updates
      // reach nobody without a subscriber key. Poll instead.
      $('list-note').textContent = 'Dev mode (no subscriber key): subscription events are private and reach nobody, so the list is fetched again every 2 s.';
      setBadge($('live'), 'open', 'polling');
      this.poll = setInterval(() => this.refresh(), 2000);
      return;
    }
    $('list-note').textContent = '';
    const url = `${HUB}?topic=${encodeURIComponent(EVENTS)}&lastEventID=${encodeURIComponent(body.lastEventID)}`;
    const source = new FetchEventSource(url, { headers: headers(), retry: 1000 });
    this.source = source;
    source.addEventListener('open', () => setBadge($('live'), 'open', 'live'));
    source.addEventListener('error', (e) => {
      if (e.fatal) {
        setBadge($('live'), 'error');
        $('list-note').textContent = `The subscription events stream was refused (${e.status}).`;
      } else if (this.source === source) {
        // The stream broke: the hub may have restarted without a goodbye,
        // so the list is fetched again rather than resumed.
        setBadge($('live'), 'connecting', 'reconnecting');
        source.close();
        this.source = null;
        setTimeout(() => this.start(), 1000);
      }
    });
    source.addEventListener('message', (e) => {
      this.state.lastEventID = e.lastEventId;
      $('list-last-id').textContent = e.lastEventId;
      try {
        this.apply(JSON.parse(e.data));
      } catch {
        // Not a subscription document: not for the list.
      }
    });
  },

  async refresh() {
    try {
      const response = await fetch(API, { headers: headers(), cache: 'no-store' });
      if (!response.ok) return;
      const body = await response.json();
      this.state.fetched += 1;
      this.state.lastEventID = body.lastEventID;
      $('list-last-id').textContent = body.lastEventID;
      this.subs = new Map(body.subscriptions.map((s) => [s.id, s]));
      this.render();
    } catch {
      // Tried again at the next tick.
    }
  },
};

// ---- the token ----------------------------------------------------------

function askForToken(message) {
  $('token-form').hidden = false;
  $('token-error').textContent = message;
  $('token').focus();
}

function showAuth() {
  setBadge($('auth-state'), token ? 'set' : 'none', token ? 'token set' : 'no token');
  $('forget').hidden = !token;
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  $('token-form').hidden = true;
  showAuth();
  list.start();
});

$('forget').addEventListener('click', () => {
  token = '';
  showAuth();
  consoleStream.stop();
  list.start();
});

// ---- publishing -----------------------------------------------------------

$('publish').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = new URLSearchParams();
  for (const topic of $('pub-topics').value.split('\n').map((t) => t.trim()).filter(Boolean)) form.append('topic', topic);
  form.append('data', $('pub-data').value);
  if ($('pub-type').value.trim()) form.append('type', $('pub-type').value.trim());
  if ($('pub-id').value.trim()) form.append('id', $('pub-id').value.trim());
  if ($('pub-private').checked) form.append('private', 'on');
  if ($('pub-retain').checked) form.append('retain', 'on');
  const result = $('publish-result');
  result.className = 'result';
  try {
    const response = await fetch(HUB, { method: 'POST', headers: headers(), body: form });
    const text = await response.text();
    if (response.ok) {
      result.classList.add('ok');
      result.dataset.id = text;
      result.textContent = `Published: ${text}`;
    } else {
      let message = text;
      try {
        message = JSON.parse(text).error ?? text;
      } catch {
        // Not JSON: shown as it is.
      }
      result.classList.add('error');
      result.textContent = `${response.status}: ${message}`;
      if (response.status === 401) askForToken('Publishing needs a token.');
    }
  } catch (err) {
    result.classList.add('error');
    result.textContent = `Cannot reach the hub: ${err.message}`;
  }
});

// ---- the console ------------------------------------------------------------

const consoleStream = {
  source: null,
  events: [],

  stop() {
    this.source?.close();
    this.source = null;
    setBadge($('console-state'), 'closed');
    $('console-toggle').textContent = 'Subscribe';
  },

  start() {
    const selectors = $('console-topics').value.split(/\s+/).filter(Boolean);
    if (selectors.length === 0) return;
    const query = new URLSearchParams();
    for (const s of selectors) query.append('topic', s);
    const last = $('console-last').value.trim();
    if (last) query.append('lastEventID', last);
    const source = new AnyEventSource(`${HUB}?${query}`, { headers: headers(), retry: 1000 });
    this.source = source;
    setBadge($('console-state'), 'connecting');
    $('console-toggle').textContent = 'Close';
    source.addEventListener('open', () => setBadge($('console-state'), 'open'));
    source.addEventListener('error', (e) => {
      if (e.fatal) {
        this.log({ eventType: 'error', lastEventId: '', data: `the hub answered ${e.status}` });
        this.stop();
      } else {
        setBadge($('console-state'), 'connecting', 'reconnecting');
      }
    });
    source.addEventListener('any', (e) => this.log(e));
  },

  log(e) {
    this.events.push({ id: e.lastEventId, type: e.eventType, data: e.data });
    const li = document.createElement('li');
    li.dataset.id = e.lastEventId;
    const head = document.createElement('div');
    head.className = 'head';
    const id = document.createElement('code');
    id.textContent = e.lastEventId || '(no id)';
    const type = document.createElement('span');
    type.className = 'type';
    type.textContent = e.eventType;
    head.append(type, id);
    const data = document.createElement('pre');
    data.textContent = e.data;
    li.append(head, data);
    const log = $('console-log');
    log.prepend(li);
    while (log.children.length > 200) log.lastChild.remove();
  },
};

$('console-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (consoleStream.source) consoleStream.stop();
  else consoleStream.start();
});

window.tidingsUi = { list, console: consoleStream };
showAuth();
list.start();
