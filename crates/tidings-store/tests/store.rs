//! The durable store on real files: appends, reads, lookups, bounds,
//! retention on each axis, restarts, crashes, locks and damaged files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidings_core::{Bounds, Event, Retention, Store, Update, initial_seq};
use tidings_store::{DiskStore, HISTORY_FILE, OpenError, Options, check};

const KEEP_ALL: Retention = Retention {
    max_events: None,
    max_age: None,
    max_bytes: None,
};

fn options(retention: Retention) -> Options {
    Options {
        retention,
        cache_bytes: 4 << 20,
    }
}

fn open(dir: &Path, retention: Retention) -> DiskStore {
    DiskStore::open(dir, options(retention)).unwrap()
}

fn update(data: &str, id: Option<&str>) -> Update {
    Update {
        topics: vec!["https://example.com/t".into(), "alt".into()],
        data: data.into(),
        id: id.map(Into::into),
        ..Update::default()
    }
}

fn event(seq: u64, data: &str, id: Option<&str>, time_ms: u64) -> Arc<Event> {
    Arc::new(Event::encode(seq, &update(data, id), time_ms).unwrap())
}

/// Appends `n` events, one batch, hub ids, at `time_ms`; returns them.
fn append_n(store: &DiskStore, n: u64, time_ms: u64) -> Vec<Arc<Event>> {
    let next = store.bounds().unwrap().next;
    let batch: Vec<_> = (0..n)
        .map(|i| event(next + i, &format!("event {}", next + i), None, time_ms))
        .collect();
    store.append(&batch).unwrap();
    batch
}

fn seqs(events: &[Arc<Event>]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

fn frame_bytes(events: &[Arc<Event>]) -> u64 {
    events.iter().map(|e| e.frame.len() as u64).sum()
}

#[test]
fn appends_reads_finds_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let before = initial_seq();
    let store = open(dir.path(), KEEP_ALL);
    assert!(store.report().created);
    assert!(!store.report().repaired);
    let base = store.bounds().unwrap().next;
    assert!(
        (before..=initial_seq()).contains(&base),
        "a new history starts from the clock"
    );
    assert_eq!(
        store.bounds().unwrap(),
        Bounds {
            first: base,
            next: base
        }
    );

    let private = Arc::new(
        Event::encode(
            base + 3,
            &Update {
                private: true,
                event_type: Some("kind".into()),
                retry: Some(10),
                ..update("secret\nlines", None)
            },
            5,
        )
        .unwrap(),
    );
    let batch = vec![
        event(base, "zero", None, 1),
        event(base + 1, "one", Some("pub-1"), 2),
        event(base + 2, "two", None, 3),
        private,
        event(base + 4, "four", Some("pub-4"), 6),
    ];
    store.append(&batch[..2]).unwrap();
    store.append(&batch[2..]).unwrap();

    let all = store.read_after(0, 100).unwrap();
    assert_eq!(all, batch, "events come back exactly as appended");
    assert_eq!(
        seqs(&store.read_after(base + 1, 2).unwrap()),
        [base + 2, base + 3]
    );
    assert!(store.read_after(base + 4, 10).unwrap().is_empty());
    assert!(store.read_after(u64::MAX, 10).unwrap().is_empty());
    assert_eq!(store.find_id("pub-4").unwrap().unwrap(), batch[4]);
    assert_eq!(store.find_id("pub-1").unwrap().unwrap().seq, base + 1);
    assert_eq!(
        store.find_id(&batch[2].id).unwrap().unwrap(),
        batch[2],
        "hub ids are found by their sequence number"
    );
    assert!(store.find_id("nope").unwrap().is_none());
    assert!(store.find_id("urn:tidings:1").unwrap().is_none());
    assert_eq!(
        store.bounds().unwrap(),
        Bounds {
            first: base,
            next: base + 5
        }
    );
    let stats = store.stats().unwrap();
    assert_eq!(stats.events, 5);
    assert_eq!(stats.bytes, frame_bytes(&batch));

    // Going back: refused, and nothing of the batch stays.
    let back = [
        event(base + 5, "ok", Some("half"), 0),
        event(base + 4, "back", None, 0),
    ];
    assert!(store.append(&back).is_err());
    assert!(store.append(&[event(base + 1, "again", None, 0)]).is_err());
    assert_eq!(store.bounds().unwrap().next, base + 5);
    assert!(store.find_id("half").unwrap().is_none());
    assert_eq!(store.read_after(0, 100).unwrap().len(), 5);
    assert!(store.append(&[]).is_ok());
}

