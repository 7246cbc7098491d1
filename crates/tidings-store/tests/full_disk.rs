//! The durable store on a disk that fills up: a real tmpfs, mounted small
//! and grown again. A write that finds no room fails as `Full` and leaves
//! nothing behind; reads keep working; writes are refused until room comes
//! back, and then taken again without reopening the store by hand.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod tmpfs;

use std::sync::Arc;

use tidings_core::{Event, Retention, Store, StoreErrorKind, Update};
use tidings_store::{DiskStore, Options};
use tmpfs::Tmpfs;

const KEEP_ALL: Retention = Retention {
    max_events: None,
    max_age: None,
    max_bytes: None,
};

fn options() -> Options {
    Options {
        retention: KEEP_ALL,
        cache_bytes: 1 << 20,
    }
}

fn event(seq: u64, bytes: usize, id: Option<&str>) -> Arc<Event> {
    let update = Update {
        topics: vec!["https://example.com/big".into()],
        data: format!("{seq}:{}", "x".repeat(bytes)),
        id: id.map(Into::into),
        ..Update::default()
    };
    Arc::new(Event::encode(seq, &update, 1_700_000_000_000).unwrap())
}

/// One test at a time: a test forks `mount` and `umount`, and a forked
/// child holds (until it execs) the other test's file locks, which a
/// store reopening its directory then finds taken.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn seqs(events: &[Arc<Event>]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_recovers_in_place() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let dir = fs.path().join("data");
    let store = DiskStore::open(&dir, options()).unwrap();
    let mut next = store.bounds().unwrap().next;
    let mut stored = Vec::new();
    let refused = loop {
        assert!(stored.len() < 500, "2 MiB never filled up");
        let id = format!("id-{next}");
        let batch = [event(next, 40_000, Some(&id))];
        match store.append(&batch) {
            Ok(()) => {
                stored.extend(batch);
                next += 1;
            }
            Err(err) => break err,
        }
    };
    assert_eq!(refused.kind, StoreErrorKind::Full, "{refused}");
    assert!(stored.len() >= 10, "{} stored", stored.len());

    // Reads keep working, and hold exactly what was stored.
    assert_eq!(seqs(&store.read_after(0, 1000).unwrap()), seqs(&stored));
    assert_eq!(store.bounds().unwrap().next, next);
    let last_id = format!("id-{}", next - 1);
    assert_eq!(store.find_id(&last_id).unwrap().unwrap().seq, next - 1);
    assert!(store.find_id(&format!("id-{next}")).unwrap().is_none());

    // Even a small write is refused now, and recovery says why.
    let small = [event(next, 10, None)];
    assert_eq!(store.append(&small).unwrap_err().kind, StoreErrorKind::Full);
    assert_eq!(store.recover().unwrap_err().kind, StoreErrorKind::Full);
    assert_eq!(
        store.enforce_retention(0).unwrap_err().kind,
        StoreErrorKind::Full
    );

    // Room again: the store takes writes after recovering, at the same
    // sequence number, and everything before is still there.
    fs.resize("8m");
    store.recover().unwrap();
    let batch = [event(next, 40_000, Some("after"))];
    store.append(&batch).unwrap();
    stored.extend(batch);
    assert_eq!(seqs(&store.read_after(0, 1000).unwrap()), seqs(&stored));
    assert_eq!(store.find_id("after").unwrap().unwrap().seq, next);

    // Closed cleanly after the reopening: the next start needs no repair
    // and finds exactly what was acknowledged.
    store.close().unwrap();
    drop(store);
    let again = DiskStore::open(&dir, options()).unwrap();
    assert!(!again.report().repaired, "closed cleanly");
    assert_eq!(again.report().stats.events, stored.len() as u64);
    let read = again.read_after(0, 1000).unwrap();
    assert_eq!(seqs(&read), seqs(&stored));
    for (got, want) in read.iter().zip(&stored) {
        assert_eq!(got.frame, want.frame);
    }
    assert_eq!(again.bounds().unwrap().next, next + 1);
    assert!(
        !dir.join("space-probe").exists(),
        "the space probe is removed"
    );
}

/// A store killed in the middle of an outage (the file not closed) opens
/// again with everything acknowledged and nothing refused.
#[test]
fn a_crash_during_the_outage_loses_nothing_acknowledged() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(fs) = Tmpfs::mount("1m") else {
        return;
    };
    let dir = fs.path().join("data");
    let store = DiskStore::open(&dir, options()).unwrap();
    let mut next = store.bounds().unwrap().next;
    let mut stored = Vec::new();
    loop {
        assert!(stored.len() < 500, "1 MiB never filled up");
        let batch = [event(next, 30_000, None)];
        match store.append(&batch) {
            Ok(()) => {
                stored.extend(batch);
                next += 1;
            }
            Err(err) => {
                assert_eq!(err.kind, StoreErrorKind::Full);
                break;
            }
        }
    }
    // As if killed: the file is never closed by this store.
    std::mem::forget(store);
    // The lock is this process's; a new open in the same process needs the
    // file handles gone, so read it through a copy instead.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("history.redb"), copy.path().join("history.redb")).unwrap();
    let again = DiskStore::open(copy.path(), options()).unwrap();
    assert_eq!(seqs(&again.read_after(0, 1000).unwrap()), seqs(&stored));
    assert_eq!(again.bounds().unwrap().next, next);
}
