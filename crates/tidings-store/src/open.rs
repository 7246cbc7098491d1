//! Opening a data directory: lock it, create the history file if there is
//! none, open it (redb repairs a file a crash left behind) and check that
//! it is a history this build reads.
//!
//! A new file is made whole under a temporary name and renamed into place,
//! so that `history.redb` is either absent or a complete, initialized
//! history. That is what lets an empty or cut-short `history.redb` be
//! reported as damage: redb itself would treat an empty file as a new
//! database, and silently start over.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, ReadableDatabase as _, ReadableTable as _};
use tidings_core::initial_seq;

use crate::error::{OpenError, catch_panic};
use crate::lock::DirLock;
use crate::tables::{
    EVENTS, FORMAT_VERSION, FORMAT_WITHOUT_RETAINED, IDS, META, META_BYTES, META_FORMAT, META_NEXT,
    RETAINED, RETAINED_TOPICS, meta_get,
};

/// The history file's name inside the data directory.
pub const HISTORY_FILE: &str = "history.redb";

/// Where a new history file is built before it is renamed into place.
const NEW_FILE: &str = "history.redb.new";

/// Written and removed again while the disk is full, to see whether the
/// space a failed write needs has come back.
pub(crate) const SPACE_PROBE_FILE: &str = "space-probe";

/// An opened, checked history file and its directory lock.
#[derive(Debug)]
pub(crate) struct OpenFile {
    /// The database.
    pub(crate) db: Database,
    /// Held as long as the database is open.
    pub(crate) lock: DirLock,
    /// The history file.
    pub(crate) file: PathBuf,
    /// This opening created the file.
    pub(crate) created: bool,
    /// The file was not closed cleanly (a crash, a kill) and redb repaired
    /// it on opening.
    pub(crate) repaired: bool,
}

/// Opens (or starts) the history in `dir` with a page cache of
/// `cache_bytes`.
pub(crate) fn open(dir: &Path, cache_bytes: usize) -> Result<OpenFile, OpenError> {
    fs::create_dir_all(dir).map_err(|source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let lock = DirLock::acquire(dir)?;
    // Left by a hub that died while checking for free space.
    let probe = dir.join(SPACE_PROBE_FILE);
    match fs::remove_file(&probe) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(OpenError::Io {
                path: probe,
                source: err,
            });
        }
        _ => {}
    }
    let file = dir.join(HISTORY_FILE);
    let created = match fs::symlink_metadata(&file) {
        Ok(_) => false,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            create(dir, &file)?;
            true
        }
        Err(source) => return Err(OpenError::Io { path: file, source }),
    };
    let (db, repaired) = open_file(&file, cache_bytes, Repair::Warn)?;
    Ok(OpenFile {
        db,
        lock,
        file,
        created,
        repaired,
    })
}

/// Opens the history `file` again, in a directory whose lock this process
/// holds, after an I/O error made redb refuse every call (it repairs the
/// file, as after a crash, about 0.6 s per million events). A file that
/// is gone is damage, not a new history.
pub(crate) fn reopen(file: &Path, cache_bytes: usize) -> Result<(Database, bool), OpenError> {
    fs::symlink_metadata(file).map_err(|err| OpenError::Damaged {
        file: file.to_path_buf(),
        detail: format!("the file is gone ({err})"),
    })?;
    open_file(file, cache_bytes, Repair::Quiet)
}

/// What a repair is worth saying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    /// At start-up: the file was not closed cleanly, a warning.
    Warn,
    /// Reopening after an I/O error: expected, the outage is logged already.
    Quiet,
}

/// Opens `file` with redb (which repairs a file not closed cleanly) and
/// checks that it is a history this build reads; says whether it was
/// repaired.
fn open_file(file: &Path, cache_bytes: usize, say: Repair) -> Result<(Database, bool), OpenError> {
    let repaired = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&repaired);
    let shown = file.to_path_buf();
    let db = Database::builder()
        .set_cache_size(cache_bytes)
        .set_repair_callback(move |session| {
            if !seen.swap(true, Ordering::Relaxed) {
                if say == Repair::Warn {
                    tracing::warn!(
                        file = %shown.display(),
                        "the history file was not closed cleanly (crash or kill): checking and repairing it"
                    );
                } else {
                    tracing::debug!(file = %shown.display(), "repairing the history file after an I/O error");
                }
            }
            tracing::debug!(progress = session.progress(), "repairing the history file");
        })
        .open(file)
        .map_err(|err| OpenError::from_redb(file, err))?;
    let format = catch_panic(
        || check_layout(&db, file),
        |detail| OpenError::Damaged {
            file: file.to_path_buf(),
            detail,
        },
    )?;
    if format == FORMAT_WITHOUT_RETAINED {
        upgrade(&db, file)?;
    }
    Ok((db, repaired.load(Ordering::Relaxed)))
}

