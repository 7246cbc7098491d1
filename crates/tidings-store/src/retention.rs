//! Retention: dropping the oldest events once there are too many, they
//! weigh too much or they are too old, a bounded chunk per write
//! transaction so that the sequencer's appends wait at most one chunk.

use redb::{ReadableTable as _, ReadableTableMetadata as _, WriteTransaction};
use tidings_core::{Retention, StoreError};

use crate::error::{damaged, store_error};
use crate::record::Parsed;
use crate::tables::{EVENTS, IDS, META, META_BYTES, meta_get};

/// Most events one write transaction of trimming deletes. A few thousand
/// records are parsed and deleted in about a millisecond: that is the
/// longest an append waits for retention.
pub(crate) const CHUNK: usize = 2048;

/// Deletes, in `tx`, up to [`CHUNK`] of the oldest events that `retention`
/// no longer keeps as of `now_ms`; returns how many.
pub(crate) fn trim_chunk(
    tx: &WriteTransaction,
    retention: &Retention,
    now_ms: u64,
) -> Result<usize, StoreError> {
    let err = |e: redb::Error| store_error("enforcing retention", e);
    let mut events = tx.open_table(EVENTS).map_err(|e| err(e.into()))?;
    let mut ids = tx.open_table(IDS).map_err(|e| err(e.into()))?;
    let mut meta = tx.open_table(META).map_err(|e| err(e.into()))?;
    let mut count = events.len().map_err(|e| err(e.into()))?;
    let mut bytes = meta_get(&meta, META_BYTES)
        .map_err(|e| err(e.into()))?
        .unwrap_or(0);
    let max_age_ms = retention
        .max_age
        .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
    let mut last = None;
    let mut removed = 0;
    // Publisher ids of the dropped events, unindexed after the deletion.
    let mut dropped_ids: Vec<(Box<str>, u64)> = Vec::new();
    for entry in events.range::<u64>(..).map_err(|e| err(e.into()))? {
        if removed == CHUNK {
            break;
        }
        let (key, value) = entry.map_err(|e| err(e.into()))?;
        let seq = key.value();
        let record = value.value();
        let parsed = Parsed::new(record)
            .map_err(|e| damaged(&format!("enforcing retention: event {seq}"), e))?;
        let too_many = retention.max_events.is_some_and(|max| count > max);
        let too_big = retention.max_bytes.is_some_and(|max| bytes > max);
        let too_old = max_age_ms.is_some_and(|age| parsed.time_ms.saturating_add(age) < now_ms);
        if !(too_many || too_big || too_old) {
            break;
        }
        count -= 1;
        bytes = bytes.saturating_sub(parsed.frame_len(seq));
        if let Some(id) = parsed.publisher_id {
            dropped_ids.push((id.into(), seq));
        }
        last = Some(seq);
        removed += 1;
    }
    let Some(last) = last else {
        return Ok(0);
    };
    events
        .retain_in(..=last, |_, _| false)
        .map_err(|e| err(e.into()))?;
    for (id, seq) in dropped_ids {
        // A later event may have reused the id once this one had expired:
        // the index then names the later one, which stays.
        let current = ids.get(&*id).map_err(|e| err(e.into()))?.map(|v| v.value());
        if current == Some(seq) {
            ids.remove(&*id).map_err(|e| err(e.into()))?;
        }
    }
    meta.insert(META_BYTES, bytes).map_err(|e| err(e.into()))?;
    Ok(removed)
}
