//! One subscriber: its bounded queue, shared by the fan-out (which offers
//! events) and the transport (which drains them through a
//! [`Subscription`]).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tidings_selector::Selector;

use crate::event::Event;
use crate::hub::Shared;
use crate::store::StoreError;

/// What a transport asks for when a client subscribes.
#[derive(Debug, Clone, Default)]
pub struct SubscribeRequest {
    /// Topic selectors; an event matching any of them is sent.
    pub selectors: Vec<Selector>,
    /// Where to resume: the client's `Last-Event-ID` (or `lastEventID`),
    /// or `earliest`. `None` sends only what is published from now on.
    pub last_event_id: Option<String>,
    /// What the subscriber's token allows, when it has one.
    pub auth: Option<SubscriberAuth>,
}

/// What a verified token allows a subscriber.
#[derive(Debug, Clone, Default)]
pub struct SubscriberAuth {
    /// The `mercure.subscribe` selectors: private updates with a matching
    /// topic are sent to this subscriber.
    pub private_selectors: Vec<Selector>,
    /// The token's expiry: the stream ends then.
    pub expires_at: Option<SystemTime>,
    /// The token's `mercure.payload`, kept with the subscription.
    pub payload: Option<serde_json::Value>,
}

/// Why a stream ends (the transport then closes it; the client reconnects
/// and resumes from its last event id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The subscriber fell a whole queue behind.
    Lagged,
    /// Queued data sat untaken for the write timeout: the peer is not
    /// reading.
    WriteTimeout,
    /// The subscriber's token expired.
    TokenExpired,
    /// The hub is shutting down.
    Shutdown,
}

impl End {
    /// Whether the transport should stop at once rather than finish writing
    /// what it already took.
    pub fn aborts(self) -> bool {
        matches!(self, Self::WriteTimeout)
    }

    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lagged => "lagged",
            Self::WriteTimeout => "write_timeout",
            Self::TokenExpired => "token_expired",
            Self::Shutdown => "shutdown",
        }
    }
}

/// The shared half of a subscription.
#[derive(Debug)]
pub(crate) struct Subscriber {
    /// Its key in the registry.
    pub(crate) key: u64,
    /// What it subscribed to.
    pub(crate) selectors: Box<[Selector]>,
    /// Which private updates it may see; `None`: none.
    private_selectors: Option<Box<[Selector]>>,
    /// When its token expires, in hub seconds.
    pub(crate) expires_at: Option<u32>,
    /// The token's `mercure.payload`.
    payload: Option<Arc<serde_json::Value>>,
    /// How many events may wait in the queue.
    capacity: usize,
    /// The queue and its flags.
    state: Mutex<State>,
    /// The transport task waiting for the queue.
    waker: AtomicWaker,
}

#[derive(Debug)]
struct State {
    /// Events offered and not yet taken, in order.
    queue: VecDeque<Arc<Event>>,
    /// The highest sequence number offered: an event matched by several
    /// selectors or topics is queued once.
    last_offered: u64,
    /// Still replaying history: a full queue then means "read history
    /// again", not "too slow".
    replaying: bool,
    /// The queue dropped events during replay.
    overflowed: bool,
    /// A keep-alive comment is due.
    heartbeat: bool,
    /// The stream must end, once the queue is drained.
    end: Option<End>,
    /// When the hub received the oldest queued live event.
    oldest: Option<Instant>,
    /// Hub second since which something has waited untaken; 0: nothing.
    waiting_since: u32,
    /// Hub second of the last take.
    last_take: u32,
}

/// What the fan-out did with an event for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Queued.
    Queued,
    /// Not for this subscriber, already queued, or the stream is ending.
    Skipped,
    /// The queue was full: the subscriber is ended as too slow.
    Lagged,
}