/// In cluster mode the store keeps the engine's log: an empty store
/// starts wherever the engine's oldest entry is, and places may skip
/// entries the engine no longer has.
#[test]
fn an_empty_store_takes_any_start_and_places_may_skip() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), KEEP_ALL);
        let batch = [
            event(5, "five", None, 0),
            event(6, "six", Some("p6"), 0),
            event(9, "nine", None, 0),
        ];
        store.append(&batch).unwrap();
        assert_eq!(store.bounds().unwrap(), Bounds { first: 5, next: 10 });
        assert!(store.append(&[event(8, "eight", None, 0)]).is_err());
        store.append(&[event(12, "twelve", None, 0)]).unwrap();
        assert_eq!(seqs(&store.read_after(6, 10).unwrap()), [9, 12]);
        assert_eq!(store.find_id("urn:tidings:9").unwrap().unwrap().seq, 9);
    }
    let store = open(dir.path(), KEEP_ALL);
    assert_eq!(store.bounds().unwrap(), Bounds { first: 5, next: 13 });
    assert_eq!(seqs(&store.read_after(0, 10).unwrap()), [5, 6, 9, 12]);
    assert_eq!(check_after_drop(store, dir.path()).events, 4);
}

#[test]
fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (written, bounds) = {
        let store = open(dir.path(), KEEP_ALL);
        let mut written = append_n(&store, 10, 100);
        let next = store.bounds().unwrap().next;
        let mine = event(next, "mine", Some("mine"), 100);
        store.append(std::slice::from_ref(&mine)).unwrap();
        written.push(mine);
        (written, store.bounds().unwrap())
    };
    let store = open(dir.path(), KEEP_ALL);
    let report = store.report();
    assert!(!report.created);
    assert!(!report.repaired, "closed cleanly");
    assert_eq!(report.stats.events, 11);
    assert_eq!(report.stats.bounds, bounds);
    assert_eq!(report.stats.bytes, frame_bytes(&written));
    assert_eq!(store.read_after(0, 100).unwrap(), written);
    assert_eq!(store.find_id("mine").unwrap().unwrap().seq, bounds.next - 1);
    // The order goes on where it stopped.
    assert_eq!(append_n(&store, 1, 0)[0].seq, bounds.next);
    let checked = check_after_drop(store, dir.path());
    assert_eq!(checked.events, 12);
    assert_eq!(checked.publisher_ids, 1);
}

fn check_after_drop(store: DiskStore, dir: &Path) -> tidings_store::CheckReport {
    drop(store);
    check(dir, 4 << 20).unwrap()
}

#[test]
fn retention_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        Retention {
            max_events: Some(3),
            ..KEEP_ALL
        },
    );
    let written = append_n(&store, 5, 0);
    // Appends never trim: retention is the background's job.
    assert_eq!(store.stats().unwrap().events, 5);
    assert_eq!(store.enforce_retention(0).unwrap(), 2);
    assert_eq!(store.enforce_retention(0).unwrap(), 0);
    assert_eq!(store.read_after(0, 10).unwrap(), written[2..]);
    assert_eq!(store.stats().unwrap().bytes, frame_bytes(&written[2..]));
    assert_eq!(store.bounds().unwrap().first, written[2].seq);
}

#[test]
fn retention_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        Retention {
            max_age: Some(Duration::from_millis(100)),
            ..KEEP_ALL
        },
    );
    let old = append_n(&store, 3, 1_000);
    let young = append_n(&store, 2, 1_200);
    assert_eq!(
        store.enforce_retention(1_100).unwrap(),
        0,
        "100 ms old: kept"
    );
    assert_eq!(store.enforce_retention(1_101).unwrap(), 3);
    assert_eq!(store.read_after(0, 10).unwrap(), young);
    assert!(store.find_id(&old[0].id).unwrap().is_none());
    assert_eq!(store.enforce_retention(5_000).unwrap(), 2);
    assert!(store.read_after(0, 10).unwrap().is_empty());
}

