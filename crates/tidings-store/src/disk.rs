//! The durable store: [`Store`] over one redb file in the data directory.
//!
//! Every append is one write transaction, committed with an fsync before
//! it returns: the sequencer hands it whole batches, so every publish that
//! arrived during the previous fsync shares the next one (group commit).
//! Reads are redb read transactions, snapshots that never wait for the
//! writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    WriteTransaction,
};
use tidings_core::{
    Bounds, Event, EventId, EventIdKind, Retain, RetainedUpdates, Retention, Store, StoreError,
    StoreErrorKind,
};

use crate::error::{OpenError, damaged, guarded, store_error};
use crate::fault::{self, Fault};
use crate::lock::DirLock;
use crate::open;
use crate::record::{self, Parsed};
use crate::retention;
use crate::tables::{
    EVENTS, IDS, META, META_BYTES, META_NEXT, RETAINED, RETAINED_TOPICS, meta_get,
};

/// How a [`DiskStore`] is opened.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// What to keep.
    pub retention: Retention,
    /// Memory redb may use to cache the file's pages. Recent events are
    /// read back by every resuming subscriber; older ones come from the
    /// operating system's page cache.
    pub cache_bytes: usize,
}

impl Default for Options {
    /// The default retention and a 64 MiB cache.
    fn default() -> Self {
        Self {
            retention: Retention::default(),
            cache_bytes: 64 << 20,
        }
    }
}

/// What a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Retained events.
    pub events: u64,
    /// The sum of their frames' lengths: what retention by bytes weighs.
    pub bytes: u64,
    /// The retained range.
    pub bounds: Bounds,
    /// Topics holding a retained update (kept apart from the events, and
    /// whatever the retention).
    pub retained_topics: u64,
    /// The size of the history file on disk.
    pub file_bytes: u64,
}

/// What opening a store found.
#[derive(Debug, Clone)]
pub struct OpenReport {
    /// The history file.
    pub file: PathBuf,
    /// The file was created by this opening: there was no history.
    pub created: bool,
    /// The file had not been closed cleanly (a crash, a kill) and was
    /// repaired: only transactions that were never acknowledged are lost.
    pub repaired: bool,
    /// What it holds.
    pub stats: Stats,
}

/// The open history file, or why there is none.
#[derive(Debug)]
struct Slot {
    /// The database; `None` while an I/O error's reopening has not
    /// succeeded yet, and once closed. Declared before `lock`: it is
    /// closed before the lock is released.
    db: Option<Database>,
    /// The data directory's lock, held from opening to closing, across
    /// reopenings; `None` once closed.
    lock: Option<DirLock>,
    /// Counts openings: a call that met an I/O error reopens only the
    /// database it used, once.
    generation: u64,
}

/// The durable, embedded history: one redb file under a locked data
/// directory.
#[derive(Debug)]
pub struct DiskStore {
    /// The database and the directory lock. Every call holds the read lock
    /// for its transaction; closing and reopening take the write lock, so
    /// they wait for calls in flight and no call sees half of either.
    slot: RwLock<Slot>,
    /// A write the disk refused: writes are refused up front until
    /// [`Store::recover`] finds room and a commit that goes through.
    fault: Mutex<Option<Fault>>,
    /// The data directory, where the space probe is written.
    dir: PathBuf,
    /// The page cache size, for reopening.
    cache_bytes: usize,
    /// What to keep.
    retention: Retention,
    /// What opening found.
    report: OpenReport,
}

impl DiskStore {
    /// Opens the history in `dir`, creating the directory and an empty
    /// history if needed. Fails if another process has `dir` open, or if
    /// the history file is damaged or of an unknown format.
    pub fn open(dir: &Path, options: Options) -> Result<Self, OpenError> {
        let opened = open::open(dir, options.cache_bytes)?;
        let mut store = Self {
            slot: RwLock::new(Slot {
                db: Some(opened.db),
                lock: Some(opened.lock),
                generation: 0,
            }),
            fault: Mutex::new(None),
            dir: dir.to_path_buf(),
            cache_bytes: options.cache_bytes,
            retention: options.retention,
            report: OpenReport {
                file: opened.file.clone(),
                created: opened.created,
                repaired: opened.repaired,
                stats: Stats {
                    events: 0,
                    bytes: 0,
                    bounds: Bounds { first: 0, next: 0 },
                    retained_topics: 0,
                    file_bytes: 0,
                },
            },
        };
        store.report.stats = store.stats().map_err(|e| OpenError::Damaged {
            file: opened.file,
            detail: e.message,
        })?;
        Ok(store)
    }

