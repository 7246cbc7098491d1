//! A transport's handle on one subscriber: the opening frames, the replay
//! of history page by page, then the live queue, as batches of frames to
//! write.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;

use crate::event::Event;
use crate::presence::Seat;
use crate::retained::Snapshot;
use crate::shared::Shared;
use crate::store::StoreError;
use crate::subscriber::{DirectWrite, End, Subscriber};

/// Where a subscription is in its life.
#[derive(Debug)]
enum Phase {
    /// The opening frames (comment, `retry`, a gap notice) are due; then
    /// replay after the given sequence number, or send the snapshot of
    /// retained updates, or go live.
    Opening(Vec<Bytes>, Option<u64>, Option<Box<Snapshot>>),
    /// Sending the retained updates and the `id: HEAD` block.
    Snapshot(Box<Snapshot>),
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
    /// Its place in the list of active subscriptions, when the hub keeps
    /// one: dropped with the subscription (after it left the registry),
    /// which reports it inactive.
    seat: Option<Seat>,
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

/// How many frames one [`Subscription::next`] hands out at most: enough to
/// make one large vectored write, within the system's `IOV_MAX` of 1024.
pub const MAX_BATCH: usize = 512;

impl Subscription {
    pub(crate) fn new(
        shared: Arc<Shared>,
        sub: Arc<Subscriber>,
        opening: Vec<Bytes>,
        replay_after: Option<u64>,
        snapshot: Option<Snapshot>,
        resume_header: Option<String>,
    ) -> Self {
        Self {
            // Once the snapshot is sent, everything up to the head counts
            // as seen: the live events it queued meanwhile are skipped.
            last_sent: replay_after
                .or(snapshot.as_ref().map(|s| s.head))
                .unwrap_or(0),
            shared,
            sub,
            phase: Phase::Opening(opening, replay_after, snapshot.map(Box::new)),
            pending_latency: None,
            resume_header,
            reading: None,
            seat: None,
        }
    }

    /// Puts it in the list of active subscriptions.
    pub(crate) fn seated(mut self, seat: Option<Seat>) -> Self {
        self.seat = seat;
        self
    }

    /// Lets the fan-out write to the transport's connection itself while
    /// this subscription is live and idle (its queue empty, nothing taken
    /// unwritten). A transport that offers this must write what
    /// [`Subscription::next`] hands out in order, in full, before it asks
    /// for more.
    pub fn write_through(&self, direct: Arc<dyn DirectWrite>) {
        self.sub.write_through(direct);
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
                Phase::Opening(frames, replay_after, snapshot) => {
                    self.phase = match (replay_after, snapshot) {
                        (Some(after), _) => Phase::Replay(after),
                        (None, Some(snapshot)) => Phase::Snapshot(snapshot),
                        (None, None) => Phase::Live,
                    };
                    out.extend(frames);
                    // The snapshot goes in the same batch, as far as it
                    // fits: a stream opens with the state at once.
                    if !out.is_empty() && !matches!(self.phase, Phase::Snapshot(_)) {
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
                Phase::Snapshot(mut snapshot) => {
                    let before = out.len();
                    self.phase = if !snapshot.take(out, MAX_BATCH - before.min(MAX_BATCH)) {
                        Phase::Snapshot(snapshot)
                    } else if self.sub.finish_replay() {
                        Phase::Live
                    } else {
                        // The queue overflowed meanwhile: what it dropped
                        // comes from history, after the head.
                        Phase::Replay(self.last_sent)
                    };
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
        self.phase = if reached_head && self.sub.finish_replay() {
            Phase::Live
        } else {
            Phase::Replay(last)
        };
    }

    fn poll_live(&mut self, cx: &mut Context<'_>, out: &mut Vec<Bytes>) -> Poll<Result<(), End>> {
        let now = self.shared.clock.now();
        let taken = std::task::ready!(self.sub.take(cx, out, &mut self.last_sent, MAX_BATCH, now))?;
        if taken.events > 0 {
            self.pending_latency = self.pending_latency.or(taken.oldest);
            self.shared.metrics.delivered.increment(taken.uncounted);
        }
        Poll::Ready(Ok(()))
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
    sub.begin_page(shared.clock.now());
    let limit = shared.config.replay_page.max(1);
    shared
        .history
        .call(move |s| s.read_after(after, limit))
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
        self.0.poll_abort(cx.waker())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.unsubscribe(&self.sub);
    }
}
