//! Benchmark: acknowledged publishes per second at the core level, N
//! concurrent publishers each awaiting its acknowledgement before sending
//! the next (`tidings_core::Hub::publish` from N Tokio tasks), against the
//! durable store and against `MemoryStore` in the same run.
//!
//! With the durable store every acknowledgement waits for an fsync, and
//! every publish that arrives meanwhile shares the next one (group
//! commit): throughput grows with the number of publishers until the
//! batches are big enough that writing them costs more than the fsync.
//!
//! ```sh
//! cargo run --release -p tidings-store --example publish -- [seconds] [publishers,…]
//! ```
//!
//! Defaults: 5 seconds per case, 1,16,256,1024 publishers. Set
//! `TIDINGS_BENCH_DIR` to put the data directories somewhere other than
//! the system's temporary directory (on the disk being measured).

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark that reports on stdout"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tidings_core::{
    Bounds, Event, Hub, HubConfig, MemoryStore, Retention, Store, StoreError, Update,
};
use tidings_store::{DiskStore, Options};

/// A store that counts appends: how many events each group commit
/// carried.
#[derive(Debug)]
struct Counted<S> {
    /// The store measured.
    inner: S,
    /// Appends (commits).
    appends: AtomicU64,
    /// Events appended.
    events: AtomicU64,
}

impl<S> Counted<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            appends: AtomicU64::new(0),
            events: AtomicU64::new(0),
        }
    }

    fn events_per_append(&self) -> f64 {
        self.events.load(Ordering::Relaxed) as f64
            / self.appends.load(Ordering::Relaxed).max(1) as f64
    }
}

impl<S: Store> Store for Counted<S> {
    fn append(&self, events: &[Arc<Event>]) -> Result<(), StoreError> {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        self.inner.append(events)
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event>>, StoreError> {
        self.inner.read_after(after, limit)
    }

    fn find_id(&self, id: &str) -> Result<Option<Arc<Event>>, StoreError> {
        self.inner.find_id(id)
    }

    fn bounds(&self) -> Result<Bounds, StoreError> {
        self.inner.bounds()
    }

    fn enforce_retention(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.inner.enforce_retention(now_ms)
    }

    fn blocking(&self) -> bool {
        self.inner.blocking()
    }
}

/// What one case measured.
struct Outcome {
    /// Acknowledged publishes.
    acked: u64,
    /// How long the case ran.
    elapsed: Duration,
    /// Every publish's latency, sorted, in microseconds.
    latencies: Vec<u32>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64()
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        let at = ((self.latencies.len().saturating_sub(1)) as f64 * q) as usize;
        f64::from(self.latencies.get(at).copied().unwrap_or(0)) / 1e3
    }
}

fn payload(task: usize, n: u64) -> String {
    let mut data = format!("{{\"publisher\":{task},\"n\":{n},\"note\":\"");
    while data.len() < 98 {
        data.push('x');
    }
    data.push_str("\"}");
    data
}

async fn run(store: Arc<dyn Store>, publishers: usize, duration: Duration) -> Outcome {
    let hub = Hub::start(HubConfig::default(), store).unwrap();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..publishers)
        .map(|task| {
            let hub = hub.clone();
            tokio::spawn(async move {
                let topic = format!("https://bench.example/{task}");
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let update = Update {
                        topics: vec![topic.clone()],
                        data: payload(task, n),
                        ..Update::default()
                    };
                    let sent = Instant::now();
                    hub.publish(vec![update]).await.unwrap();
                    let micros = sent.elapsed().as_micros();
                    latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    hub.shutdown().await;
    latencies.sort_unstable();
    Outcome {
        acked: latencies.len() as u64,
        elapsed,
        latencies,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().map_or(5.0, |s| s.parse().expect("seconds"));
    let counts: Vec<usize> = args.next().map_or(vec![1, 16, 256, 1024], |s| {
        s.split(',')
            .map(|n| n.parse().expect("publishers"))
            .collect()
    });
    let duration = Duration::from_secs_f64(seconds);
    let base = std::env::var_os("TIDINGS_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| publishers | memory: publishes/s | durable: publishes/s | durable/memory | durable: events per commit | durable p50 ms | durable p99 ms | memory p50 ms | memory p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for publishers in counts {
        let memory = runtime.block_on(run(
            Arc::new(MemoryStore::new(Retention::default())),
            publishers,
            duration,
        ));
        let dir = tempfile::tempdir_in(&base).unwrap();
        let disk = Arc::new(Counted::new(
            DiskStore::open(dir.path(), Options::default()).unwrap(),
        ));
        let durable = runtime.block_on(run(
            Arc::clone(&disk) as Arc<dyn Store>,
            publishers,
            duration,
        ));
        println!(
            "| {publishers} | {:.0} | {:.0} | {:.2} | {:.1} | {:.2} | {:.2} | {:.3} | {:.3} |",
            memory.rate(),
            durable.rate(),
            durable.rate() / memory.rate(),
            disk.events_per_append(),
            durable.quantile_ms(0.5),
            durable.quantile_ms(0.99),
            memory.quantile_ms(0.5),
            memory.quantile_ms(0.99),
        );
    }
}
