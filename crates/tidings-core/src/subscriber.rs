//! One subscriber: its bounded queue, shared by the fan-out (which offers
//! events) and the transport (which drains them through a
//! [`Subscription`](crate::Subscription)). Everything about the queue's
//! state lives here, behind the subscriber's own mutex.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tidings_selector::Selector;

use crate::event::Event;
use crate::metrics::Metrics;

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

/// A transport's connection, written by the fan-out itself when the
/// subscriber's task is idle: the fan-out then hands an event to the socket
/// without waking the task, which is most of what an event costs a hub
/// with many subscribers. The core does no I/O of its own; this is the
/// transport's, called from the fan-out's thread.
pub trait DirectWrite: Send + Sync + fmt::Debug {
    /// Writes what the connection takes now without blocking, from the
    /// start of `bufs`; returns the number of bytes written. `WouldBlock`
    /// (or any error) leaves the rest to the subscriber's task, which
    /// writes it, or finds the connection broken, on its own.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

/// How much may wait in a subscriber's queue before it counts as too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueLimit {
    /// Events.
    pub(crate) events: usize,
    /// Bytes, counted on the shared frames' lengths.
    pub(crate) bytes: usize,
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
    pub(crate) payload: Option<Arc<serde_json::Value>>,
    /// How much may wait in the queue.
    limit: QueueLimit,
    /// The queue and its flags.
    state: Mutex<State>,
    /// The transport task waiting for the queue.
    waker: AtomicWaker,
}

#[derive(Debug)]
struct State {
    /// Events offered and not yet taken, in order.
    queue: VecDeque<Arc<Event>>,
    /// Bytes of the front event's frame already written to the connection
    /// by the fan-out (a write it took only in part).
    front_written: usize,
    /// The sum of the queued frames' lengths.
    queued_bytes: usize,
    /// Queued events, from the front, already counted as delivered by a
    /// write of the fan-out that took them only in part.
    counted: usize,
    /// The connection, once the subscription is live and its transport
    /// offers one.
    direct: Option<Arc<dyn DirectWrite>>,
    /// The task found the queue empty and waits: nothing it took is
    /// unwritten, so the fan-out may write to `direct` itself.
    idle: bool,
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
    /// The transport dropped its subscription: nothing more is queued.
    left: bool,
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
    /// Queued; `first`: into an empty queue, so the fan-out must
    /// [flush](Subscriber::flush) the subscriber once it has offered the
    /// whole round.
    Queued {
        /// The queue was empty.
        first: bool,
    },
    /// Not for this subscriber, already queued, or the stream is ending.
    Skipped,
    /// The queue was full: the subscriber is ended as too slow.
    Lagged,
}

