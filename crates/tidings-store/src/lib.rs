//! Durable event history for Tidings: [`DiskStore`], the embedded store
//! behind `tidings-core`'s [`Store`](tidings_core::Store) trait that
//! `tidings serve` uses by default.
//!
//! One [redb](https://www.redb.org) file, `history.redb`, in a data
//! directory that one hub at a time may hold (`LOCK`). Events are keyed by
//! sequence number, so resuming from any retained id is one B-tree seek;
//! publisher-given ids have their own index. Each append is one
//! transaction, fsynced before the hub acknowledges it; the hub's
//! sequencer batches every publish that arrives meanwhile into the next
//! one. Retention runs in the background in bounded chunks.
//!
//! **Architecture Invariant**: a publish is acknowledged only after the
//! transaction holding it is durable, and a transaction is all or nothing:
//! after a crash the history holds every acknowledged event and no part of
//! any other.
//!
//! **Architecture Invariant**: the sequence number the next event gets is
//! stored with the events, so the order (and the hub's ids) keep
//! increasing across restarts, even when retention dropped every event.
//!
//! See `docs/storage.md` for the layout, the measurements behind the choice
//! of redb, and what to do with a damaged file.

mod check;
mod disk;
mod error;
mod fault;
mod lock;
mod open;
mod record;
mod retention;
mod tables;

pub use check::{CheckReport, check};
pub use disk::{DiskStore, OpenReport, Options, Stats};
pub use error::OpenError;
pub use lock::LOCK_FILE;
pub use open::HISTORY_FILE;
pub use record::RecordError;
