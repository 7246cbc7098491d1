//! The one place that orders events: a thread that takes publishes in
//! arrival order, gives each update the next sequence number, encodes it,
//! appends whole batches to the store, hands the new events to the
//! fan-out thread and answers the publishers.
//!
//! One thread, because the order must be total and the store is written
//! by one writer; batches, because a durable store's fsync then serves
//! every publish that arrived while the previous one ran (group commit).
//! Publishers never wait on each other beyond that.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::error::PublishError;
use crate::event::{Event, Published, Update};
use crate::fanout::{Ack, FanOut};
use crate::retained::{self, Admission};
use crate::shared::Shared;

/// How many commands one batch takes at most.
const MAX_GROUP: usize = 1024;

pub(crate) type Reply = oneshot::Sender<Result<Vec<Published>, PublishError>>;

/// What the sequencer is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Publish these updates, all or none.
    Publish {
        /// The updates, already validated.
        updates: Vec<Update>,
        /// When the hub received them, for the latency metric.
        received: Instant,
        /// Where the outcome goes.
        reply: Reply,
    },
    /// Finish what came before and stop; then say so.
    Stop(oneshot::Sender<()>),
}

/// A group at least this large means publishers are many: the next group
/// then waits a little for stragglers before it is appended (only with a
/// store that fsyncs). Publishers answered together send their next publish
/// together, but not at the same instant; without the wait the first few
/// would take a whole fsync for themselves. (PostgreSQL's `commit_delay`.)
const BUSY_GROUP: usize = 4;

/// The longest wait for stragglers.
const MAX_GATHER: Duration = Duration::from_millis(2);

/// Runs until told to stop or until every sender is gone.
pub(crate) fn run(
    shared: &Shared,
    fanout: &FanOut,
    mut next: u64,
    mut rx: mpsc::Receiver<Command>,
) {
    let mut last_group = 0;
    let mut last_append = Duration::ZERO;
    while let Some(first) = rx.blocking_recv() {
        let mut commands = vec![first];
        drain(&mut rx, &mut commands);
        if shared.history.blocking() && last_group >= BUSY_GROUP {
            // Wait for about as many as last time, for at most half the
            // time the last append took.
            let deadline = Instant::now() + (last_append / 2).min(MAX_GATHER);
            while commands.len() < last_group && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(50));
                drain(&mut rx, &mut commands);
            }
        }
        last_group = commands.len();
        let started = Instant::now();
        let stopped = process(shared, fanout, &mut next, commands);
        last_append = started.elapsed();
        if let Some(done) = stopped {
            // Anything sent after the stop is refused.
            rx.close();
            while let Ok(command) = rx.try_recv() {
                if let Command::Publish { reply, .. } = command {
                    let _ = reply.send(Err(PublishError::ShuttingDown));
                }
            }
            // Everything stored is offered before the stop is answered.
            fanout.stop_blocking();
            let _ = done.send(());
            return;
        }
    }
}

/// Moves every command waiting in the channel (up to a group's worth) into
/// `commands`.
fn drain(rx: &mut mpsc::Receiver<Command>, commands: &mut Vec<Command>) {
    while commands.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(command) => commands.push(command),
            Err(_) => break,
        }
    }
}