#[test]
fn retention_by_bytes_counts_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let store = open(dir.path(), KEEP_ALL);
        let mut written = append_n(&store, 4, 0);
        let next = store.bounds().unwrap().next;
        // Publisher ids and multi-line data: the stored record is not the
        // frame, but the count is the frames' lengths.
        let batch = vec![
            event(next, "a\nb\nc", Some("p1"), 0),
            event(next + 1, &"x".repeat(300), Some("p2"), 0),
        ];
        store.append(&batch).unwrap();
        written.extend(batch);
        written
    };
    let total = frame_bytes(&written);
    let keep = frame_bytes(&written[3..]);
    let store = open(
        dir.path(),
        Retention {
            max_bytes: Some(keep),
            ..KEEP_ALL
        },
    );
    assert_eq!(store.stats().unwrap().bytes, total, "persisted byte count");
    assert_eq!(store.enforce_retention(0).unwrap(), 3);
    assert_eq!(store.read_after(0, 10).unwrap(), written[3..]);
    drop(store);
    let store = open(
        dir.path(),
        Retention {
            max_bytes: Some(keep - 1),
            ..KEEP_ALL
        },
    );
    assert_eq!(store.stats().unwrap().bytes, keep);
    assert_eq!(store.enforce_retention(0).unwrap(), 1);
    assert_eq!(store.stats().unwrap().bytes, frame_bytes(&written[4..]));
    assert_eq!(store.find_id("p1").unwrap().unwrap().seq, written[4].seq);
    check_after_drop(store, dir.path());
}

#[test]
fn retention_in_many_chunks_and_index_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        Retention {
            max_events: Some(100),
            ..KEEP_ALL
        },
    );
    let base = store.bounds().unwrap().next;
    let batch: Vec<_> = (0..5_000)
        .map(|i| {
            let id = (i % 2 == 0).then(|| format!("id-{i}"));
            event(base + i, "payload", id.as_deref(), 0)
        })
        .collect();
    store.append(&batch).unwrap();
    assert_eq!(store.enforce_retention(0).unwrap(), 4_900);
    assert_eq!(
        store.bounds().unwrap(),
        Bounds {
            first: base + 4_900,
            next: base + 5_000
        }
    );
    assert!(store.find_id("id-4898").unwrap().is_none());
    assert_eq!(store.find_id("id-4900").unwrap().unwrap().seq, base + 4_900);
    assert_eq!(store.stats().unwrap().bytes, frame_bytes(&batch[4_900..]));
    // The index only names retained events.
    assert_eq!(check_after_drop(store, dir.path()).publisher_ids, 50);
}

#[test]
fn an_expired_id_may_be_used_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        Retention {
            max_events: Some(1),
            ..KEEP_ALL
        },
    );
    let base = store.bounds().unwrap().next;
    store
        .append(&[event(base, "first", Some("same"), 0)])
        .unwrap();
    store.append(&[event(base + 1, "other", None, 0)]).unwrap();
    assert_eq!(store.enforce_retention(0).unwrap(), 1);
    assert!(store.find_id("same").unwrap().is_none());
    store
        .append(&[event(base + 2, "second", Some("same"), 0)])
        .unwrap();
    assert_eq!(store.find_id("same").unwrap().unwrap().seq, base + 2);
    assert_eq!(store.enforce_retention(0).unwrap(), 1);
    assert_eq!(store.find_id("same").unwrap().unwrap().seq, base + 2);
}

#[test]
fn next_survives_trimming_everything_and_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let next = {
        let store = open(
            dir.path(),
            Retention {
                max_events: Some(0),
                ..KEEP_ALL
            },
        );
        append_n(&store, 7, 0);
        let next = store.bounds().unwrap().next;
        assert_eq!(store.enforce_retention(0).unwrap(), 7);
        assert_eq!(store.bounds().unwrap(), Bounds { first: next, next });
        next
    };
    let store = open(dir.path(), KEEP_ALL);
    assert_eq!(store.bounds().unwrap(), Bounds { first: next, next });
    assert_eq!(store.stats().unwrap().bytes, 0);
    assert_eq!(append_n(&store, 1, 0)[0].seq, next);
}

