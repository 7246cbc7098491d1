//! How this hub sees its cluster engine: reachable or not, refusing writes
//! because it is full or not, and whether the follower has read its log up
//! to the head once since the hub started.
//!
//! Publishes, the follower and the recovery probe report what they meet;
//! readiness reads it. An outage and a full engine are episodes: one log
//! line when one starts and one when it ends, however many publishes meet
//! it in between.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// What this hub knows of its engine.
#[derive(Debug, Default)]
pub(crate) struct EngineHealth {
    /// The episodes under way.
    state: Mutex<Episodes>,
    /// The follower has read the log up to the engine's head once: the
    /// history this hub serves replays from is loaded.
    caught_up: AtomicBool,
    /// The place of the last entry the follower delivered: how far the
    /// history is loaded.
    followed: AtomicU64,
}

#[derive(Debug, Default)]
struct Episodes {
    /// Since when the engine cannot be reached; `None`: it can.
    unreachable_since: Option<Instant>,
    /// Since when the engine refuses writes as full; `None`: it takes them.
    full_since: Option<Instant>,
}

impl EngineHealth {
    fn episodes(&self) -> std::sync::MutexGuard<'_, Episodes> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Something could not reach the engine.
    pub(crate) fn unreachable(&self, error: &dyn Display) {
        let mut episodes = self.episodes();
        if episodes.unreachable_since.is_none() {
            episodes.unreachable_since = Some(Instant::now());
            tracing::warn!(
                error = %error,
                "the cluster engine cannot be reached: publishes get 503 and this hub reports not ready until it is back; retrying"
            );
        }
    }

    /// Something reached the engine.
    pub(crate) fn reached(&self) {
        let mut episodes = self.episodes();
        if let Some(since) = episodes.unreachable_since.take() {
            tracing::info!(
                seconds = since.elapsed().as_secs_f64(),
                "the cluster engine is reachable again"
            );
        }
    }

    /// The engine refused a write as full.
    pub(crate) fn full(&self, error: &dyn Display) {
        // It answered.
        self.reached();
        let mut episodes = self.episodes();
        if episodes.full_since.is_none() {
            episodes.full_since = Some(Instant::now());
            tracing::warn!(
                error = %error,
                "the cluster engine is full: publishes get 507 until it takes writes again"
            );
        }
    }

    /// The engine took a write: it is reachable and not full.
    pub(crate) fn took_write(&self) {
        self.reached();
        let mut episodes = self.episodes();
        if let Some(since) = episodes.full_since.take() {
            tracing::info!(
                seconds = since.elapsed().as_secs_f64(),
                "the cluster engine takes writes again: publishes are accepted"
            );
        }
    }

    /// Whether the engine is unreachable, as far as this hub knows.
    pub(crate) fn is_unreachable(&self) -> bool {
        self.episodes().unreachable_since.is_some()
    }

    /// Whether the follower has read the log up to the head once.
    pub(crate) fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// The follower has read the log up to the head.
    pub(crate) fn set_caught_up(&self) {
        if !self.caught_up.swap(true, Ordering::AcqRel) {
            tracing::info!(
                followed = self.followed(),
                "the cluster log is read up to its head: history loaded"
            );
        }
    }

    /// The place of the last entry the follower delivered.
    pub(crate) fn followed(&self) -> u64 {
        self.followed.load(Ordering::Acquire)
    }

    /// The follower delivered everything up to `seq`.
    pub(crate) fn set_followed(&self, seq: u64) {
        self.followed.fetch_max(seq, Ordering::AcqRel);
    }
}