impl Subscriber {
    pub(crate) fn new(
        key: u64,
        request: &SubscribeRequest,
        limit: QueueLimit,
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
            limit: QueueLimit {
                events: limit.events.max(1),
                bytes: limit.bytes.max(1),
            },
            state: Mutex::new(State {
                queue: VecDeque::new(),
                front_written: 0,
                queued_bytes: 0,
                counted: 0,
                direct: None,
                idle: false,
                last_offered: 0,
                // Every subscription starts with history or with the
                // snapshot of retained updates; an overflow meanwhile
                // means "read history again", not "too slow".
                replaying: true,
                overflowed: false,
                heartbeat: false,
                end: None,
                left: false,
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
    /// matched. Never blocks beyond the queue's mutex, and wakes nobody
    /// unless the subscriber must end: the fan-out
    /// [flushes](Subscriber::flush) the queue once the round is offered.
    pub(crate) fn offer(&self, event: &Arc<Event>, received: Instant, now: u32) -> Offer {
        if !self.may_see(event) {
            return Offer::Skipped;
        }
        let mut st = self.lock();
        if st.end.is_some() || st.left || event.seq <= st.last_offered {
            return Offer::Skipped;
        }
        st.last_offered = event.seq;
        let size = event.frame.len();
        let full = st.queue.len() >= self.limit.events
            || (!st.queue.is_empty() && st.queued_bytes + size > self.limit.bytes);
        if full {
            if st.replaying {
                st.overflowed = true;
                // The replay will read these from history again.
                st.queue.clear();
                st.queued_bytes = 0;
                st.front_written = 0;
                st.counted = 0;
                return Offer::Skipped;
            }
            st.end = Some(End::Lagged);
            drop(st);
            self.waker.wake();
            return Offer::Lagged;
        }
        let first = st.queue.is_empty();
        if first {
            st.oldest = Some(received);
            if st.waiting_since == 0 {
                st.waiting_since = now.max(1);
            }
        }
        st.queued_bytes += size;
        st.queue.push_back(Arc::clone(event));
        Offer::Queued { first }
    }

    /// After a round of offers: writes what is queued straight to the
    /// connection when the subscriber's task is idle and the connection
    /// takes it all at once; otherwise (or for what it does not take)
    /// wakes the task. Returns the live events written here.
    pub(crate) fn flush(&self, now: u32, metrics: &Metrics) -> u64 {
        let mut st = self.lock();
        // Moved out and back under the lock rather than cloned: no
        // reference count to touch per subscriber and event (`leave`, the
        // only other taker, holds the lock too).
        let written = match st.direct.take() {
            Some(direct) if st.idle && !st.queue.is_empty() => {
                let written = write_queue(&mut st, &*direct, metrics);
                st.direct = Some(direct);
                written
            }
            direct => {
                st.direct = direct;
                0
            }
        };
        if written > 0 {
            if let Some(oldest) = st.oldest {
                metrics.latency.record(oldest.elapsed().as_secs_f64());
            }
            st.last_take = now;
        }
        if st.queue.is_empty() {
            st.oldest = None;
            st.waiting_since = 0;
            return written;
        }
        // The task takes the rest (and learns of a broken connection).
        st.idle = false;
        drop(st);
        self.waker.wake();
        written
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

/// The keep-alive comment.
const HEARTBEAT: &[u8] = b":\n";

/// What [`Subscriber::take`] handed out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Taken {
    /// Live events handed out.
    pub(crate) events: u64,
    /// Of those, the ones not yet counted as delivered.
    pub(crate) uncounted: u64,
    /// When the hub received the oldest of them.
    pub(crate) oldest: Option<Instant>,
}

impl Subscriber {
    /// The transport dropped its subscription: queue nothing more, and let
    /// go of what is queued.
    pub(crate) fn leave(&self) {
        let mut st = self.lock();
        st.left = true;
        st.queue = VecDeque::new();
        st.queued_bytes = 0;
        st.counted = 0;
        // The transport's connection closes with the transport.
        st.direct = None;
    }

    /// The subscription went live: from now on the fan-out may write to
    /// `direct` itself while the task is idle.
    pub(crate) fn write_through(&self, direct: Arc<dyn DirectWrite>) {
        let mut st = self.lock();
        if !st.left {
            st.direct = Some(direct);
        }
    }

    /// Moves up to `max` queued events newer than `last_sent` into `out`
    /// (with a heartbeat when one is due and nothing else is), or registers
    /// `cx` and says the stream ends or must wait.
    pub(crate) fn take(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Bytes>,
        last_sent: &mut u64,
        max: usize,
        now: u32,
    ) -> Poll<Result<Taken, End>> {
        self.waker.register(cx.waker());
        let mut st = self.lock();
        let before = out.len();
        let mut taken = Taken::default();
        while out.len() - before < max {
            let Some(event) = st.queue.pop_front() else {
                break;
            };
            let written = std::mem::take(&mut st.front_written);
            st.queued_bytes -= event.frame.len();
            let counted = st.counted > 0;
            st.counted = st.counted.saturating_sub(1);
            if event.seq > *last_sent {
                *last_sent = event.seq;
                out.push(event.frame.slice(written.min(event.frame.len())..));
                taken.events += 1;
                if !counted {
                    taken.uncounted += 1;
                }
            }
        }
        if taken.events > 0 {
            taken.oldest = st.oldest;
        }
        if st.queue.is_empty() {
            st.oldest = None;
        }
        if taken.events > 0 || st.heartbeat {
            if st.heartbeat && out.len() == before {
                out.push(Bytes::from_static(HEARTBEAT));
            }
            st.heartbeat = false;
            st.idle = false;
            st.last_take = now;
            st.waiting_since = if st.queue.is_empty() { 0 } else { now.max(1) };
            return Poll::Ready(Ok(taken));
        }
        if let Some(end) = st.end {
            return Poll::Ready(Err(end));
        }
        // Idle: nothing taken is unwritten. Whatever was sent is never
        // offered again, also to the fan-out's own writes.
        st.idle = true;
        st.last_offered = st.last_offered.max(*last_sent);
        st.waiting_since = 0;
        Poll::Pending
    }

    /// A page of history is about to be read: an overflow from here on may
    /// drop events this read does not see, and writing pages of history is
    /// progress, which must not look like a stalled writer to the sweeper.
    pub(crate) fn begin_page(&self, now: u32) {
        let mut st = self.lock();
        st.overflowed = false;
        st.last_take = now;
        st.waiting_since = if st.queue.is_empty() { 0 } else { now.max(1) };
    }

    /// A page of history reached the head: returns whether the subscriber
    /// may go live (nothing was dropped from its queue during the replay),
    /// else it must read history again.
    pub(crate) fn finish_replay(&self) -> bool {
        let mut st = self.lock();
        if st.overflowed {
            st.overflowed = false;
            false
        } else {
            st.replaying = false;
            true
        }
    }

    /// Registers `waker` and tells whether the stream must stop at once.
    pub(crate) fn poll_abort(&self, waker: &Waker) -> Poll<End> {
        self.waker.register(waker);
        match self.lock().end {
            Some(end) if end.aborts() => Poll::Ready(end),
            _ => Poll::Pending,
        }
    }
}

/// Writes as much of the queue as `direct` takes now; drops what was
/// written whole, remembers how much of a frame was written in part.
/// Returns the events written whole.
fn write_queue(st: &mut State, direct: &dyn DirectWrite, metrics: &Metrics) -> u64 {
    let mut done = 0u64;
    loop {
        let count = st.queue.len().min(SEND_SLICES);
        if count == 0 {
            return done;
        }
        // Counted before the write: whoever reads the counter once the
        // bytes arrived must find them counted. What the write does not
        // take stays counted (`counted`), and the task does not count it
        // again.
        if count > st.counted {
            metrics.delivered.increment((count - st.counted) as u64);
            st.counted = count;
        }
        let mut written = match send(st, direct) {
            Ok(0) | Err(_) => return done,
            Ok(n) => n,
        };
        while let Some(front) = st.queue.front() {
            let left = front.frame.len() - st.front_written;
            if written < left {
                st.front_written += written;
                return done;
            }
            written -= left;
            st.front_written = 0;
            st.queued_bytes -= front.frame.len();
            st.counted -= 1;
            st.queue.pop_front();
            done += 1;
        }
    }
}

/// As many frames per write as `raw.rs` gathers: well within `IOV_MAX`.
const SEND_SLICES: usize = 64;

/// What of `frame` is left after `skip` bytes.
fn rest(frame: &Bytes, skip: usize) -> &[u8] {
    frame.get(skip..).unwrap_or_default()
}

/// One write of the queued frames (the front one from where a write took
/// it in part).
fn send(st: &State, direct: &dyn DirectWrite) -> std::io::Result<usize> {
    let skip = st.front_written;
    match st.queue.len() {
        0 => Ok(0),
        // The common case, with no room made for 64 slices.
        1 => match st.queue.front() {
            Some(event) => direct.try_write_vectored(&[IoSlice::new(rest(&event.frame, skip))]),
            None => Ok(0),
        },
        _ => {
            let mut slices = [IoSlice::new(&[]); SEND_SLICES];
            let mut count = 0;
            for (slot, event) in slices.iter_mut().zip(&st.queue) {
                *slot = IoSlice::new(if count == 0 {
                    rest(&event.frame, skip)
                } else {
                    &event.frame
                });
                count += 1;
            }
            direct.try_write_vectored(slices.get(..count).unwrap_or_default())
        }
    }
}