#[test]
fn a_second_opener_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path(), KEEP_ALL);
    let err = DiskStore::open(dir.path(), options(KEEP_ALL)).unwrap_err();
    assert!(
        matches!(err, OpenError::Locked { holder: Some(pid), .. } if pid == std::process::id()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("in use by another tidings process"),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn close_releases_the_file_cleanly_and_later_calls_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), KEEP_ALL);
    let written = append_n(&store, 5, 0);
    store.close().unwrap();
    let err = store.read_after(0, 10).unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    assert!(store.append(&written).is_err());
    // The directory is free again and the file was closed cleanly, though
    // the handle still lives.
    let reopened = open(dir.path(), KEEP_ALL);
    assert!(!reopened.report().repaired);
    assert_eq!(reopened.read_after(0, 10).unwrap(), written);
    drop(store);
}

/// `Hub::shutdown` returns with the history closed, even while a
/// subscription (which holds the hub's parts) is still alive.
#[tokio::test]
async fn hub_shutdown_closes_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(open(dir.path(), KEEP_ALL));
    let hub = tidings_core::Hub::start(tidings_core::HubConfig::default(), store).unwrap();
    let subscription = hub
        .subscribe(tidings_core::SubscribeRequest {
            selectors: vec![tidings_core::Selector::parse("https://example.com/t")],
            ..tidings_core::SubscribeRequest::default()
        })
        .await
        .unwrap();
    let published = hub.publish(vec![update("kept", None)]).await.unwrap();
    hub.shutdown().await;
    hub.shutdown().await; // a second call returns too
    let reopened = open(dir.path(), KEEP_ALL);
    assert!(!reopened.report().repaired, "closed cleanly");
    let kept = reopened.read_after(0, 10).unwrap();
    assert_eq!(seqs(&kept), [published[0].seq]);
    drop(subscription);
}

/// A copy of the file taken while the store is open is what a crash
/// (SIGKILL, power loss after the last fsync) leaves: not closed cleanly.
#[test]
fn a_crash_is_repaired_not_reported_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let store = open(dir.path(), KEEP_ALL);
    let mut written = append_n(&store, 50, 0);
    let next = store.bounds().unwrap().next;
    let mine = event(next, "mine", Some("mine"), 0);
    store.append(std::slice::from_ref(&mine)).unwrap();
    written.push(mine);
    std::fs::copy(
        dir.path().join(HISTORY_FILE),
        crashed.path().join(HISTORY_FILE),
    )
    .unwrap();
    drop(store);

    let store = open(crashed.path(), KEEP_ALL);
    assert!(store.report().repaired, "redb saw the unclean shutdown");
    assert_eq!(store.read_after(0, 100).unwrap(), written);
    assert_eq!(store.find_id("mine").unwrap().unwrap().seq, next);
    assert_eq!(store.stats().unwrap().bytes, frame_bytes(&written));
    check_after_drop(store, crashed.path());
}

/// A history with some events, closed; returns the file.
fn closed_history(dir: &Path) -> std::path::PathBuf {
    let store = open(dir, KEEP_ALL);
    for _ in 0..20 {
        append_n(&store, 50, 0);
    }
    store.file().to_path_buf()
}

fn assert_damaged(dir: &Path, file: &Path) {
    let err = DiskStore::open(dir, options(KEEP_ALL)).unwrap_err();
    assert!(matches!(err, OpenError::Damaged { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("move the file aside"), "{message}");
    assert!(message.contains("docs/storage.md"), "{message}");
    // Nothing was changed: the damaged file is still there, as it was.
    assert!(file.exists());
    let err = check(dir, 4 << 20).unwrap_err();
    assert!(matches!(err, OpenError::Damaged { .. }), "{err:?}");
}

#[test]
fn a_cut_file_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let file = closed_history(dir.path());
    let len = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    assert_damaged(dir.path(), &file);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len / 2);
}

