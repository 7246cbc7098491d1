//! Cluster mode's counterpart of the sequencer: follows the engine's log,
//! encodes each entry once, stores it locally and offers it to this hub's
//! subscribers, in the engine's order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};

use std::collections::HashMap;

use crate::clock;
use crate::cluster::{Cluster, Entry};
use crate::event::Event;
use crate::retained::Head;
use crate::shared::Shared;

/// Entries handled as one batch at most.
const MAX_BATCH: usize = 1024;

pub(crate) async fn run(shared: Arc<Shared>, cluster: Arc<dyn Cluster>) {
    let after = start_after(&shared, &*cluster).await;
    load_retained(&shared, &*cluster).await;
    tracing::info!(after, "following the cluster log");
    let mut log = cluster.follow(after);
    let mut warned = false;
    while let Some(first) = log.next().await {
        let mut entries = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Ok(entry) => {
                    warned = false;
                    entries.push(entry);
                }
                Err(err) if !warned => {
                    warned = true;
                    tracing::warn!(error = %err, "the cluster engine is unavailable; still following");
                }
                Err(err) => {
                    tracing::debug!(error = %err, "the cluster engine is still unavailable");
                }
            }
            if entries.len() < MAX_BATCH {
                next = log.next().now_or_never().flatten();
            }
        }
        if !entries.is_empty() {
            deliver(&shared, entries).await;
        }
    }
}

/// Where to start following: after what the local store holds, or, when
/// it holds nothing, before the oldest entry the engine keeps (this hub
/// then rebuilds the history it serves replays from).
async fn start_after(shared: &Arc<Shared>, cluster: &dyn Cluster) -> u64 {
    let mut delay = Duration::from_millis(100);
    loop {
        let local = shared.history.call(|s| s.bounds()).await;
        match (local, cluster.bounds().await) {
            (Ok(local), _) if local.first < local.next => return local.next - 1,
            (Ok(_), Ok(engine)) => return engine.first.saturating_sub(1),
            (Err(err), _) => tracing::warn!(error = %err, "cannot read the local history"),
            (_, Err(err)) => {
                tracing::warn!(error = %err, "cannot reach the cluster engine; retrying");
            }
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

async fn deliver(shared: &Arc<Shared>, entries: Vec<Entry>) {
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
    let batch = events.clone();
    if let Err(err) = shared.history.call(move |s| s.append(&batch)).await {
        // The engine keeps the entry; local replays may miss it, live
        // subscribers still get it.
        tracing::error!(error = %err, "cannot keep followed entries in the local history");
    }
    shared.retained.apply(&events);
    shared.fan_out(&events, &received);
}
