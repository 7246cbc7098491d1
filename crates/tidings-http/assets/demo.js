// The demo page's state and rendering, whatever the transport that feeds
// it (the browser's EventSource, or fetch() with the parser of sse.mjs).
//
// State is applied idempotently: every event id is remembered (a bounded
// window), an event whose id was already applied is dropped and counted,
// so the page can show that resuming brings no duplicate. The state and
// the last event id are saved together in sessionStorage, so a reload
// resumes exactly where the saved state ends.

export const BASE = 'https://demo.tidings.dev';
/** What the page subscribes to: URI templates, matched by the hub. */
export const SELECTORS = [
  `${BASE}/prices/{symbol}`,
  `${BASE}/scores/{match}`,
  `${BASE}/notifications`,
  `${BASE}/clock`,
];
/** The SSE types the page renders. */
export const TYPES = ['price', 'score', 'notification', 'clock'];
/** The hub's in-band notice that the requested id is no longer in history. */
export const GAP = 'tidings.gap';

const STORAGE_KEY = 'tidings-demo';
const STATE_VERSION = 1;
/** Event ids remembered for deduplication (and shown to tests). */
const KEEP_IDS = 2000;
/** Prices kept per symbol for the sparkline. */
const KEEP_POINTS = 60;
/** Notifications kept in the feed. */
const KEEP_NOTES = 30;

function emptyState() {
  return {
    version: STATE_VERSION,
    lastEventId: '',
    received: 0,
    duplicates: 0,
    resumes: 0,
    gaps: 0,
    ids: [],
    prices: {},
    matches: {},
    notes: [],
    clock: null,
  };
}

function loadState() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null');
    if (saved && saved.version === STATE_VERSION) return { ...emptyState(), ...saved };
  } catch {
    // Unreadable or unavailable storage: start afresh.
  }
  return null;
}

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function signed(x) {
  return `${x > 0 ? '+' : x < 0 ? '−' : '±'}${Math.abs(x).toFixed(2)}`;
}

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

function restartAnimation(node, className) {
  node.classList.remove(className);
  void node.offsetWidth; // a reflow, so that the animation starts again
  node.classList.add(className);
}

export class Demo {
  /**
   * @param {string} transport what feeds the page, for display:
   *   'EventSource' or 'fetch()'.
   */
  constructor(transport) {
    this.transport = transport;
    const saved = loadState();
    this.state = saved ?? emptyState();
    /** Whether this page load resumes a saved state. */
    this.resuming = Boolean(saved && saved.lastEventId);
    this.seen = new Set(this.state.ids);
    this.dirty = { prices: new Set(Object.keys(this.state.prices)), matches: true, notes: true, clock: true };
    this.flash = new Map();
    this.goals = new Set();
    this.fresh = new Set();
    this.scheduled = false;
    this.opens = 0;
    /** Called by the Disconnect/Connect button; set by the transport. */
    this.onToggle = null;

    $('variant').textContent = transport;
    const other = $('other-variant');
    if (transport === 'EventSource') {
      other.href = '/fetch.html';
      other.textContent = 'Same page over fetch()';
    } else {
      other.href = '/';
      other.textContent = 'Same page over EventSource';
    }
    $('toggle').addEventListener('click', () => this.onToggle?.());
    $('notice-close').addEventListener('click', () => {
      $('notice').hidden = true;
    });
    $('publish').addEventListener('submit', (e) => {
      e.preventDefault();
      this.publish();
    });
    window.addEventListener('pagehide', () => this.save());
    this.describe();
    this.render();
  }

  /** The subscription URL; with `resume`, it asks to resume after the saved id. */
  subscribeUrl(resume) {
    const query = new URLSearchParams();
    for (const selector of SELECTORS) query.append('topic', selector);
    if (resume && this.state.lastEventId) query.set('lastEventID', this.state.lastEventId);
    return `/.well-known/mercure?${query}`;
  }