#[test]
fn an_empty_file_is_damage_not_a_new_history() {
    let dir = tempfile::tempdir().unwrap();
    let file = closed_history(dir.path());
    std::fs::write(&file, b"").unwrap();
    assert_damaged(dir.path(), &file);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
}

#[test]
fn a_garbled_header_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let file = closed_history(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    for (i, b) in bytes.iter_mut().take(512).enumerate() {
        *b ^= 0x5a ^ (i as u8);
    }
    std::fs::write(&file, &bytes).unwrap();
    assert_damaged(dir.path(), &file);
}

#[test]
fn a_foreign_file_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(HISTORY_FILE);
    std::fs::write(&file, "this is not a history\n".repeat(1000)).unwrap();
    assert_damaged(dir.path(), &file);
}

#[test]
fn a_redb_file_that_is_not_a_history_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(HISTORY_FILE);
    let db = redb::Database::create(&file).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let def: redb::TableDefinition<'_, u64, u64> = redb::TableDefinition::new("other");
        tx.open_table(def).unwrap().insert(1, 2).unwrap();
    }
    tx.commit().unwrap();
    drop(db);
    assert_damaged(dir.path(), &file);
}

#[test]
fn a_newer_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = closed_history(dir.path());
    {
        let db = redb::Database::open(&file).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("meta");
            tx.open_table(meta).unwrap().insert("format", 3).unwrap();
        }
        tx.commit().unwrap();
    }
    let err = DiskStore::open(dir.path(), options(KEEP_ALL)).unwrap_err();
    assert!(matches!(err, OpenError::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("history format 3"), "{err}");
}

fn retained(seq: u64, topics: &[&str], data: &str) -> Arc<Event> {
    let update = Update {
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        data: data.into(),
        retain: true,
        ..Update::default()
    };
    Arc::new(Event::encode(seq, &update, 0).unwrap())
}

/// The retained updates as (topic, sequence number), sorted.
fn kept(store: &DiskStore) -> Vec<(String, u64)> {
    let mut kept: Vec<(String, u64)> = store
        .retained()
        .unwrap()
        .into_iter()
        .map(|(t, e)| (t.into(), e.seq))
        .collect();
    kept.sort();
    kept
}

#[test]
fn retained_updates_outlive_retention_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_events: Some(2),
        max_age: None,
        max_bytes: None,
    };
    let base = {
        let store = open(dir.path(), retention);
        let base = store.bounds().unwrap().next;
        store
            .append(&[
                retained(base, &["a", "b"], "1"),
                retained(base + 1, &["c"], "2"),
                event(base + 2, "plain", None, 0),
            ])
            .unwrap();
        // b moves on; a is cleared: event `base` is nobody's any more.
        store
            .append(&[
                retained(base + 3, &["b"], "3"),
                retained(base + 4, &["a"], ""),
            ])
            .unwrap();
        append_n(&store, 5, 0);
        assert!(store.enforce_retention(0).unwrap() >= 7);
        assert_eq!(store.read_after(0, 100).unwrap().len(), 2);
        assert_eq!(
            kept(&store),
            [("b".into(), base + 3), ("c".into(), base + 1)]
        );
        assert_eq!(store.stats().unwrap().retained_topics, 2);
        base
    };
    let store = open(dir.path(), retention);
    assert_eq!(store.report().stats.retained_topics, 2);
    let all = store.retained().unwrap();
    let c = all.iter().find(|(t, _)| &**t == "c").unwrap();
    assert_eq!(c.1.seq, base + 1);
    assert_eq!(c.1.retain, tidings_core::Retain::Keep);
    assert!(String::from_utf8_lossy(&c.1.frame).contains("data: 2"));
    // A batch refused whole leaves the retained updates as they were.
    let next = store.bounds().unwrap().next;
    assert!(
        store
            .append(&[retained(next, &["c"], "4"), retained(next - 5, &["d"], "5")])
            .is_err()
    );
    assert_eq!(
        kept(&store),
        [("b".into(), base + 3), ("c".into(), base + 1)]
    );
    let checked = check_after_drop(store, dir.path());
    assert_eq!(checked.retained_topics, 2);
}

