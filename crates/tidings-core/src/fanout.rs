//! The fan-out thread: hands every stored event to each matching
//! subscriber, in order, one round at a time.
//!
//! The writer (the sequencer thread, or the cluster follower) stores a
//! batch and hands it here. A round offers its events to the subscribers'
//! queues (cheap: a pointer each), then answers the publishers of those
//! events (a publish is acknowledged once every matching subscriber has it
//! queued, as it always was, but not only once ten thousand sockets have
//! it), then flushes each subscriber that had an empty queue: when its task
//! is idle and its connection takes the bytes at once, the frames are
//! written from here, with no task woken (the cost an event has per
//! subscriber then comes close to the system call alone); otherwise the
//! task is woken to write.
//! The flushing looks for newly stored events every few hundred
//! subscribers and offers them at once: a subscriber the sweep has not
//! reached yet then writes the old and the new in one go, so under load
//! each subscriber gets many events per write, and an event that arrives
//! during a long sweep does not wait for its end.
//!
//! A thread of its own, not a task: a round makes one system call per
//! subscriber, which must not hold a runtime worker.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use crate::event::Event;
use crate::shared::Shared;
use crate::subscriber::Subscriber;

/// Batches waiting for the fan-out, at most; a writer that finds the
/// channel full waits (the fan-out is the slowest part then).
const QUEUED_BATCHES: usize = 64;

/// Events one round takes at most.
const MAX_ROUND: usize = 1024;

/// What runs once a round's events are offered: a publisher's answer.
pub(crate) type Ack = Box<dyn FnOnce() + Send>;

/// What the fan-out thread is asked to do.
enum Job {
    /// Offer these stored events, in order.
    Round {
        /// The events.
        events: Vec<Arc<Event>>,
        /// When the hub received each, for the latency metric.
        received: Vec<Instant>,
        /// Run once they are offered.
        acks: Vec<Ack>,
    },
    /// Finish what came before, say so, and stop.
    Stop(oneshot::Sender<()>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Round { events, .. } => f
                .debug_struct("Round")
                .field("events", &events.len())
                .finish_non_exhaustive(),
            Self::Stop(_) => f.write_str("Stop"),
        }
    }
}

/// The way to the fan-out thread.
#[derive(Debug, Clone)]
pub(crate) struct FanOut {
    /// Its job channel.
    jobs: mpsc::Sender<Job>,
}

impl FanOut {
    /// Starts the thread.
    pub(crate) fn start(
        shared: Arc<Shared>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (jobs, rx) = mpsc::channel(QUEUED_BATCHES);
        let thread = std::thread::Builder::new()
            .name("tidings-fanout".into())
            .spawn(move || run(&shared, rx))?;
        Ok((Self { jobs }, thread))
    }

    /// Hands over stored events, from a thread that may block (the
    /// sequencer); `acks` run once they are offered. Returns the acks back
    /// if the fan-out has stopped.
    pub(crate) fn send_blocking(
        &self,
        events: Vec<Arc<Event>>,
        received: Vec<Instant>,
        acks: Vec<Ack>,
    ) -> Result<(), Vec<Ack>> {
        self.jobs
            .blocking_send(Job::Round {
                events,
                received,
                acks,
            })
            .map_err(|err| match err.0 {
                Job::Round { acks, .. } => acks,
                Job::Stop(_) => Vec::new(),
            })
    }

    /// Hands over stored events, from async code (the follower).
    pub(crate) async fn send(&self, events: Vec<Arc<Event>>, received: Vec<Instant>) -> bool {
        self.jobs
            .send(Job::Round {
                events,
                received,
                acks: Vec::new(),
            })
            .await
            .is_ok()
    }

    /// Lets the fan-out finish what it was given and stop; from a thread
    /// that may block.
    pub(crate) fn stop_blocking(&self) {
        let (done, stopped) = oneshot::channel();
        if self.jobs.blocking_send(Job::Stop(done)).is_ok() {
            let _ = stopped.blocking_recv();
        }
    }

    /// Lets the fan-out finish what it was given and stop.
    pub(crate) async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.jobs.send(Job::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

/// Subscribers flushed between two looks for newly stored events: a
/// batch that arrives during a long sweep waits at most this many writes
/// (a millisecond or two) to be offered, rather than for the whole sweep.
const FLUSH_STEP: usize = 256;

/// Runs until told to stop or until every sender is gone.
///
/// A loop of three steps: gather what was handed over (waiting only when
/// nothing is left to do), offer it and answer its publishers, then flush
/// up to [`FLUSH_STEP`] of the subscribers waiting for it. New events are
/// thus offered in the middle of a sweep: a subscriber the sweep has not
/// reached yet gets the old and the new events in one write, one it has
/// passed is flushed again after the rest; each one's events stay in
/// order, because its queue is.
fn run(shared: &Shared, mut jobs: mpsc::Receiver<Job>) {
    let mut events = Vec::new();
    let mut received = Vec::new();
    let mut acks: Vec<Ack> = Vec::new();
    // Subscribers with something queued that the fan-out has not flushed
    // yet, in the order they were first offered it.
    let mut to_flush: VecDeque<Arc<Subscriber>> = VecDeque::new();
    let mut stop = None;
    let mut closed = false;
    loop {
        if to_flush.is_empty() && stop.is_none() {
            match jobs.blocking_recv() {
                Some(job) => gather(job, &mut events, &mut received, &mut acks, &mut stop),
                None => closed = true,
            }
        }
        while stop.is_none() && !closed && events.len() < MAX_ROUND {
            match jobs.try_recv() {
                Ok(job) => gather(job, &mut events, &mut received, &mut acks, &mut stop),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => closed = true,
            }
        }
        if !events.is_empty() {
            shared.offer(&events, &received, &mut to_flush);
            acks.drain(..).for_each(|ack| ack());
            events.clear();
            received.clear();
        }
        // Stopping: everything offered is flushed first.
        let step = if stop.is_some() || closed {
            usize::MAX
        } else {
            FLUSH_STEP
        };
        let now = shared.clock.now();
        for sub in to_flush.drain(..step.min(to_flush.len())) {
            sub.flush(now, &shared.metrics);
        }
        if to_flush.is_empty() {
            if let Some(done) = stop.take() {
                jobs.close();
                let _ = done.send(());
                return;
            }
            if closed {
                return;
            }
        }
    }
}

/// Takes one job's events into the round, or the stop.
fn gather(
    job: Job,
    events: &mut Vec<Arc<Event>>,
    received: &mut Vec<Instant>,
    acks: &mut Vec<Ack>,
    stop: &mut Option<oneshot::Sender<()>>,
) {
    match job {
        Job::Round {
            events: mut more,
            received: mut at,
            acks: mut answers,
        } => {
            events.append(&mut more);
            received.append(&mut at);
            acks.append(&mut answers);
        }
        Job::Stop(done) => *stop = Some(done),
    }
}