    /// What opening found.
    pub fn report(&self) -> &OpenReport {
        &self.report
    }

    fn fault(&self) -> std::sync::MutexGuard<'_, Option<Fault>> {
        self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the open database. A failure that latched redb (an I/O
    /// error) reopens the database before it is returned.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.call(f, |_| {})
    }

    /// [`with_db`](Self::with_db), telling `on_outage` about an outage
    /// before the database is reopened.
    fn call<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
        on_outage: impl FnOnce(&StoreError),
    ) -> Result<T, StoreError> {
        let slot = self.slot.read().unwrap_or_else(PoisonError::into_inner);
        let db = self.usable(&slot)?;
        let generation = slot.generation;
        let result = f(db);
        drop(slot);
        if let Err(err) = &result
            && err.kind.is_outage()
        {
            on_outage(err);
            self.reopen_after(generation);
        }
        result.map_err(|err| self.refined(err))
    }

    /// Runs the write `f`, refused up front while a fault lasts; a failure
    /// of the disk starts a fault. `failing` says what an append needs
    /// (its first sequence number, its size), for the recovery.
    fn write<T>(
        &self,
        failing: Option<(u64, u64)>,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(fault) = self.fault().as_ref() {
            return Err(fault.refusal());
        }
        self.call(f, |err| {
            let fault = Fault {
                kind: err.kind,
                message: err.message.clone(),
                needed: failing.map_or(0, |(_, bytes)| bytes),
                failed_from: failing.map(|(first, _)| first),
            };
            let mut known = self.fault();
            match known.as_mut() {
                Some(known) => known.merge(fault),
                None => *known = Some(fault),
            }
        })
    }

    /// The open database, or why there is none.
    fn usable<'a>(&self, slot: &'a Slot) -> Result<&'a Database, StoreError> {
        match (&slot.db, &slot.lock) {
            (Some(db), _) => Ok(db),
            (None, None) => Err(StoreError::new(
                StoreErrorKind::Closed,
                "the history is closed",
            )),
            (None, Some(_)) => Err(self.refined(StoreError::new(
                StoreErrorKind::Unavailable,
                "the history file is being reopened after an I/O error",
            ))),
        }
    }

    /// An error met during a fault says what the fault is (a full disk),
    /// rather than what redb says after it (an earlier I/O error).
    fn refined(&self, mut err: StoreError) -> StoreError {
        if err.kind == StoreErrorKind::Unavailable
            && let Some(fault) = self.fault().as_ref()
        {
            err.kind = fault.kind;
        }
        err
    }

    /// Reopens the database of `generation` after an I/O error latched it,
    /// unless that was done already (or the store is closed).
    fn reopen_after(&self, generation: u64) {
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        if slot.generation != generation || slot.lock.is_none() {
            return;
        }
        if let Err(err) = self.reopen(&mut slot) {
            tracing::debug!(error = %err, "reopening the history file failed; retrying in the background");
        }
    }

    /// Closes the database of `slot` (if open) and opens it again.
    fn reopen(&self, slot: &mut Slot) -> Result<(), StoreError> {
        slot.generation += 1;
        drop(slot.db.take());
        let started = Instant::now();
        let (db, repaired) = open::reopen(&self.report.file, self.cache_bytes)
            .map_err(OpenError::into_store_error)?;
        slot.db = Some(db);
        tracing::debug!(
            repaired,
            seconds = started.elapsed().as_secs_f64(),
            "reopened the history file after an I/O error"
        );
        Ok(())
    }

    /// See [`Store::recover`]. The space probe runs without a lock (reads
    /// go on meanwhile); the commit that proves the file takes writes is a
    /// write like an append.
    fn recover_now(&self) -> Result<(), StoreError> {
        let closed = || StoreError::new(StoreErrorKind::Closed, "the history is closed");
        let fault = self.fault().clone();
        let needed = fault.as_ref().map_or(0, |f| f.needed);
        let reopen = {
            let slot = self.slot.read().unwrap_or_else(PoisonError::into_inner);
            if slot.lock.is_none() {
                return Err(closed());
            }
            slot.db.is_none()
        };
        if reopen || fault.is_some() {
            fault::probe_space(&self.dir, needed).map_err(|e| self.refined(e))?;
        }
        if reopen {
            // Reopening repairs (reads the whole file): only once there is
            // room for it to finish.
            let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
            if slot.lock.is_none() {
                return Err(closed());
            }
            if slot.db.is_none() {
                self.reopen(&mut slot).map_err(|e| self.refined(e))?;
            }
        }
        let Some(fault) = fault else {
            return Ok(());
        };
        let rolled_back = self.with_db(|db| fault::recommit(db, fault.failed_from))?;
        if rolled_back > 0 {
            tracing::warn!(
                events = rolled_back,
                "an append whose commit failed had reached the history file anyway: rolled back, since it was never acknowledged"
            );
        }
        // Writes were refused meanwhile: no newer fault to keep.
        *self.fault() = None;
        Ok(())
    }

    /// Closes the file cleanly and releases the directory; every call
    /// after it fails. Waits for calls in flight.
    fn close_file(&self) -> Result<(), StoreError> {
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        drop(slot.db.take());
        drop(slot.lock.take());
        Ok(())
    }

    /// The history file.
    pub fn file(&self) -> &Path {
        &self.report.file
    }

    /// What the store holds now.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        guarded("reading statistics", || {
            self.with_db(|db| self.read_stats(db))
        })
    }

    fn read_stats(&self, db: &Database) -> Result<Stats, StoreError> {
        let err = |e: redb::Error| store_error("reading statistics", e);
        let tx = db.begin_read().map_err(|e| err(e.into()))?;
        let events = tx.open_table(EVENTS).map_err(|e| err(e.into()))?;
        let meta = tx.open_table(META).map_err(|e| err(e.into()))?;
        let topics = tx.open_table(RETAINED_TOPICS).map_err(|e| err(e.into()))?;
        let bounds = bounds_in(&events, &meta)?;
        Ok(Stats {
            retained_topics: topics.len().map_err(|e| err(e.into()))?,
            events: events.len().map_err(|e| err(e.into()))?,
            bytes: meta_get(&meta, META_BYTES)
                .map_err(|e| err(e.into()))?
                .unwrap_or(0),
            bounds,
            file_bytes: std::fs::metadata(&self.report.file)
                .map(|m| m.len())
                .map_err(|e| store_error("reading the file size", e))?,
        })
    }
}

