//! The full check of a history: every page's checksum (redb's integrity
//! check) and every record, index entry and counter. Slow on a big history
//! (it reads the whole file), so it runs on request, not at every start.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase as _, ReadableTableMetadata as _};

use crate::error::{OpenError, catch_panic};
use crate::open;
use crate::record::Parsed;
use crate::tables::{EVENTS, IDS, META, META_BYTES, META_NEXT, meta_get};

/// What a full check found in a sound history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The history file.
    pub file: PathBuf,
    /// Events checked.
    pub events: u64,
    /// Publisher ids checked against the index.
    pub publisher_ids: u64,
    /// The sum of the frames' lengths, as recounted.
    pub bytes: u64,
    /// redb found a page it had to repair (the file was not closed cleanly
    /// or was changed outside redb): the check is still clean, but the last
    /// unacknowledged transaction may have been rolled back.
    pub repaired: bool,
}

/// Checks the history in `dir` through and through. The directory must
/// not be in use by a hub.
pub fn check(dir: &Path, cache_bytes: usize) -> Result<CheckReport, OpenError> {
    let file = dir.join(crate::HISTORY_FILE);
    catch_panic(
        || check_unguarded(dir, cache_bytes),
        |detail| OpenError::Damaged { file, detail },
    )
}

fn check_unguarded(dir: &Path, cache_bytes: usize) -> Result<CheckReport, OpenError> {
    let opened = open::open(dir, cache_bytes)?;
    let file = opened.file;
    let mut db = opened.db;
    let damaged = |detail: String| OpenError::Damaged {
        file: file.clone(),
        detail,
    };
    let checksums_ok = db
        .check_integrity()
        .map_err(|e| OpenError::from_redb(&file, e))?;
    let tx = db
        .begin_read()
        .map_err(|e| damaged(format!("cannot read: {e}")))?;
    let read = |e: redb::Error| damaged(e.to_string());
    let events = tx.open_table(EVENTS).map_err(|e| read(e.into()))?;
    let ids = tx.open_table(IDS).map_err(|e| read(e.into()))?;
    let meta = tx.open_table(META).map_err(|e| read(e.into()))?;
    let next = meta_get(&meta, META_NEXT)
        .map_err(|e| read(e.into()))?
        .ok_or_else(|| damaged("no next sequence number".into()))?;
    let recorded_bytes = meta_get(&meta, META_BYTES)
        .map_err(|e| read(e.into()))?
        .ok_or_else(|| damaged("no byte count".into()))?;
    let mut last: Option<u64> = None;
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut publisher_ids = 0u64;
    for entry in events.range::<u64>(..).map_err(|e| read(e.into()))? {
        let (key, value) = entry.map_err(|e| read(e.into()))?;
        let seq = key.value();
        last = Some(seq);
        let parsed =
            Parsed::new(value.value()).map_err(|e| damaged(format!("event {seq}: {e}")))?;
        let event = parsed
            .to_event(seq)
            .map_err(|e| damaged(format!("event {seq}: {e}")))?;
        if let Some(id) = parsed.publisher_id {
            let indexed = ids.get(id).map_err(|e| read(e.into()))?.map(|v| v.value());
            if indexed != Some(seq) {
                return Err(damaged(format!(
                    "event {seq}'s id {id:?} is indexed as {indexed:?}"
                )));
            }
            publisher_ids += 1;
        }
        count += 1;
        bytes += event.frame.len() as u64;
    }
    if last.is_some_and(|last| last >= next) {
        return Err(damaged(format!(
            "events reach past the next sequence number {next}"
        )));
    }
    let index_len = ids.len().map_err(|e| read(e.into()))?;
    if index_len != publisher_ids {
        return Err(damaged(format!(
            "the id index has {index_len} entries for {publisher_ids} publisher ids"
        )));
    }
    if bytes != recorded_bytes {
        return Err(damaged(format!(
            "the frames weigh {bytes} bytes, the counter says {recorded_bytes}"
        )));
    }
    Ok(CheckReport {
        file: file.clone(),
        events: count,
        publisher_ids,
        bytes,
        repaired: opened.repaired || !checksums_ok,
    })
}