#[test]
fn check_finds_a_broken_retained_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = {
        let store = open(dir.path(), KEEP_ALL);
        let base = store.bounds().unwrap().next;
        store.append(&[retained(base, &["a"], "1")]).unwrap();
        store.file().to_path_buf()
    };
    {
        let db = redb::Database::open(&file).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let topics: redb::TableDefinition<'_, &str, u64> =
                redb::TableDefinition::new("retained_topics");
            tx.open_table(topics).unwrap().insert("b", 1).unwrap();
        }
        tx.commit().unwrap();
    }
    let err = check(dir.path(), 4 << 20).unwrap_err();
    assert!(err.to_string().contains("retained update 1"), "{err}");
}

/// A history written before retained updates (format 1: no retained
/// tables) opens, is upgraded in place, and keeps everything.
#[test]
fn a_format_1_history_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = closed_history(dir.path());
    let before = {
        let store = open(dir.path(), KEEP_ALL);
        store.read_after(0, 2000).unwrap()
    };
    // Made format 1 again: what an older build wrote.
    {
        let db = redb::Database::open(&file).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("meta");
            tx.open_table(meta).unwrap().insert("format", 1).unwrap();
            let retained: redb::TableDefinition<'_, u64, &[u8]> =
                redb::TableDefinition::new("retained");
            let topics: redb::TableDefinition<'_, &str, u64> =
                redb::TableDefinition::new("retained_topics");
            assert!(tx.delete_table(retained).unwrap());
            assert!(tx.delete_table(topics).unwrap());
        }
        tx.commit().unwrap();
    }
    let store = open(dir.path(), KEEP_ALL);
    assert_eq!(store.read_after(0, 2000).unwrap(), before);
    assert!(store.retained().unwrap().is_empty());
    let next = store.bounds().unwrap().next;
    store.append(&[retained(next, &["t"], "x")]).unwrap();
    assert_eq!(kept(&store), [("t".into(), next)]);
    drop(store);
    {
        let db = redb::Database::open(&file).unwrap();
        let tx = redb::ReadableDatabase::begin_read(&db).unwrap();
        let meta: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("meta");
        let format = tx
            .open_table(meta)
            .unwrap()
            .get("format")
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(format, 2);
    }
    assert_eq!(check(dir.path(), 4 << 20).unwrap().retained_topics, 1);
}

#[test]
fn check_finds_a_broken_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), KEEP_ALL);
        let next = store.bounds().unwrap().next;
        store
            .append(&[event(next, "x", Some("indexed"), 0)])
            .unwrap();
    }
    check(dir.path(), 4 << 20).unwrap();
    {
        let db = redb::Database::open(dir.path().join(HISTORY_FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let ids: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("ids");
            tx.open_table(ids).unwrap().remove("indexed").unwrap();
        }
        tx.commit().unwrap();
    }
    let err = check(dir.path(), 4 << 20).unwrap_err();
    assert!(err.to_string().contains("indexed"), "{err}");
}

/// redb checks page checksums only when repairing or checking: a page
/// damaged behind its back is found by the check, and reading it is an
/// error, never a panic that would take the hub down.
#[test]
fn a_garbled_page_is_found_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let file = closed_history(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.windows(11).position(|w| w == b"data: event").unwrap();
    let page = at / 4096 * 4096;
    for b in bytes.iter_mut().skip(page).take(64) {
        *b ^= 0xa5;
    }
    std::fs::write(&file, &bytes).unwrap();
    match DiskStore::open(dir.path(), options(KEEP_ALL)) {
        Ok(store) => {
            let read = store.read_after(0, usize::MAX);
            let err = read.expect_err("the garbled page is read");
            assert!(err.message.contains("damaged"), "{err}");
        }
        Err(err) => assert!(matches!(err, OpenError::Damaged { .. }), "{err:?}"),
    }
    let err = check(dir.path(), 4 << 20).unwrap_err();
    assert!(matches!(err, OpenError::Damaged { .. }), "{err:?}");
}
