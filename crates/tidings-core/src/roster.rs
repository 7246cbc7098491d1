//! The seam for keeping active subscriptions cluster-wide: each hub keeps
//! the records of its own subscriptions in the engine under a lease it
//! renews; a hub whose lease lapses (it died without saying goodbye) is
//! cleaned up by one surviving hub, which claims the job atomically.
//!
//! Nothing here is a membership protocol of its own: the engine's expiring
//! keys are the only notion of "alive" (Redis keys with `PX`, a JetStream
//! key-value bucket with `max_age`), and its atomic operations the only
//! coordination (`SET NX`, a key-value `create`).

use std::fmt;

use futures_util::future::BoxFuture;

use crate::cluster::ClusterError;

/// A change to one hub's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterChange {
    /// Keep `record` under `key` (a new subscription).
    Put {
        /// The record's key among the hub's records: `[A-Za-z0-9-]`, at
        /// most 64 bytes.
        key: String,
        /// The record (opaque to the engine).
        record: String,
    },
    /// Forget the record under `key` (the subscription ended).
    Remove {
        /// The record's key.
        key: String,
    },
}

/// What a hub's lease came to when it wrote or renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Alive: the write was done, or the lease renewed.
    Held,
    /// Lapsed: the hub was (or is about to be) taken for dead and its
    /// records reported inactive by another hub; nothing was written. The
    /// hub must join again under a new name.
    Lost,
}

/// A dead hub claimed for cleanup: its name and its records.
pub type DeadHub = (String, Vec<String>);

/// Active-subscription records of the hubs of a cluster, each hub's under
/// a lease. Hub names are `[A-Za-z0-9-]`, at most 64 bytes.
pub trait Roster: Send + Sync + fmt::Debug + 'static {
    /// Starts `node`'s lease (before any of its records is written).
    fn join<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// Renews `node`'s lease; [`Lease::Lost`] when it had lapsed.
    fn renew<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Lease, ClusterError>>;

    /// Applies `changes` to `node`'s records, in order, while its lease is
    /// held ([`Lease::Lost`] and nothing written otherwise).
    fn write<'a>(
        &'a self,
        node: &'a str,
        changes: &'a [RosterChange],
    ) -> BoxFuture<'a, Result<Lease, ClusterError>>;

    /// The records of every hub whose lease is held.
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>>;

    /// Claims the cleanup of one hub whose lease lapsed, if there is one:
    /// its name and records. Of several hubs asking at once, one gets a
    /// given hub; the claim itself lapses after a while, so that a
    /// claimant that dies before [`Roster::forget`] is replaced.
    fn claim_dead<'a>(
        &'a self,
        me: &'a str,
    ) -> BoxFuture<'a, Result<Option<DeadHub>, ClusterError>>;

    /// Forgets `node`: its records and its lease (after its subscriptions
    /// were reported inactive, or when it leaves).
    fn forget<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), ClusterError>>;
}
