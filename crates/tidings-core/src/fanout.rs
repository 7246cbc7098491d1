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
//! Batches that arrive while a round runs form the next round, so under
//! load each subscriber gets many events per write.
//!
//! A thread of its own, not a task: a round makes one system call per
//! subscriber, which must not hold a runtime worker.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::event::Event;
use crate::shared::Shared;

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

/// Runs rounds until told to stop or until every sender is gone.
fn run(shared: &Shared, mut jobs: mpsc::Receiver<Job>) {
    let mut events = Vec::new();
    let mut received = Vec::new();
    let mut acks: Vec<Ack> = Vec::new();
    while let Some(first) = jobs.blocking_recv() {
        let mut next = Some(first);
        let mut stop = None;
        while let Some(job) = next.take() {
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
                Job::Stop(done) => {
                    stop = Some(done);
                    break;
                }
            }
            if events.len() < MAX_ROUND {
                next = jobs.try_recv().ok();
            }
        }
        if !events.is_empty() {
            shared.fan_out(&events, &received, || acks.drain(..).for_each(|ack| ack()));
            events.clear();
            received.clear();
        }
        if let Some(done) = stop {
            jobs.close();
            let _ = done.send(());
            return;
        }
    }
}