fn no_next() -> StoreError {
    StoreError::new(
        StoreErrorKind::Damaged,
        "the history has no next sequence number",
    )
}

fn bounds_in(
    events: &impl redb::ReadableTable<u64, &'static [u8]>,
    meta: &impl redb::ReadableTable<&'static str, u64>,
) -> Result<Bounds, StoreError> {
    let err = |e: redb::StorageError| store_error("reading the bounds", e);
    let next = meta_get(meta, META_NEXT)
        .map_err(err)?
        .ok_or_else(no_next)?;
    let first = events
        .first()
        .map_err(err)?
        .map_or(next, |(k, _)| k.value());
    Ok(Bounds { first, next })
}

fn decode(seq: u64, record: &[u8]) -> Result<Arc<Event>, StoreError> {
    Parsed::new(record)
        .and_then(|parsed| parsed.to_event(seq))
        .map_err(|e| damaged(&format!("event {seq} cannot be read"), e))
}

/// About what `events` take in the file: their records, before redb's
/// own pages.
fn weight(events: &[Arc<Event>]) -> u64 {
    events
        .iter()
        .map(|e| {
            let topics: usize = e.topics.iter().map(|t| t.len() + 2).sum();
            (e.frame.len() + e.id.len() + topics + 16) as u64
        })
        .sum()
}

