//! Append-batch throughput of embedded engines, durable (fsync) at every
//! batch: the workload of Tidings' history, where the sequencer appends one
//! batch of events per commit and acknowledges publishers only after it.
//!
//! Each commit writes `batch` events of `VALUE_LEN` bytes under consecutive
//! u64 keys, plus one small metadata record (the next sequence number), as
//! the real store does. Reported: batches (commits) per second and events
//! per second, for each engine and batch size, over a fixed time budget.
//!
//! ```sh
//! cargo run --release -- [seconds-per-trial] [rounds]
//! ```

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::time::{Duration, Instant};

/// About what a 100-byte payload takes in the store's record encoding.
const VALUE_LEN: usize = 140;

trait Engine {
    fn name(&self) -> String;
    fn append(&mut self, first: u64, batch: usize, value: &[u8]);
}

struct Redb {
    db: redb::Database,
    quick_repair: bool,
}

const EVENTS: redb::TableDefinition<'static, u64, &[u8]> = redb::TableDefinition::new("events");
const META: redb::TableDefinition<'static, &str, u64> = redb::TableDefinition::new("meta");

impl Redb {
    fn open(dir: &Path, quick_repair: bool) -> Self {
        let db = redb::Database::builder()
            .set_cache_size(64 << 20)
            .create(dir.join("history.redb"))
            .unwrap();
        Self { db, quick_repair }
    }
}

impl Engine for Redb {
    fn name(&self) -> String {
        if self.quick_repair {
            "redb 4.4 (quick repair)".into()
        } else {
            "redb 4.4".into()
        }
    }

    fn append(&mut self, first: u64, batch: usize, value: &[u8]) {
        let mut tx = self.db.begin_write().unwrap();
        tx.set_quick_repair(self.quick_repair);
        {
            let mut events = tx.open_table(EVENTS).unwrap();
            for seq in first..first + batch as u64 {
                events.insert(seq, value).unwrap();
            }
            let mut meta = tx.open_table(META).unwrap();
            meta.insert("next", first + batch as u64).unwrap();
        }
        tx.commit().unwrap();
    }
}

struct Fjall {
    db: fjall::Database,
    events: fjall::Keyspace,
    meta: fjall::Keyspace,
}

impl Fjall {
    fn open(dir: &Path) -> Self {
        let db = fjall::Database::builder(dir).open().unwrap();
        let events = db
            .keyspace("events", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        Self { db, events, meta }
    }
}

impl Engine for Fjall {
    fn name(&self) -> String {
        "fjall 3.1 (SyncData)".into()
    }

    fn append(&mut self, first: u64, batch: usize, value: &[u8]) {
        let mut b = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        for seq in first..first + batch as u64 {
            b.insert(&self.events, seq.to_be_bytes(), value);
        }
        b.insert(
            &self.meta,
            "next",
            (first + batch as u64).to_be_bytes().as_slice(),
        );
        b.commit().unwrap();
    }
}

struct Sqlite {
    conn: rusqlite::Connection,
}

impl Sqlite {
    fn open(dir: &Path) -> Self {
        let conn = rusqlite::Connection::open(dir.join("history.sqlite")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE events (seq INTEGER PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .unwrap();
        Self { conn }
    }
}

impl Engine for Sqlite {
    fn name(&self) -> String {
        "SQLite 3 (WAL, synchronous=FULL)".into()
    }

    fn append(&mut self, first: u64, batch: usize, value: &[u8]) {
        let tx = self.conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO events (seq, value) VALUES (?1, ?2)")
                .unwrap();
            for seq in first..first + batch as u64 {
                insert.execute(rusqlite::params![seq as i64, value]).unwrap();
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next', ?1)",
                [(first + batch as u64) as i64],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
}

fn measure(engine: &mut dyn Engine, batch: usize, budget: Duration) -> (f64, f64) {
    let value = vec![b'x'; VALUE_LEN];
    let mut seq = 1u64;
    // Warm-up: table creation and first allocations.
    for _ in 0..10 {
        engine.append(seq, batch, &value);
        seq += batch as u64;
    }
    let start = Instant::now();
    let mut commits = 0u64;
    while start.elapsed() < budget {
        engine.append(seq, batch, &value);
        seq += batch as u64;
        commits += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    (commits as f64 / secs, (commits * batch as u64) as f64 / secs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map_or(1.0, |s| s.parse().expect("seconds per trial"));
    let rounds: usize = args.next().map_or(5, |s| s.parse().expect("rounds"));
    let budget = Duration::from_secs_f64(secs);
    let base = std::env::var_os("ENGINE_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    type Make = Box<dyn Fn(&Path) -> Box<dyn Engine>>;
    let engines: Vec<Make> = vec![
        Box::new(|d| Box::new(Redb::open(d, false))),
        Box::new(|d| Box::new(Redb::open(d, true))),
        Box::new(|d| Box::new(Fjall::open(d))),
        Box::new(|d| Box::new(Sqlite::open(d))),
    ];
    println!(
        "Median of {rounds} interleaved trials of {secs} s each (the engines take turns, so a change in the disk's speed hits them alike); min-max in brackets."
    );
    println!();
    println!("| engine | events per commit | commits/s | events/s |");
    println!("|---|---:|---:|---:|");
    for batch in [1usize, 16, 256, 1024] {
        let mut results: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
        for round in 0..rounds {
            for (k, make) in engines.iter().enumerate() {
                let dir = tempfile::tempdir_in(&base).unwrap();
                let mut engine = make(dir.path());
                let (commits, events) = measure(&mut *engine, batch, budget);
                if round == 0 {
                    results.push((engine.name(), Vec::new(), Vec::new()));
                }
                results[k].1.push(commits);
                results[k].2.push(events);
            }
        }
        for (name, commits, events) in results {
            let lo = events.iter().copied().fold(f64::MAX, f64::min);
            let hi = events.iter().copied().fold(0.0, f64::max);
            println!(
                "| {name} | {batch} | {:.0} | {:.0} [{lo:.0}-{hi:.0}] |",
                median(commits),
                median(events)
            );
        }
    }
}