  /** The transport's state: connecting, open, reconnecting or closed. */
  setStatus(status) {
    const badge = $('status');
    badge.dataset.state = status;
    badge.textContent = status;
    $('toggle').textContent = status === 'closed' ? 'Connect' : 'Disconnect';
    if (status === 'open') {
      this.opens += 1;
      // A second open (a reconnection), or a first one after a reload
      // with a saved id, resumes from an id.
      if (this.opens > 1 || this.resuming) {
        this.state.resumes += 1;
        this.schedule();
      }
    }
  }

  /** One event from the stream. */
  receive(type, data, id) {
    if (type === GAP) {
      this.gap(data);
      return;
    }
    if (id && this.seen.has(id)) {
      this.state.duplicates += 1;
      this.schedule();
      return;
    }
    let body = null;
    try {
      body = JSON.parse(data);
    } catch {
      // Not JSON: counted, not rendered.
    }
    if (body && typeof body === 'object') this.apply(type, body, id);
    this.state.received += 1;
    if (id) {
      this.seen.add(id);
      this.state.ids.push(id);
      if (this.state.ids.length > KEEP_IDS) this.seen.delete(this.state.ids.shift());
      this.state.lastEventId = id;
    }
    this.schedule();
  }

  apply(type, body, id) {
    const s = this.state;
    switch (type) {
      case 'price': {
        const symbol = String(body.symbol ?? '?');
        const before = s.prices[symbol];
        const history = before ? before.history : [];
        history.push(Number(body.price));
        if (history.length > KEEP_POINTS) history.shift();
        s.prices[symbol] = { ...body, symbol, history };
        if (before) this.flash.set(symbol, Number(body.price) >= Number(before.price) ? 'flash-up' : 'flash-down');
        this.dirty.prices.add(symbol);
        break;
      }
      case 'score': {
        const pitch = String(body.pitch ?? body.match);
        if (Array.isArray(body.goals) && body.goals.length > 0) this.goals.add(pitch);
        const before = s.matches[pitch];
        const lastGoal = body.goals?.at?.(-1) ?? (before && before.match === body.match ? before.lastGoal : null);
        s.matches[pitch] = { ...body, lastGoal };
        this.dirty.matches = true;
        break;
      }
      case 'notification':
        s.notes.unshift({ ...body, id });
        if (s.notes.length > KEEP_NOTES) s.notes.length = KEEP_NOTES;
        this.fresh.add(id);
        this.dirty.notes = true;
        break;
      case 'clock':
        s.clock = body;
        this.dirty.clock = true;
        break;
      default:
        break;
    }
  }

  /** The hub lost history after our id: start over from what it keeps. */
  gap(data) {
    let info = {};
    try {
      info = JSON.parse(data);
    } catch {
      // Keep the defaults.
    }
    const gaps = this.state.gaps + 1;
    const resumes = this.state.resumes;
    this.state = { ...emptyState(), gaps, resumes };
    this.seen.clear();
    this.dirty = { prices: new Set(), matches: true, notes: true, clock: true };
    $('prices').replaceChildren();
    $('notice-text').replaceChildren(
      el('strong', '', 'History gap. '),
      `The hub no longer has the events after ${info.lastEventId ?? 'the saved id'} (${info.reason ?? 'unknown'}): ` +
        'the page was reset and is rebuilt from the history the hub still keeps.',
    );
    $('notice').hidden = false;
    this.schedule();
  }