impl Subscriber {
    pub(crate) fn new(
        key: u64,
        request: &SubscribeRequest,
        capacity: usize,
        expires_at: Option<u32>,
        now: u32,
    ) -> Self {
        Self {
            key,
            selectors: request.selectors.clone().into_boxed_slice(),
            private_selectors: request
                .auth
                .as_ref()
                .map(|a| a.private_selectors.clone().into_boxed_slice()),
            expires_at,
            payload: request
                .auth
                .as_ref()
                .and_then(|a| a.payload.clone())
                .map(Arc::new),
            capacity: capacity.max(1),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                last_offered: 0,
                replaying: request.last_event_id.is_some(),
                overflowed: false,
                heartbeat: false,
                end: None,
                oldest: None,
                waiting_since: 0,
                last_take: now,
            }),
            waker: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether it may see `event` at all: public, or private with a topic
    /// its token covers.
    pub(crate) fn may_see(&self, event: &Event) -> bool {
        !event.private
            || self
                .private_selectors
                .as_deref()
                .is_some_and(|sel| tidings_selector::matches_any(sel, &event.topics))
    }

    /// Whether it wants `event`: a selector matches one of its topics and
    /// it may see it.
    pub(crate) fn wants(&self, event: &Event) -> bool {
        tidings_selector::matches_any(&self.selectors, &event.topics) && self.may_see(event)
    }

    /// The fan-out offers `event`, which one of this subscriber's selectors
    /// matched. Never blocks beyond the queue's mutex.
    pub(crate) fn offer(&self, event: &Arc<Event>, received: Instant, now: u32) -> Offer {
        if !self.may_see(event) {
            return Offer::Skipped;
        }
        let mut st = self.lock();
        if st.end.is_some() || event.seq <= st.last_offered {
            return Offer::Skipped;
        }
        st.last_offered = event.seq;
        let outcome = if st.queue.len() >= self.capacity {
            if st.replaying {
                st.overflowed = true;
                // The replay will read these from history again.
                st.queue.clear();
                Offer::Skipped
            } else {
                st.end = Some(End::Lagged);
                Offer::Lagged
            }
        } else {
            if st.queue.is_empty() {
                st.oldest = Some(received);
                if st.waiting_since == 0 {
                    st.waiting_since = now.max(1);
                }
            }
            st.queue.push_back(Arc::clone(event));
            Offer::Queued
        };
        drop(st);
        self.waker.wake();
        outcome
    }

    /// Ends the stream (the first reason wins).
    pub(crate) fn end(&self, why: End) {
        let mut st = self.lock();
        if st.end.is_none() {
            st.end = Some(why);
        }
        drop(st);
        self.waker.wake();
    }

    /// The sweeper's look at this subscriber: asks for a heartbeat when it
    /// has been idle `heartbeat` seconds, ends it when something waited
    /// untaken for `write_timeout` seconds or its token expired.
    pub(crate) fn sweep(&self, now: u32, heartbeat: u32, write_timeout: u32) -> Option<End> {
        let mut st = self.lock();
        if st.end.is_some() {
            return None;
        }
        let why = if self.expires_at.is_some_and(|at| now >= at) {
            Some(End::TokenExpired)
        } else if st.waiting_since != 0 && now.saturating_sub(st.waiting_since) >= write_timeout {
            Some(End::WriteTimeout)
        } else {
            None
        };
        if let Some(why) = why {
            st.end = Some(why);
        } else if heartbeat > 0
            && !st.heartbeat
            && st.queue.is_empty()
            && now.saturating_sub(st.last_take) >= heartbeat
        {
            st.heartbeat = true;
            st.waiting_since = now.max(1);
        } else {
            return None;
        }
        drop(st);
        self.waker.wake();
        why
    }
}

/// Where a subscription is in its life.
#[derive(Debug)]
enum Phase {
    /// The opening frames (comment, `retry`, a gap notice) are due; then
    /// replay after the given sequence number, or go live.
    Opening(Vec<Bytes>, Option<u64>),
    /// Replaying history after this sequence number.
    Replay(u64),
    /// Sending live events.
    Live,
    /// Ended; the reason is reported once more and again.
    Ended(End),
}

