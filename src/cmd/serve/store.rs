//! Where `tidings serve` keeps its history: the flags and the opening.
//!
//! By default, a durable store (`tidings-store`) in `--data-dir`; with
//! `--memory`, a volatile one. The retention flags apply to both.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tidings_core::{Bounds, Event, MemoryStore, Retention, Store, StoreError};
use tidings_store::{DiskStore, Options};

/// History flags of `tidings serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// Directory of the durable history (created if missing). One hub at a
    /// time may use it.
    #[arg(
        long,
        env = "TIDINGS_DATA_DIR",
        value_name = "DIR",
        default_value = "./tidings-data"
    )]
    data_dir: PathBuf,

    /// Keep history in memory only: it is lost when the hub stops, and ids
    /// restart from the clock.
    #[arg(long, env = "TIDINGS_MEMORY", conflicts_with = "data_dir")]
    memory: bool,

    /// Before serving, check the whole history file (every page checksum,
    /// record and index entry); refuse to start if it is damaged. Reads the
    /// whole file: about a second per million events.
    #[arg(long, env = "TIDINGS_CHECK_HISTORY", conflicts_with = "memory")]
    check_history: bool,

    /// Keep at most this many events in history.
    #[arg(long, env = "TIDINGS_HISTORY_EVENTS", default_value_t = 1_000_000)]
    history_events: u64,

    /// Keep events at most this many seconds.
    #[arg(long, env = "TIDINGS_HISTORY_SECONDS", default_value_t = 7 * 24 * 3600)]
    history_seconds: u64,

    /// Keep at most this many bytes of events (their encoded frames).
    #[arg(long, env = "TIDINGS_HISTORY_BYTES", default_value_t = 1 << 30)]
    history_bytes: u64,
}

/// Which store keeps the history.
#[derive(Debug, Clone)]
enum Kind {
    /// Durable, in this directory.
    Disk {
        /// The data directory.
        dir: PathBuf,
        /// Run the full check before opening.
        check: bool,
    },
    /// Volatile.
    Memory,
}

/// The validated history configuration.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    /// Which store.
    kind: Kind,
    /// What to keep.
    retention: Retention,
}

impl StoreArgs {
    pub(crate) fn validate(&self) -> anyhow::Result<StoreConfig> {
        let kind = if self.memory {
            Kind::Memory
        } else {
            anyhow::ensure!(
                !self.data_dir.as_os_str().is_empty(),
                "--data-dir must not be empty"
            );
            Kind::Disk {
                dir: self.data_dir.clone(),
                check: self.check_history,
            }
        };
        Ok(StoreConfig {
            kind,
            retention: Retention {
                max_events: Some(self.history_events),
                max_age: Some(Duration::from_secs(self.history_seconds)),
                max_bytes: Some(self.history_bytes),
            },
        })
    }
}

/// Opens the configured store.
pub(crate) fn open(config: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    let (dir, check) = match &config.kind {
        Kind::Memory => {
            tracing::warn!(
                "history is kept in memory only (--memory) and is lost when the hub stops"
            );
            return Ok(Arc::new(MemoryStore::new(config.retention)));
        }
        Kind::Disk { dir, check } => (dir, *check),
    };
    let options = Options {
        retention: config.retention,
        ..Options::default()
    };
    if check {
        let started = Instant::now();
        let report =
            tidings_store::check(dir, options.cache_bytes).context("the history check failed")?;
        tracing::info!(
            file = %report.file.display(),
            events = report.events,
            bytes = report.bytes,
            publisher_ids = report.publisher_ids,
            seconds = started.elapsed().as_secs_f64(),
            "history checked: sound"
        );
    }
    let store = DiskStore::open(dir, options)?;
    let report = store.report();
    let stats = report.stats;
    tracing::info!(
        store = "durable",
        file = %report.file.display(),
        events = stats.events,
        bytes = stats.bytes,
        file_bytes = stats.file_bytes,
        first = stats.bounds.first,
        next = stats.bounds.next,
        created = report.created,
        repaired = report.repaired,
        "history opened"
    );
    if report.repaired {
        tracing::info!(
            "the history was repaired after an unclean shutdown: every acknowledged event is kept"
        );
    }
    Ok(Arc::new(Closing::new(store)))
}

/// Whether a durable store is open, and whether it has been closed.
#[derive(Debug, Default)]
struct Lifecycle {
    /// `open` opened one.
    opened: bool,
    /// Its last handle went and its file was closed cleanly.
    closed: bool,
}

/// The durable store's lifecycle, and its change signal.
static LIFECYCLE: (Mutex<Lifecycle>, Condvar) = (
    Mutex::new(Lifecycle {
        opened: false,
        closed: false,
    }),
    Condvar::new(),
);

/// Waits, at most `timeout`, until the durable store (if one was opened)
/// has been closed, so that the process does not end in the middle of
/// closing it. Call it once everything that holds the hub is gone: the
/// last handle may be dropped on the sequencer's thread, which the process
/// does not wait for. Returns whether the store is closed (or was never
/// opened).
pub(crate) fn wait_closed(timeout: Duration) -> bool {
    let (lock, changed) = &LIFECYCLE;
    let state = lock.lock().unwrap_or_else(PoisonError::into_inner);
    let (state, _) = changed
        .wait_timeout_while(state, timeout, |s| s.opened && !s.closed)
        .unwrap_or_else(PoisonError::into_inner);
    !state.opened || state.closed
}

/// The durable store, reporting when its file is closed: redb marks the
/// file clean when the database is dropped, and a file not marked clean is
/// checked and repaired at the next start (about a second per million
/// events) as after a crash.
#[derive(Debug)]
struct Closing {
    /// The store. Declared first: it is closed before `_closed` signals.
    store: DiskStore,
    /// Says so when dropped.
    _closed: ClosedSignal,
}

impl Closing {
    fn new(store: DiskStore) -> Self {
        let (lock, _) = &LIFECYCLE;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = Lifecycle {
            opened: true,
            closed: false,
        };
        Self {
            store,
            _closed: ClosedSignal,
        }
    }
}

/// Marks the durable store closed when dropped.
#[derive(Debug)]
struct ClosedSignal;

impl Drop for ClosedSignal {
    fn drop(&mut self) {
        let (lock, changed) = &LIFECYCLE;
        lock.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        changed.notify_all();
    }
}

impl Store for Closing {
    fn append(&self, events: &[Arc<Event>]) -> Result<(), StoreError> {
        self.store.append(events)
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event>>, StoreError> {
        self.store.read_after(after, limit)
    }

    fn find_id(&self, id: &str) -> Result<Option<Arc<Event>>, StoreError> {
        self.store.find_id(id)
    }

    fn bounds(&self) -> Result<Bounds, StoreError> {
        self.store.bounds()
    }

    fn enforce_retention(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.store.enforce_retention(now_ms)
    }

    fn blocking(&self) -> bool {
        self.store.blocking()
    }
}