impl Store for DiskStore {
    fn append(&self, events: &[Arc<Event>]) -> Result<(), StoreError> {
        let failing = events.first().map(|first| (first.seq, weight(events)));
        guarded("appending", || {
            self.write(failing, |db| append_events(db, events))
        })
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event>>, StoreError> {
        guarded("reading history", || {
            self.with_db(|db| read_events(db, after, limit))
        })
    }

    fn find_id(&self, id: &str) -> Result<Option<Arc<Event>>, StoreError> {
        guarded("looking an id up", || self.with_db(|db| find_event(db, id)))
    }

    fn bounds(&self) -> Result<Bounds, StoreError> {
        guarded("reading the bounds", || self.with_db(read_bounds))
    }

    fn enforce_retention(&self, now_ms: u64) -> Result<u64, StoreError> {
        guarded("enforcing retention", || {
            self.write(None, |db| trim(db, &self.retention, now_ms))
        })
    }

    fn blocking(&self) -> bool {
        true
    }

    fn close(&self) -> Result<(), StoreError> {
        guarded("closing", || self.close_file())
    }

    /// Reopens the file if an I/O error left it closed, then, while writes
    /// are refused, checks that there is room for what failed and that a
    /// commit goes through (rolling back a failed append that reached the
    /// file anyway).
    fn recover(&self) -> Result<(), StoreError> {
        guarded("recovering", || self.recover_now())
    }

    fn retained(&self) -> Result<RetainedUpdates, StoreError> {
        guarded("reading the retained updates", || {
            self.with_db(read_retained)
        })
    }
}

// The [`Store`] calls, unguarded, on an open database.
fn append_events(db: &Database, events: &[Arc<Event>]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let err = |e: redb::Error| store_error("appending", e);
    let tx = db.begin_write().map_err(|e| err(e.into()))?;
    {
        let mut table = tx.open_table(EVENTS).map_err(|e| err(e.into()))?;
        let mut ids = tx.open_table(IDS).map_err(|e| err(e.into()))?;
        let mut meta = tx.open_table(META).map_err(|e| err(e.into()))?;
        let mut next = meta_get(&meta, META_NEXT)
            .map_err(|e| err(e.into()))?
            .ok_or_else(no_next)?;
        let mut bytes = meta_get(&meta, META_BYTES)
            .map_err(|e| err(e.into()))?
            .unwrap_or(0);
        // An empty history takes any start: in cluster mode it fills
        // from the engine's oldest entry, whose places may also skip.
        let mut empty = table.is_empty().map_err(|e| err(e.into()))?;
        let mut buf = Vec::with_capacity(512);
        for event in events {
            if event.seq < next && !empty {
                // Dropping `tx` aborts it: nothing of the batch stays.
                return Err(StoreError::new(
                    StoreErrorKind::Invalid,
                    format!("sequence number {} is not after {}", event.seq, next - 1),
                ));
            }
            empty = false;
            buf.clear();
            record::encode(event, &mut buf);
            table
                .insert(event.seq, buf.as_slice())
                .map_err(|e| err(e.into()))?;
            if EventIdKind::of(event) == EventIdKind::Publisher {
                ids.insert(&*event.id, event.seq)
                    .map_err(|e| err(e.into()))?;
            }
            next = event.seq + 1;
            bytes += event.frame.len() as u64;
        }
        meta.insert(META_NEXT, next).map_err(|e| err(e.into()))?;
        meta.insert(META_BYTES, bytes).map_err(|e| err(e.into()))?;
    }
    if events.iter().any(|e| e.retain != Retain::No) {
        keep_retained(&tx, events)?;
    }
    // Durability::Immediate (the default): fsync before returning.
    tx.commit().map_err(|e| err(e.into()))
}

/// Records, in `tx`, what `events` do to the retained updates: a kept one
/// becomes its topics' retained event, a clearing one removes theirs, and
/// a retained event no topic names any more is deleted.
fn keep_retained(tx: &WriteTransaction, events: &[Arc<Event>]) -> Result<(), StoreError> {
    let err = |e: redb::Error| store_error("keeping retained updates", e);
    let mut retained = tx.open_table(RETAINED).map_err(|e| err(e.into()))?;
    let mut topics = tx.open_table(RETAINED_TOPICS).map_err(|e| err(e.into()))?;
    let mut replaced = Vec::new();
    let mut buf = Vec::with_capacity(512);
    for event in events.iter().filter(|e| e.retain != Retain::No) {
        let keep = event.retain == Retain::Keep;
        if keep {
            buf.clear();
            record::encode(event, &mut buf);
            retained
                .insert(event.seq, buf.as_slice())
                .map_err(|e| err(e.into()))?;
        }
        for topic in &event.topics {
            let old = if keep {
                topics.insert(&**topic, event.seq)
            } else {
                topics.remove(&**topic)
            }
            .map_err(|e| err(e.into()))?
            .map(|v| v.value());
            if let Some(old) = old
                && old != event.seq
            {
                replaced.push(old);
            }
        }
    }
    replaced.sort_unstable();
    replaced.dedup();
    for seq in replaced {
        let old = match retained.get(seq).map_err(|e| err(e.into()))? {
            Some(record) => decode(seq, record.value())?,
            None => continue,
        };
        let mut named = false;
        for topic in &old.topics {
            let current = topics.get(&**topic).map_err(|e| err(e.into()))?;
            named |= current.is_some_and(|v| v.value() == seq);
        }
        if !named {
            retained.remove(seq).map_err(|e| err(e.into()))?;
        }
    }
    Ok(())
}

/// Every topic's retained event, each event decoded once.
fn read_retained(db: &Database) -> Result<RetainedUpdates, StoreError> {
    let err = |e: redb::Error| store_error("reading the retained updates", e);
    let tx = db.begin_read().map_err(|e| err(e.into()))?;
    let retained = tx.open_table(RETAINED).map_err(|e| err(e.into()))?;
    let topics = tx.open_table(RETAINED_TOPICS).map_err(|e| err(e.into()))?;
    let mut events: HashMap<u64, Arc<Event>> = HashMap::new();
    let mut out = Vec::new();
    for entry in topics.range::<&str>(..).map_err(|e| err(e.into()))? {
        let (topic, seq) = entry.map_err(|e| err(e.into()))?;
        let seq = seq.value();
        let event = match events.get(&seq) {
            Some(event) => Arc::clone(event),
            None => {
                let record = retained
                    .get(seq)
                    .map_err(|e| err(e.into()))?
                    .ok_or_else(|| {
                        StoreError::msg(format!(
                            "the retained update {seq} of {:?} is missing: the history file looks damaged",
                            topic.value()
                        ))
                    })?;
                let event = decode(seq, record.value())?;
                events.insert(seq, Arc::clone(&event));
                event
            }
        };
        out.push((topic.value().into(), event));
    }
    Ok(out)
}

fn read_events(db: &Database, after: u64, limit: usize) -> Result<Vec<Arc<Event>>, StoreError> {
    let Some(from) = after.checked_add(1) else {
        return Ok(Vec::new());
    };
    let err = |e: redb::Error| store_error("reading history", e);
    let tx = db.begin_read().map_err(|e| err(e.into()))?;
    let table = tx.open_table(EVENTS).map_err(|e| err(e.into()))?;
    let mut out = Vec::with_capacity(limit.min(1024));
    for entry in table.range(from..).map_err(|e| err(e.into()))?.take(limit) {
        let (key, value) = entry.map_err(|e| err(e.into()))?;
        out.push(decode(key.value(), value.value())?);
    }
    Ok(out)
}

fn find_event(db: &Database, id: &str) -> Result<Option<Arc<Event>>, StoreError> {
    let err = |e: redb::Error| store_error("looking an id up", e);
    let tx = db.begin_read().map_err(|e| err(e.into()))?;
    let seq = match EventId::parse(id) {
        Some(seq) => seq,
        None => {
            let ids = tx.open_table(IDS).map_err(|e| err(e.into()))?;
            match ids.get(id).map_err(|e| err(e.into()))? {
                Some(seq) => seq.value(),
                None => return Ok(None),
            }
        }
    };
    let table = tx.open_table(EVENTS).map_err(|e| err(e.into()))?;
    let Some(record) = table.get(seq).map_err(|e| err(e.into()))? else {
        return Ok(None);
    };
    let event = decode(seq, record.value())?;
    Ok((&*event.id == id).then_some(event))
}

fn read_bounds(db: &Database) -> Result<Bounds, StoreError> {
    let err = |e: redb::Error| store_error("reading the bounds", e);
    let tx = db.begin_read().map_err(|e| err(e.into()))?;
    let events = tx.open_table(EVENTS).map_err(|e| err(e.into()))?;
    let meta = tx.open_table(META).map_err(|e| err(e.into()))?;
    bounds_in(&events, &meta)
}

fn trim(db: &Database, retention: &Retention, now_ms: u64) -> Result<u64, StoreError> {
    let err = |e: redb::Error| store_error("enforcing retention", e);
    let mut removed = 0u64;
    // Chunks followed by another are committed without an fsync: the
    // last one's (or the next append's) makes them durable together.
    // Losing them in a crash only means trimming them again.
    let mut unsynced = false;
    loop {
        let started = Instant::now();
        let mut tx = db.begin_write().map_err(|e| err(e.into()))?;
        let chunk = retention::trim_chunk(&tx, retention, now_ms)?;
        if chunk == 0 && !unsynced {
            tx.abort().map_err(|e| err(e.into()))?;
            return Ok(removed);
        }
        let more = chunk == retention::CHUNK;
        if more {
            tx.set_durability(Durability::None)
                .map_err(|e| store_error("enforcing retention", e))?;
        }
        tx.commit().map_err(|e| err(e.into()))?;
        removed += chunk as u64;
        unsynced = more;
        if !more {
            return Ok(removed);
        }
        // The writer lock is not fair: without a pause, the next chunk
        // can take it again before a waiting append does. Pausing as
        // long as the chunk took leaves appends at least half the
        // writer's time however much there is to trim.
        std::thread::sleep(started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use tidings_core::Update;

    use super::*;

    fn event(seq: u64, id: Option<&str>) -> Arc<Event> {
        let update = Update {
            topics: vec!["t".into()],
            data: format!("event {seq}"),
            id: id.map(Into::into),
            ..Update::default()
        };
        Arc::new(Event::encode(seq, &update, 0).unwrap())
    }

    /// An append whose commit reported a failure but reached the file (an
    /// fsync that failed after the header was written) is rolled back by
    /// the recovery: its publishers were told it failed.
    #[test]
    fn recovery_rolls_back_a_failed_append_that_landed() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), Options::default()).unwrap();
        let first = store.bounds().unwrap().next;
        let kept = [event(first, Some("kept"))];
        store.append(&kept).unwrap();
        let landed = [event(first + 1, Some("landed")), event(first + 2, None)];
        store.append(&landed).unwrap();
        // As if that second append had failed after all.
        *store.fault() = Some(Fault {
            kind: StoreErrorKind::Unavailable,
            message: "fsync failed".into(),
            needed: 0,
            failed_from: Some(first + 1),
        });
        let refused = store.append(&[event(first + 1, None)]).unwrap_err();
        assert_eq!(refused.kind, StoreErrorKind::Unavailable);
        assert!(refused.message.contains("refused until the store recovers"));
        store.recover().unwrap();
        assert_eq!(
            store.bounds().unwrap(),
            Bounds {
                first,
                next: first + 1
            }
        );
        assert!(store.find_id("landed").unwrap().is_none());
        assert_eq!(store.find_id("kept").unwrap().unwrap().seq, first);
        assert_eq!(store.stats().unwrap().bytes, kept[0].frame.len() as u64);
        // The numbers go to the next append.
        store.append(&[event(first + 1, Some("next"))]).unwrap();
        assert_eq!(store.read_after(0, 10).unwrap().len(), 2);
        drop(store);
        let report = crate::check(dir.path(), 1 << 20).unwrap();
        assert_eq!((report.events, report.publisher_ids), (2, 2));
    }
}
