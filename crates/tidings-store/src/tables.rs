//! The layout of the history file: five redb tables.
//!
//! - `events`: sequence number → [record](crate::record), the log itself.
//!   Keys are consecutive; a resume is one B-tree seek.
//! - `ids`: publisher-given id → sequence number, for idempotent retries
//!   and resuming from a publisher's id. The hub's own ids are not indexed:
//!   they carry their sequence number.
//! - `meta`: a few counters, written in the same transaction as the events
//!   they describe, so they can never disagree after a crash.
//! - `retained`: sequence number → record, the events that are the
//!   retained update of at least one topic, each once; and
//!   `retained_topics`: topic → sequence number, which one for each topic.
//!   Written in the same transaction as the events, never touched by
//!   retention. (Format 2; a format-1 file gets them, empty, when it is
//!   first opened by a build that writes format 2.)

use redb::TableDefinition;

/// Events by sequence number.
pub(crate) const EVENTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("events");

/// Sequence numbers by publisher-given id.
pub(crate) const IDS: TableDefinition<'static, &str, u64> = TableDefinition::new("ids");

/// The retained events by sequence number (each once, whatever the number
/// of topics it is retained for).
pub(crate) const RETAINED: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("retained");

/// The retained event of each topic that has one.
pub(crate) const RETAINED_TOPICS: TableDefinition<'static, &str, u64> =
    TableDefinition::new("retained_topics");

/// Counters and the format version.
pub(crate) const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// `meta` key: the layout version of the file (tables and records).
pub(crate) const META_FORMAT: &str = "format";
/// `meta` key: the sequence number the next event gets. Kept even when
/// retention has dropped every event, so the order survives restarts.
pub(crate) const META_NEXT: &str = "next";
/// `meta` key: the sum of the retained events' frame lengths, what
/// retention by bytes weighs.
pub(crate) const META_BYTES: &str = "bytes";

/// The layout this build writes and reads.
pub(crate) const FORMAT_VERSION: u64 = 2;

/// The older layout this build reads too, and upgrades when it opens it:
/// format 1 had no retained tables and no `RETAIN` records.
pub(crate) const FORMAT_WITHOUT_RETAINED: u64 = 1;

/// Reads a `meta` value.
pub(crate) fn meta_get(
    table: &impl redb::ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<Option<u64>, redb::StorageError> {
    Ok(table.get(key)?.map(|v| v.value()))
}