  /** Publishes a notification through the hub's /publish alias (form encoded). */
  async publish() {
    const input = $('publish-text');
    const result = $('publish-result');
    const text = input.value.trim();
    if (!text) return;
    const body = new URLSearchParams({
      topic: `${BASE}/notifications`,
      type: 'notification',
      data: JSON.stringify({ text, level: $('publish-level').value, from: 'you', time: Date.now() }),
    });
    result.classList.remove('error');
    try {
      const response = await fetch('/publish', { method: 'POST', body });
      const reply = await response.text();
      if (!response.ok) {
        let message = reply;
        try {
          message = JSON.parse(reply).error ?? reply;
        } catch {
          // Not JSON: show it as it is.
        }
        throw new Error(`${response.status}: ${message}`);
      }
      result.textContent = `Published as ${reply}: it appears below when the stream brings it back.`;
      result.dataset.id = reply;
      input.value = '';
    } catch (err) {
      result.classList.add('error');
      result.textContent = `Not published (${err.message}).`;
    }
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      this.render();
      this.save();
    };
    // Hidden pages get no animation frames: render less often instead.
    if (document.hidden) setTimeout(run, 250);
    else requestAnimationFrame(run);
  }

  save() {
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.state));
    } catch {
      // Storage full or unavailable: resuming after a reload starts afresh.
    }
  }

  render() {
    const s = this.state;
    $('last-id').textContent = s.lastEventId || 'none yet';
    $('received').textContent = String(s.received);
    $('duplicates').textContent = String(s.duplicates);
    $('resumes').textContent = String(s.resumes);
    $('gaps').textContent = String(s.gaps);
    for (const symbol of this.dirty.prices) this.renderPrice(symbol);
    this.dirty.prices.clear();
    $('prices-empty').hidden = Object.keys(s.prices).length > 0;
    if (this.dirty.matches) this.renderMatches();
    if (this.dirty.notes) this.renderNotes();
    if (this.dirty.clock) this.renderClock();
    this.dirty.matches = this.dirty.notes = this.dirty.clock = false;
  }

  renderPrice(symbol) {
    const p = this.state.prices[symbol];
    const body = $('prices');
    let row = body.querySelector(`tr[data-symbol="${CSS.escape(symbol)}"]`);
    if (!row) {
      row = el('tr');
      row.dataset.symbol = symbol;
      const name = el('td', 'sym', symbol);
      name.append(el('small'));
      const spark = el('td', 'spark');
      spark.append(el('canvas'));
      row.append(name, el('td', 'num price'), el('td', 'num chg'), spark);
      // Keep the rows sorted by symbol.
      const after = [...body.children].find((r) => r.dataset.symbol > symbol);
      body.insertBefore(row, after ?? null);
    }
    const [name, price, change, spark] = row.children;
    name.querySelector('small').textContent = p.name ?? '';
    price.textContent = Number(p.price).toFixed(2);
    const direction = p.change > 0 ? 'up' : p.change < 0 ? 'down' : '';
    change.className = `num chg ${direction}`;
    change.textContent = `${p.change > 0 ? '▲' : p.change < 0 ? '▼' : ''} ${signed(Number(p.change))}`;
    const pct = el('small', '', `${signed(Number(p.changePct))} %`);
    change.append(pct);
    drawSparkline(spark.firstChild, p.history, direction);
    const flash = this.flash.get(symbol);
    if (flash) {
      row.classList.remove('flash-up', 'flash-down');
      restartAnimation(row, flash);
      this.flash.delete(symbol);
    }
  }

  renderMatches() {
    const box = $('matches');
    const pitches = Object.keys(this.state.matches).sort();
    $('matches-empty').hidden = pitches.length > 0;
    for (const pitch of pitches) {
      const m = this.state.matches[pitch];
      let card = box.querySelector(`[data-pitch="${CSS.escape(pitch)}"]`);
      if (!card) {
        card = el('article', 'match');
        card.dataset.pitch = pitch;
        const head = el('header');
        head.append(el('span', 'where'), el('span', 'state'));
        const line = el('div', 'line');
        line.append(el('span', 'home'), el('span', 'result'), el('span', 'away'));
        card.append(head, line, el('div', 'last-goal'));
        const after = [...box.children].find((c) => c.dataset.pitch > pitch);
        box.insertBefore(card, after ?? null);
      }
      card.dataset.status = m.status;
      card.dataset.match = m.match;
      card.querySelector('.where').textContent = `Pitch ${m.pitch}`;
      card.querySelector('.state').textContent =
        m.status === 'live' ? `live ${m.minute}′` : m.status === 'full-time' ? 'full time' : m.status.replace('-', ' ');
      card.querySelector('.home').textContent = m.home;
      card.querySelector('.away').textContent = m.away;
      card.querySelector('.result').textContent =
        m.status === 'upcoming' ? 'vs' : `${m.homeScore} – ${m.awayScore}`;
      const goal = m.lastGoal;
      card.querySelector('.last-goal').textContent = goal
        ? `Goal ${goal.minute}′ · ${goal.team === 'home' ? m.home : m.away}`
        : m.status === 'upcoming'
          ? 'kick-off soon'
          : '';
      if (this.goals.has(pitch)) restartAnimation(card, 'goal');
    }
    this.goals.clear();
  }

  renderNotes() {
    const list = $('notes');
    const items = this.state.notes.map((n) => {
      const item = el('li', `note level-${['info', 'success', 'warning'].includes(n.level) ? n.level : 'info'}`);
      if (n.id) item.dataset.id = n.id;
      const text = el('span', 'text', String(n.text ?? ''));
      if (n.from === 'you') text.append(el('span', 'from', 'you'));
      const time = el('time', '', n.time ? clockTime(n.time) : '');
      item.append(el('span', 'dot'), text, time);
      if (this.fresh.has(n.id)) item.classList.add('fresh');
      return item;
    });
    this.fresh.clear();
    list.replaceChildren(...items);
    if (items.length === 0) list.append(el('li', 'empty', 'Nothing yet: notifications arrive every few seconds.'));
  }

  renderClock() {
    const c = this.state.clock;
    if (!c) {
      $('clock-time').textContent = '--:--:--';
      $('clock-date').textContent = 'waiting for the server';
      return;
    }
    $('clock-time').textContent = clockTime(c.unixMs);
    const date = new Date(c.unixMs).toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' });
    $('clock-date').textContent = `${date} · demo up ${formatUptime(c.uptime)}`;
  }

  describe() {
    const how = $('how');
    const url = decodeURIComponent(this.subscribeUrl(false));
    how.replaceChildren(
      `This page subscribes with ${this.transport === 'EventSource' ? 'the browser’s EventSource' : 'fetch() and a streaming parser'} to `,
      el('code', '', url),
      '. Reload it or cut the connection: it resumes from its last event id and applies each event once.',
    );
  }
}

