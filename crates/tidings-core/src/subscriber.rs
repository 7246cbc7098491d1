//! One subscriber: its bounded queue, shared by the fan-out (which offers
//! events) and the transport (which drains them through a
//! [`Subscription`](crate::Subscription)). Everything about the queue's
//! state lives here, behind the subscriber's own mutex.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tidings_selector::Selector;

use crate::event::Event;

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
    pub(crate) payload: Option<Arc<serde_json::Value>>,
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
    /// matched. Never blocks beyond the queue's mutex.
    pub(crate) fn offer(&self, event: &Arc<Event>, received: Instant, now: u32) -> Offer {
        if !self.may_see(event) {
            return Offer::Skipped;
        }
        let mut st = self.lock();
        if st.end.is_some() || st.left || event.seq <= st.last_offered {
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

/// The keep-alive comment.
const HEARTBEAT: &[u8] = b":\n";

/// What [`Subscriber::take`] handed out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Taken {
    /// Live events handed out.
    pub(crate) events: u64,
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
            if event.seq > *last_sent {
                *last_sent = event.seq;
                out.push(event.frame.clone());
                taken.events += 1;
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
            st.last_take = now;
            st.waiting_since = if st.queue.is_empty() { 0 } else { now.max(1) };
            return Poll::Ready(Ok(taken));
        }
        if let Some(end) = st.end {
            return Poll::Ready(Err(end));
        }
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
