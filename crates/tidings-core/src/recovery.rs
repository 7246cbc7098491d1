//! The recovery part: brings the hub back from faults by itself, without a
//! restart.
//!
//! - During an outage of the history store (a full disk, an I/O error), it
//!   asks the store to [recover](crate::Store::recover) at once, then once a
//!   second, until the store says it can write again.
//! - In cluster mode, while the engine is unreachable or its log not yet
//!   read up to the head, it asks the engine for its bounds once a second:
//!   an answer means the engine is reachable, and a head this hub has
//!   already followed means its history is loaded. (The follower reports
//!   outages; when the engine comes back with nothing new to read, only
//!   this probe notices.)

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::cluster::Cluster;
use crate::engine::EngineHealth;
use crate::shared::Shared;

/// How often a fault is looked at again.
const EVERY: Duration = Duration::from_secs(1);

/// How long the engine may take to answer a probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The cluster engine this hub follows, and what it knows of it.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    /// The engine.
    pub(crate) engine: Arc<dyn Cluster>,
    /// What the hub knows of it.
    pub(crate) health: Arc<EngineHealth>,
}

pub(crate) async fn run(shared: Weak<Shared>, watched: Option<Watched>) {
    // The history's handle only: waiting on it does not keep the hub's
    // shared state alive.
    let Some(history) = shared.upgrade().map(|s| s.history.clone()) else {
        return;
    };
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: nothing to look at yet.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = history.outage_started() => {}
        }
        if shared.strong_count() == 0 {
            return;
        }
        history.recover().await;
        if let Some(watched) = &watched {
            probe(watched).await;
        }
    }
}

/// Asks the engine for its bounds, when that can tell something new.
async fn probe(watched: &Watched) {
    let health = &watched.health;
    if !health.is_unreachable() && health.is_caught_up() {
        return;
    }
    match tokio::time::timeout(PROBE_TIMEOUT, watched.engine.bounds()).await {
        Ok(Ok(bounds)) => {
            health.reached();
            if bounds.first >= bounds.next || health.followed().saturating_add(1) >= bounds.next {
                health.set_caught_up();
            }
        }
        Ok(Err(err)) => health.unreachable(&err),
        Err(_) => health.unreachable(&format_args!(
            "no answer within {} s",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}