/// A transport's handle on one subscriber. Dropping it unsubscribes.
pub struct Subscription {
    /// The hub it belongs to.
    shared: Arc<Shared>,
    /// The half the fan-out writes to.
    sub: Arc<Subscriber>,
    /// Where it is.
    phase: Phase,
    /// Everything up to this sequence number was sent or skipped.
    last_sent: u64,
    /// When the oldest live event of the last batch was received, until the
    /// transport reports the batch written.
    pending_latency: Option<Instant>,
    /// The response's `Last-Event-ID` header, when the client asked to
    /// resume.
    resume_header: Option<String>,
    /// The page of history being read while replaying (boxed, so that a
    /// live subscription carries no room for it).
    reading: Option<Reading>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("key", &self.sub.key)
            .field("phase", &self.phase)
            .field("last_sent", &self.last_sent)
            .field("reading", &self.reading.is_some())
            .finish_non_exhaustive()
    }
}

/// The keep-alive comment.
const HEARTBEAT: &[u8] = b":\n";

/// How many frames one [`Subscription::next`] hands out at most: enough to
/// make one large vectored write, within the system's `IOV_MAX` of 1024.
pub const MAX_BATCH: usize = 512;

impl Subscription {
    pub(crate) fn new(
        shared: Arc<Shared>,
        sub: Arc<Subscriber>,
        opening: Vec<Bytes>,
        replay_after: Option<u64>,
        resume_header: Option<String>,
    ) -> Self {
        Self {
            last_sent: replay_after.unwrap_or(0),
            shared,
            sub,
            phase: Phase::Opening(opening, replay_after),
            pending_latency: None,
            resume_header,
            reading: None,
        }
    }

    /// The `mercure.payload` of the subscriber's token.
    pub fn payload(&self) -> Option<&serde_json::Value> {
        self.sub.payload.as_deref()
    }

    /// The value of the response's `Last-Event-ID` header, as the Mercure
    /// protocol says; `None` when the client did not ask to resume.
    pub fn last_event_id_header(&self) -> Option<&str> {
        self.resume_header.as_deref()
    }