/// Builds an empty history under a temporary name and renames it to
/// `file`.
fn create(dir: &Path, file: &Path) -> Result<(), OpenError> {
    let new = dir.join(NEW_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OpenError::Io { path, source }
    };
    // A leftover from a crash during an earlier creation: never renamed,
    // so never acknowledged anything.
    match fs::remove_file(&new) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io(&new)(err)),
        _ => {}
    }
    let redb_error = |err: &dyn std::fmt::Display| OpenError::Io {
        path: new.clone(),
        source: std::io::Error::other(err.to_string()),
    };
    {
        let db = Database::create(&new).map_err(|e| redb_error(&e))?;
        let tx = db.begin_write().map_err(|e| redb_error(&e))?;
        {
            tx.open_table(EVENTS).map_err(|e| redb_error(&e))?;
            tx.open_table(IDS).map_err(|e| redb_error(&e))?;
            tx.open_table(RETAINED).map_err(|e| redb_error(&e))?;
            tx.open_table(RETAINED_TOPICS).map_err(|e| redb_error(&e))?;
            let mut meta = tx.open_table(META).map_err(|e| redb_error(&e))?;
            for (key, value) in [
                (META_FORMAT, FORMAT_VERSION),
                (META_NEXT, initial_seq()),
                (META_BYTES, 0),
            ] {
                meta.insert(key, value).map_err(|e| redb_error(&e))?;
            }
        }
        tx.commit().map_err(|e| redb_error(&e))?;
    }
    File::open(&new)
        .and_then(|f| f.sync_all())
        .map_err(io(&new))?;
    fs::rename(&new, file).map_err(io(file))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Brings a format-1 history to format 2: adds the (empty) retained
/// tables and the new format number, in one transaction. Nothing else
/// changes: format-1 records are format-2 records without retained flags.
fn upgrade(db: &Database, file: &Path) -> Result<(), OpenError> {
    let failed = |e: &dyn std::fmt::Display| OpenError::Io {
        path: file.to_path_buf(),
        source: std::io::Error::other(format!(
            "cannot upgrade the history to format {FORMAT_VERSION}: {e}"
        )),
    };
    let tx = db.begin_write().map_err(|e| failed(&e))?;
    {
        tx.open_table(RETAINED).map_err(|e| failed(&e))?;
        tx.open_table(RETAINED_TOPICS).map_err(|e| failed(&e))?;
        let mut meta = tx.open_table(META).map_err(|e| failed(&e))?;
        meta.insert(META_FORMAT, FORMAT_VERSION)
            .map_err(|e| failed(&e))?;
    }
    tx.commit().map_err(|e| failed(&e))?;
    tracing::info!(
        file = %file.display(),
        from = FORMAT_WITHOUT_RETAINED,
        to = FORMAT_VERSION,
        "upgraded the history file (it now keeps retained updates); builds before retained updates no longer open it"
    );
    Ok(())
}

/// Checks that `db` holds a history this build reads, and that its
/// counters agree with its events; returns its format.
fn check_layout(db: &Database, file: &Path) -> Result<u64, OpenError> {
    let damaged = |detail: String| OpenError::Damaged {
        file: file.to_path_buf(),
        detail,
    };
    let tx = db
        .begin_read()
        .map_err(|e| damaged(format!("cannot read: {e}")))?;
    let meta = tx
        .open_table(META)
        .map_err(|e| damaged(format!("no meta table: {e}")))?;
    let get = |key: &str| {
        meta_get(&meta, key)
            .map_err(|e| damaged(format!("cannot read {key:?}: {e}")))?
            .ok_or_else(|| damaged(format!("no {key:?} in the meta table")))
    };
    let format = get(META_FORMAT)?;
    if format != FORMAT_VERSION && format != FORMAT_WITHOUT_RETAINED {
        return Err(OpenError::Unsupported {
            file: file.to_path_buf(),
            detail: format!(
                "history format {format}, this build reads {FORMAT_WITHOUT_RETAINED} and {FORMAT_VERSION}"
            ),
        });
    }
    if format == FORMAT_VERSION {
        tx.open_table(RETAINED)
            .map_err(|e| damaged(format!("no retained table: {e}")))?;
        tx.open_table(RETAINED_TOPICS)
            .map_err(|e| damaged(format!("no retained_topics table: {e}")))?;
    }
    let next = get(META_NEXT)?;
    get(META_BYTES)?;
    let events = tx
        .open_table(EVENTS)
        .map_err(|e| damaged(format!("no events table: {e}")))?;
    tx.open_table(IDS)
        .map_err(|e| damaged(format!("no ids table: {e}")))?;
    let bounds = events
        .first()
        .and_then(|first| Ok((first, events.last()?)))
        .map_err(|e| damaged(format!("cannot read the events: {e}")))?;
    if let (Some((first, first_record)), Some((last, last_record))) = bounds {
        let last = last.value();
        if last >= next {
            return Err(damaged(format!(
                "the last event {last} is not before the next sequence number {next}"
            )));
        }
        for (seq, record) in [(first.value(), first_record), (last, last_record)] {
            crate::record::Parsed::new(record.value())
                .map_err(|e| damaged(format!("event {seq}: {e}")))?;
        }
    }
    Ok(format)
}
