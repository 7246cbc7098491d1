//! The one way the core calls its [`Store`].
//!
//! A store may block on I/O (the durable one fsyncs). Async code must then
//! call it off the runtime's worker threads, and the sequencer thread, which
//! exists to block on the store, calls it directly. Both go through
//! [`History`], so that the rule lives in one place.

use std::sync::Arc;

use crate::store::{Store, StoreError};

/// The hub's store, and how to call it.
#[derive(Debug, Clone)]
pub(crate) struct History {
    /// The store itself.
    store: Arc<dyn Store>,
}

impl History {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
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
        call(&*self.store)
    }

    /// Calls the store from async code: directly when it never blocks,
    /// else on the runtime's blocking pool.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if !self.store.blocking() {
            return call(&*self.store);
        }
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(&*store))
            .await
            .map_err(|e| StoreError::from_source("store task failed", e))?
    }
}