    /// Appends the next frames to write to `out` (at least one, at most
    /// [`MAX_BATCH`]), waiting until there are some; or says why the stream
    /// ends. Frames queued before the end are handed out first, except when
    /// the end [aborts](End::aborts).
    ///
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self, out: &mut Vec<Bytes>) -> Result<(), End> {
        poll_fn(|cx| self.poll_next(cx, out)).await
    }

    /// [`Subscription::next`] as a poll function, for transports that keep
    /// no future per stream: registers `cx`'s waker when it returns
    /// `Pending`.
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Bytes>,
    ) -> Poll<Result<(), End>> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Live) {
                Phase::Opening(frames, replay_after) => {
                    self.phase = replay_after.map_or(Phase::Live, Phase::Replay);
                    if !frames.is_empty() {
                        out.extend(frames);
                        return Poll::Ready(Ok(()));
                    }
                }
                Phase::Replay(after) => {
                    self.phase = Phase::Replay(after);
                    let page = self.reading.get_or_insert_with(|| {
                        Box::pin(read_page(
                            Arc::clone(&self.shared),
                            Arc::clone(&self.sub),
                            after,
                        ))
                    });
                    let Poll::Ready(page) = page.as_mut().poll(cx) else {
                        return Poll::Pending;
                    };
                    self.reading = None;
                    match page {
                        Ok(page) => self.replayed(after, &page, out),
                        Err(err) => {
                            tracing::warn!(error = %err, "replay failed; ending the stream");
                            self.phase = Phase::Ended(End::Shutdown);
                            return Poll::Ready(Err(End::Shutdown));
                        }
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Phase::Live => {
                    let result = self.poll_live(cx, out);
                    if let Poll::Ready(Err(end)) = result {
                        self.phase = Phase::Ended(end);
                    }
                    return result;
                }
                Phase::Ended(end) => {
                    self.phase = Phase::Ended(end);
                    return Poll::Ready(Err(end));
                }
            }
        }
    }

    /// Hands out what a page of history holds for this subscriber. Moves to
    /// live when the page reached the head and no live event was dropped
    /// meanwhile.
    fn replayed(&mut self, after: u64, page: &[Arc<Event>], out: &mut Vec<Bytes>) {
        let reached_head = page.len() < self.shared.config.replay_page.max(1);
        let mut sent = 0u64;
        let mut last = after;
        for event in page {
            last = event.seq;
            if self.sub.wants(event) {
                out.push(event.frame.clone());
                sent += 1;
            }
        }
        self.last_sent = last;
        self.shared.metrics.replayed.increment(sent);
        if reached_head {
            let mut st = self.sub.lock();
            if st.overflowed {
                st.overflowed = false;
                self.phase = Phase::Replay(last);
            } else {
                st.replaying = false;
                self.phase = Phase::Live;
            }
        } else {
            self.phase = Phase::Replay(last);
        }
    }

    fn poll_live(&mut self, cx: &mut Context<'_>, out: &mut Vec<Bytes>) -> Poll<Result<(), End>> {
        self.sub.waker.register(cx.waker());
        let now = self.shared.clock.now();
        let mut st = self.sub.lock();
        let before = out.len();
        let mut taken = 0u64;
        while out.len() - before < MAX_BATCH {
            let Some(event) = st.queue.pop_front() else {
                break;
            };
            if event.seq > self.last_sent {
                self.last_sent = event.seq;
                out.push(event.frame.clone());
                taken += 1;
            }
        }
        if taken > 0 {
            self.pending_latency = self.pending_latency.or(st.oldest);
        }
        if st.queue.is_empty() {
            st.oldest = None;
        }
        if taken > 0 || st.heartbeat {
            if st.heartbeat && out.len() == before {
                out.push(Bytes::from_static(HEARTBEAT));
            }
            st.heartbeat = false;
            st.last_take = now;
            st.waiting_since = if st.queue.is_empty() { 0 } else { now.max(1) };
            drop(st);
            self.shared.metrics.delivered.increment(taken);
            return Poll::Ready(Ok(()));
        }
        if let Some(end) = st.end {
            return Poll::Ready(Err(end));
        }
        st.waiting_since = 0;
        Poll::Pending
    }

    /// A handle that tells when the stream must stop at once: a transport
    /// blocked on a write polls it beside the write.
    pub fn abort_watch(&self) -> AbortWatch {
        AbortWatch(Arc::clone(&self.sub))
    }

    /// The transport wrote everything [`Subscription::next`] gave it: records
    /// the publish-to-write latency of that batch.
    pub fn written(&mut self) {
        if let Some(received) = self.pending_latency.take() {
            self.shared
                .metrics
                .latency
                .record(received.elapsed().as_secs_f64());
        }
    }

    /// Ends the stream from outside, e.g. when the transport's peer is gone.
    pub fn end(&self, why: End) {
        self.sub.end(why);
    }
}

/// Reads one page of history after `after` for `sub`.
async fn read_page(
    shared: Arc<Shared>,
    sub: Arc<Subscriber>,
    after: u64,
) -> Result<Vec<Arc<Event>>, StoreError> {
    {
        // An overflow from here on may drop events this read does not see.
        // And writing pages of history is progress: it must not look like
        // a stalled writer to the sweeper.
        let now = shared.clock.now();
        let mut st = sub.lock();
        st.overflowed = false;
        st.last_take = now;
        st.waiting_since = if st.queue.is_empty() { 0 } else { now.max(1) };
    }
    shared
        .read_after(after, shared.config.replay_page.max(1))
        .await
}

/// A page of history being read.
type Reading = Pin<Box<dyn Future<Output = Result<Vec<Arc<Event>>, StoreError>> + Send>>;

/// Tells a transport that a stream must stop at once (see
/// [`End::aborts`]), e.g. because its peer stopped reading.
///
/// It shares the subscription's waker slot: poll it from the task that
/// polls [`Subscription::next`].
#[derive(Debug, Clone)]
pub struct AbortWatch(Arc<Subscriber>);

impl AbortWatch {
    /// Ready with the reason once the stream must stop at once.
    pub fn poll_abort(&self, cx: &mut Context<'_>) -> Poll<End> {
        self.0.waker.register(cx.waker());
        match self.0.lock().end {
            Some(end) if end.aborts() => Poll::Ready(end),
            _ => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.unsubscribe(&self.sub);
    }
}
