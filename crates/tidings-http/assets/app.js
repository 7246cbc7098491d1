// The demo page's entry: one page, two transports. `/` subscribes with
// the browser's EventSource, `/fetch.html` with fetch() and the streaming
// parser of sse.mjs, the way the tutorials do it when they need POST or
// headers. Both feed the same Demo, which renders and deduplicates.
import { Demo, GAP, TYPES } from './demo.js';
import { FetchEventSource } from './sse.mjs';

const variant = window.location.pathname.endsWith('/fetch.html') ? 'fetch()' : 'EventSource';
const demo = new Demo(variant);
// For people poking around in the console, and for the browser tests.
window.tidingsDemo = demo;

/**
 * Subscribes with `open()`, which makes the source (of the class `Source`)
 * and reports its open and error states; feeds every event type to the page
 * and lets the page's button close and reopen the subscription.
 */
function subscribe(Source, open) {
  let source = null;
  const connect = () => {
    demo.setStatus('connecting');
    source = open();
    for (const type of [...TYPES, GAP, 'message']) {
      source.addEventListener(type, (e) => demo.receive(type, e.data, e.lastEventId));
    }
  };
  demo.onToggle = () => {
    if (source && source.readyState !== Source.CLOSED) {
      source.close();
      demo.setStatus('closed');
    } else {
      demo.resuming = Boolean(demo.state.lastEventId);
      connect();
    }
  };
  connect();
}

function overEventSource() {
  subscribe(EventSource, () => {
    // After a reload the saved id goes in the query (`lastEventID`): a new
    // EventSource cannot send headers. On its own reconnections the
    // browser sends the `Last-Event-ID` header, which the hub prefers.
    const source = new EventSource(demo.subscribeUrl(true));
    source.onopen = () => demo.setStatus('open');
    source.onerror = () => {
      demo.setStatus(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    };
    return source;
  });
}

function overFetch() {
  subscribe(FetchEventSource, () => {
    // fetch() can send the header itself, on the first connection too.
    const source = new FetchEventSource(demo.subscribeUrl(false), { lastEventId: demo.state.lastEventId, retry: 2000 });
    source.addEventListener('open', () => demo.setStatus('open'));
    source.addEventListener('error', (e) => demo.setStatus(e.fatal ? 'closed' : 'reconnecting'));
    return source;
  });
}

if (variant === 'EventSource') overEventSource();
else overFetch();
