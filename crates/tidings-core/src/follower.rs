//! Cluster mode's counterpart of the sequencer: follows the engine's log,
//! encodes each entry once, stores it locally and offers it to this hub's
//! subscribers, in the engine's order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};

use std::collections::HashMap;

use crate::clock;
use crate::cluster::{Cluster, Entry};
use crate::engine::EngineHealth;
use crate::event::Event;
use crate::fanout::FanOut;
use crate::retained::Head;
use crate::shared::Shared;

/// Entries handled as one batch at most.
const MAX_BATCH: usize = 1024;

pub(crate) async fn run(
    shared: Arc<Shared>,
    fanout: FanOut,
    cluster: Arc<dyn Cluster>,
    health: Arc<EngineHealth>,
) {
    let after = start_after(&shared, &*cluster, &health).await;
    load_retained(&shared, &*cluster).await;
    tracing::info!(after, "following the cluster log");
    let mut log = cluster.follow(after);
    while let Some(first) = log.next().await {
        let mut entries = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Ok(entry) => {
                    health.reached();
                    entries.push(entry);
                }
                // Logged once per outage, by `health`.
                Err(err) => {
                    health.unreachable(&err);
                    tracing::debug!(error = %err, "the cluster engine is unavailable; still following");
                }
            }
            if entries.len() < MAX_BATCH {
                next = log.next().now_or_never().flatten();
            }
        }
        if !entries.is_empty() {
            deliver(&shared, &fanout, &health, entries).await;
        }
    }
}

/// Where to start following: after what the local store holds, or, when
/// it holds nothing, before the oldest entry the engine keeps (this hub
/// then rebuilds the history it serves replays from). Marks the history
/// loaded when the engine has nothing after that.
async fn start_after(shared: &Arc<Shared>, cluster: &dyn Cluster, health: &EngineHealth) -> u64 {
    let mut delay = Duration::from_millis(100);
    loop {
        let local = shared.history.call(|s| s.bounds()).await;
        let engine = cluster.bounds().await;
        match &engine {
            Ok(_) => health.reached(),
            Err(err) => health.unreachable(err),
        }
        let after = match (local, engine) {
            (Ok(local), Ok(engine)) if local.first < local.next => Some((local.next - 1, engine)),
            (Ok(_), Ok(engine)) => Some((engine.first.saturating_sub(1), engine)),
            (Err(err), _) => {
                tracing::warn!(error = %err, "cannot read the local history");
                None
            }
            (_, Err(_)) => None,
        };
        if let Some((after, engine)) = after {
            health.set_followed(after);
            if after.saturating_add(1) >= engine.next {
                health.set_caught_up();
            }
            return after;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Loads the retained updates the engine keeps (those of entries its log
/// no longer holds included), with the engine's head as this hub's head:
/// read after the place the follower starts from, so that whatever changes
/// meanwhile comes through the log as well.
async fn load_retained(shared: &Arc<Shared>, cluster: &dyn Cluster) {
    let mut delay = Duration::from_millis(100);
    let (bounds, entries) = loop {
        let bounds = cluster.bounds().await;
        let retained = match &bounds {
            Ok(_) => cluster.retained().await,
            Err(err) => Err(err.clone()),
        };
        match (bounds, retained) {
            (Ok(bounds), Ok(entries)) => break (bounds, entries),
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(error = %err, "cannot read the retained updates from the cluster engine; retrying");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    };
    // Each entry once, shared by its topics.
    let mut events: HashMap<u64, Option<Arc<Event>>> = HashMap::new();
    let mut retained = Vec::with_capacity(entries.len());
    for (topic, entry) in entries {
        let event = events.entry(entry.seq).or_insert_with(|| {
            Event::encode(entry.seq, &entry.update, entry.time_ms)
                .inspect_err(|err| {
                    tracing::error!(seq = entry.seq, error = %err, "skipping a retained update that cannot be encoded");
                })
                .ok()
                .map(Arc::new)
        });
        if let Some(event) = event {
            retained.push((topic.into_boxed_str(), Arc::clone(event)));
        }
    }
    let holds_any = bounds.first < bounds.next || !retained.is_empty();
    let head = holds_any.then(|| Head::Place(bounds.next.saturating_sub(1)));
    tracing::info!(
        topics = retained.len(),
        "retained updates loaded from the cluster engine"
    );
    shared.retained.load(retained, head);
}

async fn deliver(shared: &Shared, fanout: &FanOut, health: &EngineHealth, entries: Vec<Entry>) {
    let now_ms = clock::unix_ms();
    let now = Instant::now();
    let mut events = Vec::with_capacity(entries.len());
    let mut received = Vec::with_capacity(entries.len());
    for entry in entries {
        match Event::encode(entry.seq, &entry.update, entry.time_ms) {
            Ok(event) => {
                // The publishing hub's clock said when it accepted the
                // update; on one machine or with synchronised clocks that
                // keeps the latency metric end to end.
                let age = Duration::from_millis(now_ms.saturating_sub(entry.time_ms));
                received.push(now.checked_sub(age).unwrap_or(now));
                events.push(Arc::new(event));
            }
            Err(err) => {
                tracing::error!(seq = entry.seq, error = %err, "skipping an entry that cannot be encoded");
            }
        }
    }
    if events.is_empty() {
        return;
    }
    if let Err(err) = shared.history.append(events.clone()).await {
        // The engine keeps the entry; local replays may miss it, live
        // subscribers still get it.
        tracing::error!(error = %err, "cannot keep followed entries in the local history");
    }
    // Retained updates and the head first: a subscription that reads them
    // from now on has these events in its snapshot or live.
    shared.retained.apply(&events);
    let last = events.last().map(|e| e.seq);
    fanout.send(events, received).await;
    if let Some(last) = last {
        health.set_followed(last);
    }
}
