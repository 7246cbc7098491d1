//! The seam for cluster engines: a log shared by several hubs, outside
//! every one of them (a Redis Stream, a JetStream stream).
//!
//! In cluster mode the engine, not the local sequencer, gives each update
//! its place: a publish is acknowledged once the engine has it. Each hub
//! follows the engine's log once, encodes every entry once, keeps it in its
//! local [`Store`](crate::Store) (which then serves replays) and offers it
//! to its own subscribers — the same path a local publish takes after the
//! sequencer. Because every hub reads the same log, ids and order are the
//! same everywhere, and a `Last-Event-ID` from one hub resumes on another.

use std::fmt;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::error::PublishError;
use crate::event::{Published, Update};
use crate::store::Bounds;

/// One entry of the shared log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the cluster's total order.
    pub seq: u64,
    /// What was published.
    pub update: Update,
    /// When the publishing hub accepted it, in Unix milliseconds.
    pub time_ms: u64,
}

/// Retained updates as (topic, entry) pairs: an entry retained for several
/// topics comes once per topic (see [`Cluster::retained`]).
pub type RetainedEntries = Vec<(String, Entry)>;

/// The engine could not be reached or answered nonsense.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cluster engine: {0}")]
pub struct ClusterError(pub String);

/// A shared, totally ordered log of updates kept by an engine.
pub trait Cluster: Send + Sync + fmt::Debug + 'static {
    /// Appends `updates`, in order, as one publish; resolves once the
    /// engine has them (durably, as far as the engine promises). An update
    /// whose publisher id the engine already holds is a retry when its
    /// content is the same (it gets its old place back, `duplicate`, and is
    /// not appended again) and a [`PublishError::Conflict`] otherwise. An
    /// engine that cannot be reached fails fast with
    /// [`PublishError::Unavailable`].
    fn append<'a>(
        &'a self,
        updates: &'a [Update],
        time_ms: u64,
    ) -> BoxFuture<'a, Result<Vec<Published>, PublishError>>;

    /// Every entry after `after`, in order, for ever. Engine outages do not
    /// end the stream: it reports them as errors and resumes from its last
    /// position once the engine is back. Entries the engine no longer
    /// retains are skipped.
    fn follow(&self, after: u64) -> BoxStream<'static, Result<Entry, ClusterError>>;

    /// The place of the entry with this publisher id, if the engine still
    /// holds it.
    fn find_id<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<u64>, ClusterError>>;

    /// The range of places the engine retains.
    fn bounds(&self) -> BoxFuture<'_, Result<Bounds, ClusterError>>;

    /// The retained updates the engine keeps, whatever its log's retention
    /// dropped: for each topic that has one, the newest entry appended with
    /// `retain` and data on it (unless a later one with `retain` and no
    /// data cleared it), as (topic, entry) pairs; an entry retained for
    /// several topics comes once per topic. An append keeps them up to date
    /// (on Redis in the same step; see each engine).
    ///
    /// A hub reads them when it starts, after it read the place it will
    /// follow the log from: what changed since is in the log too, and the
    /// hub keeps the newer of the two. They need not be one consistent
    /// snapshot: a topic changed while they are read may come as it was or
    /// as it is. The default keeps none: an engine that cannot keep them
    /// only has what its log still holds.
    fn retained(&self) -> BoxFuture<'_, Result<RetainedEntries, ClusterError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