/// One group of commands; returns the stop acknowledgement if one came.
fn process(
    shared: &Shared,
    fanout: &FanOut,
    next: &mut u64,
    commands: Vec<Command>,
) -> Option<oneshot::Sender<()>> {
    let mut batch = Batch::default();
    // Retained updates the group's publishes would add or clear: each
    // publish is checked against the limit before it is kept.
    let mut admission = Admission::default();
    let mut replies: Vec<(Reply, Result<Vec<Published>, PublishError>)> = Vec::new();
    let mut stop = None;
    let now_ms = clock::unix_ms();
    for command in commands {
        match command {
            Command::Stop(done) => stop = Some(done),
            Command::Publish { reply, .. } if stop.is_some() => {
                let _ = reply.send(Err(PublishError::ShuttingDown));
            }
            Command::Publish {
                updates,
                received,
                reply,
            } => {
                let mark = (batch.events.len(), *next);
                let added = batch.add(shared, &updates, received, next, now_ms);
                let added = added.and_then(|published| {
                    let fresh = batch.events.get(mark.0..).unwrap_or_default();
                    shared
                        .retained
                        .admit(&mut admission, retained::changes_of_events(fresh))
                        .map(|()| published)
                });
                match added {
                    Ok(published) => replies.push((reply, Ok(published))),
                    Err(err) => {
                        batch.truncate(mark.0);
                        *next = mark.1;
                        let _ = reply.send(Err(err));
                    }
                }
            }
        }
    }
    if !batch.events.is_empty() {
        if let Err(err) = shared.history.append_here(&batch.events) {
            if err.kind.is_outage() {
                // `History` logs the start and the end of an outage (a
                // full disk), not each batch it refuses.
                tracing::debug!(error = %err, events = batch.events.len(), "appending to history failed");
            } else {
                tracing::error!(error = %err, events = batch.events.len(), "appending to history failed");
            }
            let err = Arc::new(err);
            // Nothing of the batch is stored (the store's promise on a
            // failed append, kept across its recovery): its numbers go to
            // the next batch, so that the order has no hole.
            *next = batch.events.first().map_or(*next, |e| e.seq);
            for (reply, _) in replies {
                let _ = reply.send(Err(PublishError::Store(Arc::clone(&err))));
            }
            return stop;
        }
        shared
            .metrics
            .published
            .increment(batch.events.len() as u64);
        // Retained updates and the head first: a subscription that reads
        // them from now on has these events in its snapshot or live.
        shared.retained.apply(&batch.events);
    }
    if batch.events.is_empty() {
        // Nothing new (retries only): nothing to offer.
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
        return stop;
    }
    // Stored: the fan-out thread answers the publishers once it has offered
    // the events to every matching subscriber.
    let acks: Vec<Ack> = replies
        .into_iter()
        .map(|(reply, result)| -> Ack {
            Box::new(move || {
                let _ = reply.send(result);
            })
        })
        .collect();
    if let Err(acks) = fanout.send_blocking(batch.events, batch.received, acks) {
        tracing::error!(
            "the fan-out thread is gone; stored events reach subscribers only by replay"
        );
        acks.into_iter().for_each(|ack| ack());
    }
    stop
}

/// The events of one group, in order.
#[derive(Default)]
struct Batch {
    /// The new events.
    events: Vec<Arc<Event>>,
    /// When each was received, for the latency metric.
    received: Vec<Instant>,
    /// Publisher ids of the new events, to catch a retry within the group.
    ids: HashMap<Box<str>, Arc<Event>>,
}

impl Batch {
    /// Adds one publish's updates, or none of them.
    fn add(
        &mut self,
        shared: &Shared,
        updates: &[Update],
        received: Instant,
        next: &mut u64,
        now_ms: u64,
    ) -> Result<Vec<Published>, PublishError> {
        let mut published = Vec::with_capacity(updates.len());
        for (index, update) in updates.iter().enumerate() {
            let event = Event::encode(*next, update, now_ms)
                .map_err(|error| PublishError::Invalid { index, error })?;
            if let Some(id) = &update.id {
                let existing = match self.ids.get(id.as_str()) {
                    Some(known) => Some(Arc::clone(known)),
                    None => shared
                        .history
                        .call_here(|s| s.find_id(id))
                        .map_err(|e| PublishError::Store(Arc::new(e)))?,
                };
                if let Some(existing) = existing {
                    if !existing.same_update(&event) {
                        return Err(PublishError::Conflict { id: id.clone() });
                    }
                    shared.metrics.duplicates.increment(1);
                    published.push(Published {
                        id: id.clone(),
                        seq: existing.seq,
                        duplicate: true,
                    });
                    continue;
                }
            }
            *next += 1;
            let event = Arc::new(event);
            if update.id.is_some() {
                self.ids.insert(event.id.clone(), Arc::clone(&event));
            }
            published.push(Published {
                id: event.id.to_string(),
                seq: event.seq,
                duplicate: false,
            });
            self.events.push(event);
            self.received.push(received);
        }
        Ok(published)
    }

    /// Forgets everything from `len` on.
    fn truncate(&mut self, len: usize) {
        for event in self.events.drain(len..) {
            self.ids.remove(&*event.id);
        }
        self.received.truncate(len);
    }
}
