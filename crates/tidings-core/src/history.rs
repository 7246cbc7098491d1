//! The one way the core calls its [`Store`], and what it has seen of it.
//!
//! A store may block on I/O (the durable one fsyncs). Async code must then
//! call it off the runtime's worker threads, and the sequencer thread, which
//! exists to block on the store, calls it directly. Both go through
//! [`History`], so that the rule lives in one place.
//!
//! Every call's outcome passes here too. A failure that means the store
//! cannot write now (its disk is full, an I/O error: an
//! [outage](StoreErrorKind::is_outage)) starts an episode: one log line,
//! readiness reports it, and the recovery part asks the store to
//! [recover](Store::recover), at once and then every second, until it can
//! write again; that, or an append that succeeds, ends the episode with a
//! second log line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::event::Event;
use crate::store::{Store, StoreError, StoreErrorKind};

/// The hub's store, how to call it, and its outages.
#[derive(Debug, Clone)]
pub(crate) struct History {
    /// The store itself.
    store: Arc<dyn Store>,
    /// The store's outage, if one is under way; shared by every clone.
    outage: Arc<Outage>,
}

/// What is known of the store's ability to write.
#[derive(Debug, Default)]
struct Outage {
    /// The episode under way; `None`: the store writes.
    episode: Mutex<Option<Episode>>,
    /// Whether an episode is under way: read on every append, without the
    /// lock.
    failing: AtomicBool,
    /// Counts failures: a recovery that raced with a newer failure does not
    /// end the episode.
    failures: AtomicU64,
    /// Wakes the recovery part when an episode starts.
    started: tokio::sync::Notify,
}

/// One outage of the store.
#[derive(Debug, Clone, Copy)]
struct Episode {
    /// What the store last said: full, or otherwise unavailable.
    kind: StoreErrorKind,
    /// When it started.
    since: Instant,
}

impl History {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            outage: Arc::default(),
        }
    }

    /// Whether calls may block on I/O.
    pub(crate) fn blocking(&self) -> bool {
        self.store.blocking()
    }

    /// Calls the store on this thread. For threads that may block (the
    /// sequencer's), never for async code on the runtime.
    pub(crate) fn call_here<T>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        debug_assert!(
            !self.store.blocking() || tokio::runtime::Handle::try_current().is_err(),
            "a blocking store called on the async runtime"
        );
        let result = call(&*self.store);
        self.observe(&result);
        result
    }

    /// Calls the store from async code: directly when it never blocks,
    /// else on the runtime's blocking pool.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let result = if self.store.blocking() {
            let store = Arc::clone(&self.store);
            tokio::task::spawn_blocking(move || call(&*store))
                .await
                .unwrap_or_else(|e| {
                    // Cancelled by the runtime stopping, or a panic: not a
                    // fault of the store's disk.
                    let kind = if e.is_cancelled() {
                        StoreErrorKind::Closed
                    } else {
                        StoreErrorKind::Invalid
                    };
                    Err(StoreError::with_source(kind, "store task failed", e))
                })
        } else {
            call(&*self.store)
        };
        self.observe(&result);
        result
    }

    /// Appends `events` on this thread (the sequencer's); a success ends an
    /// outage.
    pub(crate) fn append_here(&self, events: &[Arc<Event>]) -> Result<(), StoreError> {
        let result = self.call_here(|s| s.append(events));
        if result.is_ok() {
            self.wrote();
        }
        result
    }

    /// Appends `events` from async code (the follower's); a success ends an
    /// outage.
    pub(crate) async fn append(&self, events: Vec<Arc<Event>>) -> Result<(), StoreError> {
        let result = self.call(move |s| s.append(&events)).await;
        if result.is_ok() {
            self.wrote();
        }
        result
    }

    /// What kind of outage the store is in, if it is in one.
    pub(crate) fn outage(&self) -> Option<StoreErrorKind> {
        if !self.outage.failing.load(Ordering::Acquire) {
            return None;
        }
        self.episode().map(|e| e.kind)
    }

    /// Resolves once an outage has started since the last call (at once if
    /// one started meanwhile).
    pub(crate) async fn outage_started(&self) {
        self.outage.started.notified().await;
    }

    /// During an outage, asks the store to recover; ends the outage when it
    /// says it can write again.
    pub(crate) async fn recover(&self) {
        if !self.outage.failing.load(Ordering::Acquire) {
            return;
        }
        let failures = self.outage.failures.load(Ordering::Acquire);
        match self.call(|s| s.recover()).await {
            Ok(()) if self.outage.failures.load(Ordering::Acquire) == failures => self.wrote(),
            Ok(()) => {}
            Err(err) => tracing::debug!(error = %err, "the history store is still failing"),
        }
    }

    fn episode(&self) -> Option<Episode> {
        *self
            .outage
            .episode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts (or updates) an outage when `result` is one.
    fn observe<T>(&self, result: &Result<T, StoreError>) {
        let Err(err) = result else {
            return;
        };
        if !err.kind.is_outage() {
            return;
        }
        self.outage.failures.fetch_add(1, Ordering::AcqRel);
        let mut episode = self
            .outage
            .episode
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(episode) = episode.as_mut() {
            episode.kind = err.kind;
            return;
        }
        *episode = Some(Episode {
            kind: err.kind,
            since: Instant::now(),
        });
        self.outage.failing.store(true, Ordering::Release);
        drop(episode);
        if err.kind == StoreErrorKind::Full {
            tracing::error!(
                error = %err,
                "the history store's disk is full: publishes are refused with 507 until space is freed; the hub checks every second and takes publishes again by itself"
            );
        } else {
            tracing::error!(
                error = %err,
                "the history store cannot write: publishes are refused with 503; the hub tries to bring it back every second"
            );
        }
        self.outage.started.notify_one();
    }

    /// The store wrote (or says it can): ends an outage.
    fn wrote(&self) {
        if !self.outage.failing.load(Ordering::Acquire) {
            return;
        }
        let mut episode = self
            .outage
            .episode
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ended = episode.take();
        self.outage.failing.store(false, Ordering::Release);
        drop(episode);
        if let Some(episode) = ended {
            tracing::info!(
                seconds = episode.since.elapsed().as_secs_f64(),
                "the history store writes again: publishes are accepted"
            );
        }
    }
}
