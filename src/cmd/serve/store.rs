//! Where `tidings serve` keeps its history: the flags and the opening.
//!
//! By default, a durable store (`tidings-store`) in `--data-dir`; with
//! `--memory`, a volatile one. The retention flags apply to both.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tidings_core::{MemoryStore, Retention, Store};
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
            retained_topics = report.retained_topics,
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
        retained_topics = stats.retained_topics,
        created = report.created,
        repaired = report.repaired,
        "history opened"
    );
    if report.repaired {
        tracing::info!(
            "the history was repaired after an unclean shutdown: every acknowledged event is kept"
        );
    }
    Ok(Arc::new(store))
}
