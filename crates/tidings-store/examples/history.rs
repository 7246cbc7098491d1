//! Benchmark of a big history: fills a store with N events (default
//! 1,000,000, ~100-byte payloads, one in ten with a publisher id) and
//! measures
//!
//! - bytes on disk per event,
//! - the replay rate through `read_after` pages of 1000, and through a
//!   real core subscription with `Last-Event-ID: earliest`,
//! - the cost of resuming from the oldest vs the newest event, by hub id
//!   and by publisher id (the seek, then the first page),
//! - how long opening takes: clean, after a crash (redb's repair), and a
//!   full check.
//!
//! ```sh
//! cargo run --release -p tidings-store --example history -- [events] [dir]
//! ```
//!
//! `dir` (default: a temporary directory) must be empty or absent; it is
//! left in place when given, so that runs can be repeated on it.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark that reports on stdout"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidings_core::{Event, Hub, HubConfig, Retention, Selector, Store, SubscribeRequest, Update};
use tidings_store::{DiskStore, HISTORY_FILE, Options};

const PAGE: usize = 1000;

fn options() -> Options {
    Options {
        retention: Retention {
            max_events: None,
            max_age: None,
            max_bytes: None,
        },
        ..Options::default()
    }
}

fn payload(i: u64) -> String {
    // 100 bytes: a JSON-ish body like an application's update.
    let mut data = format!("{{\"order\":{i},\"status\":\"shipped\",\"note\":\"");
    while data.len() < 98 {
        data.push('x');
    }
    data.push_str("\"}");
    data
}

fn publisher_id(i: u64) -> String {
    format!("order-{i}")
}

fn fill(store: &DiskStore, n: u64) -> Duration {
    let start = Instant::now();
    let mut next = store.bounds().unwrap().next;
    let now_ms = 1_700_000_000_000;
    let mut i = 0;
    while i < n {
        let batch: Vec<Arc<Event>> = (i..n.min(i + 1000))
            .map(|k| {
                let update = Update {
                    topics: vec![format!("https://shop.example/orders/{}", k % 1000)],
                    data: payload(k),
                    id: (k % 10 == 0).then(|| publisher_id(k)),
                    ..Update::default()
                };
                let event = Event::encode(next + (k - i), &update, now_ms).unwrap();
                Arc::new(event)
            })
            .collect();
        next += batch.len() as u64;
        i += batch.len() as u64;
        store.append(&batch).unwrap();
    }
    start.elapsed()
}

fn replay_pages(store: &DiskStore) -> (u64, Duration) {
    let start = Instant::now();
    let mut after = 0;
    let mut count = 0u64;
    loop {
        let page = store.read_after(after, PAGE).unwrap();
        count += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.seq,
            _ => break,
        }
    }
    (count, start.elapsed())
}

