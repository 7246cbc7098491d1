//! The full check of a history: every page's checksum (redb's integrity
//! check) and every record, index entry and counter. Slow on a big history
//! (it reads the whole file), so it runs on request, not at every start.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase as _, ReadableTableMetadata as _};
use tidings_core::Retain;

use crate::error::{OpenError, catch_panic};
use crate::open;
use crate::record::Parsed;
use crate::tables::{
    EVENTS, IDS, META, META_BYTES, META_NEXT, RETAINED, RETAINED_TOPICS, meta_get,
};

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
    /// Topics holding a retained update, each checked against its event.
    pub retained_topics: u64,
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
    // Every topic names a retained event that has the topic, and every
    // retained event is named by a topic.
    let retained = tx.open_table(RETAINED).map_err(|e| read(e.into()))?;
    let topics = tx.open_table(RETAINED_TOPICS).map_err(|e| read(e.into()))?;
    let mut named = std::collections::HashSet::new();
    let mut retained_topics = 0u64;
    for entry in topics.range::<&str>(..).map_err(|e| read(e.into()))? {
        let (topic, seq) = entry.map_err(|e| read(e.into()))?;
        let (topic, seq) = (topic.value(), seq.value());
        let record = retained
            .get(seq)
            .map_err(|e| read(e.into()))?
            .ok_or_else(|| damaged(format!("the retained update {seq} of {topic:?} is missing")))?;
        let event = Parsed::new(record.value())
            .and_then(|p| p.to_event(seq))
            .map_err(|e| damaged(format!("retained update {seq}: {e}")))?;
        if !event.has_topic(topic) || event.retain != Retain::Keep {
            return Err(damaged(format!(
                "the retained update {seq} of {topic:?} is not a retained update of that topic"
            )));
        }
        named.insert(seq);
        retained_topics += 1;
    }
    let stored = retained.len().map_err(|e| read(e.into()))?;
    if stored != named.len() as u64 {
        return Err(damaged(format!(
            "{stored} retained events are stored, {} are retained updates of a topic",
            named.len()
        )));
    }
    Ok(CheckReport {
        file: file.clone(),
        events: count,
        publisher_ids,
        bytes,
        retained_topics,
        repaired: opened.repaired || !checksums_ok,
    })
}
