//! A write the disk refused, and how the store gets back from it.
//!
//! When a write fails with an I/O error (most often: the disk is full),
//! redb refuses every later call until the database is reopened. The store
//! reopens it at once, so that reads (replays, id lookups) work again, and
//! remembers the [`Fault`]: it refuses writes up front, without touching
//! the file, until [`Store::recover`](tidings_core::Store::recover) finds
//!
//! 1. that the file system has room for what failed: a file of about twice
//!    its size can be written, synced and removed ([`probe_space`]; twice,
//!    because redb allocates pages in powers of two), and
//! 2. that a real commit goes through ([`recommit`]).
//!
//! That commit also rolls back an append whose commit reported a failure
//! but reached the file anyway (an fsync that failed after redb wrote its
//! header): its publishers were told that it failed, so it must never be
//! replayed, and its sequence numbers go to the next append.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::Path;

use redb::{Database, ReadableTable as _};
use tidings_core::{StoreError, StoreErrorKind};

use crate::error::{damaged, io_kind, store_error};
use crate::open::SPACE_PROBE_FILE;
use crate::record::Parsed;
use crate::tables::{EVENTS, IDS, META, META_BYTES, META_NEXT, meta_get};

/// Room checked for beyond twice what failed: redb's own pages (the
/// commit's tree nodes, its header).
const PROBE_MARGIN: u64 = 256 << 10;

/// The largest file the probe writes: a failed batch larger than this is
/// tried again once this much is free (and may fail again).
const PROBE_MAX: u64 = 16 << 20;

/// Why the store refuses writes, until it recovers.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// What the failure was: a full disk, or another I/O error.
    pub(crate) kind: StoreErrorKind,
    /// What failed, for people.
    pub(crate) message: String,
    /// Bytes the largest failed write needed: the room to find again.
    pub(crate) needed: u64,
    /// The first sequence number of an append whose commit failed: what
    /// to roll back if it reached the file anyway.
    pub(crate) failed_from: Option<u64>,
}

impl Fault {
    /// The error a write gets while the fault lasts.
    pub(crate) fn refusal(&self) -> StoreError {
        StoreError::new(
            self.kind,
            format!(
                "{} (writes are refused until the store recovers)",
                self.message
            ),
        )
    }

    /// Adds a later failure of the same outage: the latest cause, the
    /// largest need, the earliest failed append.
    pub(crate) fn merge(&mut self, later: Self) {
        self.kind = later.kind;
        self.message = later.message;
        self.needed = self.needed.max(later.needed);
        self.failed_from = match (self.failed_from, later.failed_from) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Checks that the file system under `dir` has room for a write of
/// `needed` bytes: writes a file of about twice that, syncs it and removes
/// it.
pub(crate) fn probe_space(dir: &Path, needed: u64) -> Result<(), StoreError> {
    let size = needed
        .saturating_mul(2)
        .saturating_add(PROBE_MARGIN)
        .min(PROBE_MAX);
    let path = dir.join(SPACE_PROBE_FILE);
    let written = write_zeros(&path, size);
    let removed = fs::remove_file(&path);
    written
        .and(removed)
        .map_err(|e| StoreError::new(io_kind(&e), format!("no room for {size} bytes yet: {e}")))
}

fn write_zeros(path: &Path, size: u64) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    let chunk = vec![0u8; 64 << 10];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        file.write_all(chunk.get(..n).unwrap_or(&chunk))?;
        left -= n as u64;
    }
    file.sync_all()
}

/// Commits a write transaction (with an fsync), rolling back the events
/// from `failed_from` on if a failed append left them in the file; returns
/// how many it rolled back.
pub(crate) fn recommit(db: &Database, failed_from: Option<u64>) -> Result<u64, StoreError> {
    let err = |e: redb::Error| store_error("recovering", e);
    let tx = db.begin_write().map_err(|e| err(e.into()))?;
    let mut rolled_back = 0;
    {
        let mut events = tx.open_table(EVENTS).map_err(|e| err(e.into()))?;
        let mut ids = tx.open_table(IDS).map_err(|e| err(e.into()))?;
        let mut meta = tx.open_table(META).map_err(|e| err(e.into()))?;
        let mut next = meta_get(&meta, META_NEXT)
            .map_err(|e| err(e.into()))?
            .ok_or_else(|| {
                StoreError::new(
                    StoreErrorKind::Damaged,
                    "the history has no next sequence number",
                )
            })?;
        let mut bytes = meta_get(&meta, META_BYTES)
            .map_err(|e| err(e.into()))?
            .unwrap_or(0);
        if let Some(from) = failed_from.filter(|&from| from < next) {
            let mut dropped_ids: Vec<(Box<str>, u64)> = Vec::new();
            for entry in events.range(from..).map_err(|e| err(e.into()))? {
                let (key, value) = entry.map_err(|e| err(e.into()))?;
                let seq = key.value();
                let parsed = Parsed::new(value.value())
                    .map_err(|e| damaged(&format!("recovering: event {seq}"), e))?;
                bytes = bytes.saturating_sub(parsed.frame_len(seq));
                if let Some(id) = parsed.publisher_id {
                    dropped_ids.push((id.into(), seq));
                }
                rolled_back += 1;
            }
            events
                .retain_in(from.., |_, _| false)
                .map_err(|e| err(e.into()))?;
            for (id, seq) in dropped_ids {
                let current = ids.get(&*id).map_err(|e| err(e.into()))?.map(|v| v.value());
                if current == Some(seq) {
                    ids.remove(&*id).map_err(|e| err(e.into()))?;
                }
            }
            next = from;
        }
        // Written even when unchanged: the commit proves the file takes
        // writes.
        meta.insert(META_NEXT, next).map_err(|e| err(e.into()))?;
        meta.insert(META_BYTES, bytes).map_err(|e| err(e.into()))?;
    }
    tx.commit().map_err(|e| err(e.into()))?;
    Ok(rolled_back)
}