/// Median and 99th percentile of `runs` timings of `f`, in microseconds.
fn time_us(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

fn resume(store: &DiskStore, id: &str) -> usize {
    // What the hub does for a resuming subscriber: look the id up (hub ids
    // carry their sequence number), read the bounds, read the first page.
    let seq = match tidings_core::EventId::parse(id) {
        Some(seq) => seq,
        None => store.find_id(id).unwrap().unwrap().seq,
    };
    let _bounds = store.bounds().unwrap();
    store.read_after(seq, PAGE).unwrap().len()
}

async fn replay_subscription(store: Arc<DiskStore>, n: u64) -> Duration {
    let hub = Hub::start(
        HubConfig {
            queue_capacity: 1 << 16,
            ..HubConfig::default()
        },
        store,
    )
    .unwrap();
    let start = Instant::now();
    let mut sub = hub
        .subscribe(SubscribeRequest {
            selectors: vec![Selector::parse("*")],
            last_event_id: Some("earliest".into()),
            auth: None,
        })
        .await
        .unwrap();
    let mut frames = Vec::new();
    let mut events = 0u64;
    while events < n {
        frames.clear();
        sub.next(&mut frames).await.unwrap();
        events += frames.iter().filter(|f| f.starts_with(b"id:")).count() as u64;
        sub.written();
    }
    let elapsed = start.elapsed();
    hub.shutdown().await;
    elapsed
}

/// Where the file's bytes go, as redb counts them.
fn file_layout(file: &std::path::Path) {
    let db = redb::Database::open(file).unwrap();
    let tx = db.begin_write().unwrap();
    let stats = tx.stats().unwrap();
    let page = stats.page_size() as u64;
    println!(
        "layout: {} pages allocated, {} leaf + {} branch pages of {page} bytes; stored {} bytes, metadata {} bytes, fragmented {} bytes",
        stats.allocated_pages(),
        stats.leaf_pages(),
        stats.branch_pages(),
        stats.stored_bytes(),
        stats.metadata_bytes(),
        stats.fragmented_bytes()
    );
    tx.abort().unwrap();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(1_000_000, |s| s.parse().expect("events"));
    let temp;
    let dir: PathBuf = match args.next() {
        Some(dir) => dir.into(),
        None => {
            temp = tempfile::tempdir().unwrap();
            temp.path().to_path_buf()
        }
    };
    println!("history benchmark: {n} events in {}", dir.display());

    let store = DiskStore::open(&dir, options()).unwrap();
    let held = store.stats().unwrap().events;
    if held < n {
        let elapsed = fill(&store, n - held);
        println!(
            "fill: {} events in batches of 1000 in {:.1} s: {:.0} events/s",
            n - held,
            elapsed.as_secs_f64(),
            (n - held) as f64 / elapsed.as_secs_f64()
        );
    }
    let stats = store.stats().unwrap();
    println!(
        "size: {} events, file {} bytes = {:.1} bytes/event (frames {:.1} bytes/event)",
        stats.events,
        stats.file_bytes,
        stats.file_bytes as f64 / stats.events as f64,
        stats.bytes as f64 / stats.events as f64
    );
    drop(store);
    file_layout(&dir.join(HISTORY_FILE));

    let started = Instant::now();
    let store = DiskStore::open(&dir, options()).unwrap();
    println!(
        "open (clean): {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    for round in 1..=3 {
        let (count, elapsed) = replay_pages(&store);
        println!(
            "replay via read_after pages of {PAGE}, round {round}: {count} events in {:.2} s: {:.0} events/s",
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64()
        );
    }

    let bounds = store.bounds().unwrap();
    let stats = store.stats().unwrap();
    let first_seq = bounds.first;
    let last_seq = bounds.next - 1;
    // Publisher ids are on every tenth event, counted from the fill's
    // start. "Recent" resumes 1010 events before the head, so that both
    // read a full first page; "newest" resumes at the head.
    let nth = |k: u64| first_seq + k;
    let hub = |seq: u64| tidings_core::EventId::format(seq);
    let recent_k = (n - 1010) / 10 * 10;
    let cases = [
        ("oldest, hub id", hub(nth(0))),
        ("recent, hub id", hub(nth(recent_k))),
        ("newest, hub id", hub(last_seq)),
        ("oldest, publisher id", publisher_id(0)),
        ("recent, publisher id", publisher_id(recent_k)),
        ("newest, publisher id", publisher_id((n - 1) / 10 * 10)),
    ];
    println!("resume (lookup + bounds + first page of up to {PAGE}), 2000 runs each:");
    for (label, id) in &cases {
        let got = resume(&store, id);
        let (median, p99) = time_us(2000, || {
            resume(&store, id);
        });
        println!("  {label}: {got} events: median {median:.1} µs, p99 {p99:.1} µs");
    }
    println!("seek only (read_after of 1 event), 20000 runs each:");
    for (label, seq) in [("oldest", first_seq), ("newest", last_seq - 1)] {
        let (median, p99) = time_us(20_000, || {
            store.read_after(seq, 1).unwrap();
        });
        println!("  {label}: median {median:.2} µs, p99 {p99:.2} µs");
    }
    for (label, id) in [("oldest", &cases[3].1), ("newest", &cases[5].1)] {
        let (median, p99) = time_us(20_000, || {
            store.find_id(id).unwrap().unwrap();
        });
        println!("  find_id {label} publisher id: median {median:.2} µs, p99 {p99:.2} µs");
    }

    let store = Arc::new(store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let elapsed = runtime.block_on(replay_subscription(Arc::clone(&store), stats.events));
    println!(
        "replay via a core subscription (Last-Event-ID: earliest): {} events in {:.2} s: {:.0} events/s",
        stats.events,
        elapsed.as_secs_f64(),
        stats.events as f64 / elapsed.as_secs_f64()
    );
    drop(runtime);

    // A crash leaves the file as the page cache has it: copy it while open,
    // after a write (a file with no write since opening is still clean).
    let next = store.bounds().unwrap().next;
    let update = Update {
        topics: vec!["t".into()],
        data: payload(0),
        ..Update::default()
    };
    store
        .append(&[Arc::new(Event::encode(next, &update, 0).unwrap())])
        .unwrap();
    let crashed = dir.with_extension("crashed");
    std::fs::create_dir_all(&crashed).unwrap();
    std::fs::copy(dir.join(HISTORY_FILE), crashed.join(HISTORY_FILE)).unwrap();
    drop(store);
    let started = Instant::now();
    let repaired = DiskStore::open(&crashed, options()).unwrap();
    println!(
        "open after a crash (repair): {:.2} s, repaired: {}",
        started.elapsed().as_secs_f64(),
        repaired.report().repaired
    );
    drop(repaired);
    std::fs::remove_dir_all(&crashed).unwrap();

    let started = Instant::now();
    let report = tidings_store::check(&dir, Options::default().cache_bytes).unwrap();
    println!(
        "full check (checksums, records, index, counters): {:.2} s for {} events",
        started.elapsed().as_secs_f64(),
        report.events
    );

    retention_while_appending(&dir, report.events);
}

/// Trims half the history (on a copy) while appending one event at a time,
/// as the sequencer would: how long retention takes, and how long an
/// append waits for it.
fn retention_while_appending(dir: &std::path::Path, events: u64) {
    let copy = dir.with_extension("trim");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(dir.join(HISTORY_FILE), copy.join(HISTORY_FILE)).unwrap();
    let store = Arc::new(
        DiskStore::open(
            &copy,
            Options {
                retention: Retention {
                    max_events: Some(events / 2),
                    max_age: None,
                    max_bytes: None,
                },
                ..Options::default()
            },
        )
        .unwrap(),
    );
    let append_one = |store: &DiskStore| {
        let next = store.bounds().unwrap().next;
        let update = Update {
            topics: vec!["t".into()],
            data: payload(next),
            ..Update::default()
        };
        let event = Arc::new(Event::encode(next, &update, 1_700_000_000_000).unwrap());
        let started = Instant::now();
        store.append(&[event]).unwrap();
        started.elapsed().as_secs_f64() * 1e3
    };
    let mut quiet: Vec<f64> = (0..50).map(|_| append_one(&store)).collect();
    let trimmer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let started = Instant::now();
            let removed = store.enforce_retention(0).unwrap();
            (removed, started.elapsed())
        })
    };
    let mut during = Vec::new();
    while !trimmer.is_finished() {
        during.push(append_one(&store));
    }
    let (removed, took) = trimmer.join().unwrap();
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} appends)",
            at(0.5),
            at(0.99),
            at(1.0),
            v.len()
        )
    };
    println!(
        "retention: {removed} events dropped in {:.2} s ({:.0} events/s, chunks of 2048)",
        took.as_secs_f64(),
        removed as f64 / took.as_secs_f64()
    );
    println!("  one-event appends before: {}", summary(&mut quiet));
    println!("  one-event appends during: {}", summary(&mut during));
    drop(store);
    std::fs::remove_dir_all(&copy).unwrap();
}