function formatUptime(seconds) {
  const s = Number(seconds) || 0;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
}

/** A small line chart of `points` on `canvas`, in the colour of `direction`. */
function drawSparkline(canvas, points, direction) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 124;
  const height = canvas.clientHeight || 34;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  if (points.length < 2) return;
  const style = getComputedStyle(document.documentElement);
  const color = style.getPropertyValue(direction === 'down' ? '--down' : direction === 'up' ? '--up' : '--muted').trim();
  let low = Math.min(...points);
  let high = Math.max(...points);
  if (high - low < 1e-9) {
    low -= 1;
    high += 1;
  }
  const pad = 3;
  const x = (i) => pad + (i * (width - 2 * pad)) / (points.length - 1);
  const y = (v) => height - pad - ((v - low) * (height - 2 * pad)) / (high - low);
  ctx.beginPath();
  points.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.lineWidth = 1.6;
  ctx.strokeStyle = color;
  ctx.lineJoin = 'round';
  ctx.stroke();
  ctx.lineTo(x(points.length - 1), height);
  ctx.lineTo(x(0), height);
  ctx.closePath();
  ctx.globalAlpha = 0.12;
  ctx.fillStyle = color;
  ctx.fill();
  ctx.globalAlpha = 1;
  ctx.beginPath();
  ctx.arc(x(points.length - 1), y(points.at(-1)), 2.4, 0, Math.PI * 2);
  ctx.fillStyle = color;
  ctx.fill();
}
