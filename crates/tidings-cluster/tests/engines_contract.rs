//! Both engines against the `Cluster` contract, on real servers: places,
//! publisher ids, concurrent hubs, outages and retention.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod engines;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engines::{Engine, Kind};
use futures_util::StreamExt as _;
use tidings_cluster::connect;
use tidings_core::{Cluster, Entry, PublishError, Published, Retention, Update};

const WAIT: Duration = Duration::from_secs(10);

fn unlimited() -> Retention {
    Retention {
        max_events: None,
        max_age: None,
        max_bytes: None,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn update(topic: &str, data: &str, id: Option<&str>) -> Update {
    Update {
        topics: vec![topic.into()],
        data: data.into(),
        id: id.map(Into::into),
        ..Update::default()
    }
}

async fn cluster(engine: &Engine, retention: Retention) -> Arc<dyn Cluster> {
    // RUST_LOG=tidings_cluster=debug shows what the engines do.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    connect(&engine.url(), retention).await.unwrap()
}

/// `n` entries from `log`, each within [`WAIT`], skipping reported outages.
async fn take(
    log: &mut futures_util::stream::BoxStream<'static, Result<Entry, tidings_core::ClusterError>>,
    n: usize,
) -> Vec<Entry> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(WAIT, log.next()).await {
            Ok(Some(Ok(entry))) => out.push(entry),
            Ok(Some(Err(e))) => tracing::info!(error = %e, "the log reports an outage"),
            Ok(None) => panic!("the log ended"),
            Err(_) => panic!("only {} of {n} entries came: {out:?}", out.len()),
        }
    }
    out
}

/// Asserts that nothing more arrives for a while.
async fn quiet(
    log: &mut futures_util::stream::BoxStream<'static, Result<Entry, tidings_core::ClusterError>>,
) {
    if let Ok(Some(Ok(entry))) = tokio::time::timeout(Duration::from_millis(500), log.next()).await
    {
        panic!("unexpected entry {entry:?}");
    }
}

macro_rules! for_both {
    ($($name:ident),* $(,)?) => {
        mod redis {
            $(#[tokio::test] async fn $name() { super::$name(super::Kind::Redis).await })*
        }
        mod nats {
            $(#[tokio::test] async fn $name() { super::$name(super::Kind::Nats).await })*
        }
    };
}

for_both!(
    places_follow_and_bounds,
    publisher_ids,
    hubs_share_one_order,
    racing_retries_append_once,
    outage_and_recovery,
    retention_by_count,
    retention_by_age,
    followers_keep_up,
    retained_updates,
);

async fn places_follow_and_bounds(kind: Kind) {
    let engine = Engine::start(kind).await;
    let c = cluster(&engine, unlimited()).await;
    let empty = c.bounds().await.unwrap();
    assert_eq!(empty.first, empty.next, "nothing retained yet");
    let mut log = c.follow(empty.first.saturating_sub(1));

    let batch = vec![
        update("a", "1", None),
        update("b", "2", None),
        update("c", "3", None),
    ];
    let time = now_ms();
    let published = c.append(&batch, time).await.unwrap();
    let seqs: Vec<u64> = published.iter().map(|p| p.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for p in &published {
        assert_eq!(p.id, format!("urn:tidings:{}", p.seq));
        assert!(!p.duplicate);
    }
    // Places start from the clock, in microseconds (`now_ms` drops the
    // microseconds of the current millisecond: allow them).
    let now_us = u128::from(now_ms()) * 1000 + 999;
    let first = u128::from(seqs[0]);
    assert!(
        first <= now_us && first + 120_000_000 > now_us,
        "{first} vs {now_us}"
    );

    let entries = take(&mut log, 3).await;
    for ((entry, sent), p) in entries.iter().zip(&batch).zip(&published) {
        assert_eq!(entry.seq, p.seq);
        assert_eq!(&entry.update, sent);
        assert_eq!(entry.time_ms, time);
    }
    let bounds = c.bounds().await.unwrap();
    assert_eq!(bounds.first, seqs[0]);
    assert_eq!(bounds.next, seqs[2] + 1);

    // From the middle, and from another connection.
    let other = cluster(&engine, unlimited()).await;
    let mut middle = other.follow(seqs[0]);
    let tail = take(&mut middle, 2).await;
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[1..]);
    let more = c.append(&[update("d", "4", None)], time).await.unwrap();
    assert!(more[0].seq > seqs[2]);
    assert_eq!(take(&mut middle, 1).await[0].seq, more[0].seq);
    assert_eq!(take(&mut log, 1).await[0].seq, more[0].seq);
    quiet(&mut log).await;
}

async fn publisher_ids(kind: Kind) {
    let engine = Engine::start(kind).await;
    let c = cluster(&engine, unlimited()).await;
    let mut log = c.follow(0);
    let t = now_ms();
    let long_id = "l".repeat(2000);

    let first = c
        .append(
            &[
                update("t", "a", Some("x")),
                update("t", "b", None),
                update("t", "c", Some(&long_id)),
            ],
            t,
        )
        .await
        .unwrap();
    assert_eq!(first[0].id, "x");
    assert_eq!(first[2].id, long_id);
    assert!(first.iter().all(|p| !p.duplicate));
    assert_eq!(take(&mut log, 3).await.len(), 3);

    // A retry: the old place, nothing appended.
    let retry = c
        .append(
            &[
                update("t", "a", Some("x")),
                update("t", "c", Some(&long_id)),
            ],
            t + 5,
        )
        .await
        .unwrap();
    assert_eq!(
        retry,
        [
            Published {
                id: "x".into(),
                seq: first[0].seq,
                duplicate: true
            },
            Published {
                id: long_id.clone(),
                seq: first[2].seq,
                duplicate: true
            },
        ]
    );
    assert_eq!(c.find_id("x").await.unwrap(), Some(first[0].seq));
    assert_eq!(c.find_id(&long_id).await.unwrap(), Some(first[2].seq));
    assert_eq!(c.find_id("nobody").await.unwrap(), None);

    // Different content under a known id: refused, with nothing of its
    // publish appended.
    for batch in [
        vec![update("t", "other", Some("x"))],
        vec![
            update("t", "new", Some("y")),
            update("t", "other", Some("x")),
        ],
        vec![update("u", "a", Some("x"))],
        vec![update("t", "d", Some("z")), update("t", "e", Some("z"))],
    ] {
        match c.append(&batch, t).await {
            Err(PublishError::Conflict { id }) => assert!(id == "x" || id == "z", "{id}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(c.find_id("y").await.unwrap(), None);
    assert_eq!(c.find_id("z").await.unwrap(), None);

    // The same id twice in one publish: the second is a retry of the first.
    let twice = c
        .append(
            &[update("t", "w", Some("w")), update("t", "w", Some("w"))],
            t,
        )
        .await
        .unwrap();
    assert_eq!(twice[0].seq, twice[1].seq);
    assert!(!twice[0].duplicate && twice[1].duplicate);
    let entries = take(&mut log, 1).await;
    assert_eq!(entries[0].seq, twice[0].seq);
    assert_eq!(entries[0].update.id.as_deref(), Some("w"));
    quiet(&mut log).await;
}

async fn hubs_share_one_order(kind: Kind) {
    let engine = Engine::start(kind).await;
    let hubs = [
        cluster(&engine, unlimited()).await,
        cluster(&engine, unlimited()).await,
        cluster(&engine, unlimited()).await,
    ];
    let mut logs: Vec<_> = hubs.iter().map(|h| h.follow(0)).collect();
    let mut tasks = Vec::new();
    for writer in 0..6usize {
        let hub = Arc::clone(&hubs[writer % 3]);
        tasks.push(tokio::spawn(async move {
            let mut published = Vec::new();
            for i in 0..40usize {
                let size = 1 + (writer + i) % 3;
                let batch: Vec<Update> = (0..size)
                    .map(|k| update("t", &format!("{writer}-{i}-{k}"), None))
                    .collect();
                published.extend(hub.append(&batch, now_ms()).await.unwrap());
            }
            published
        }));
    }
    let mut all: Vec<u64> = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap().into_iter().map(|p| p.seq));
    }
    all.sort_unstable();
    let total = all.len();
    all.dedup();
    assert_eq!(all.len(), total, "every update has its own place");
    let mut seen = Vec::new();
    for log in &mut logs {
        let entries = take(log, total).await;
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, all, "every hub reads every place, in order");
        seen.push(entries);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);
}

async fn racing_retries_append_once(kind: Kind) {
    let engine = Engine::start(kind).await;
    let hubs = [
        cluster(&engine, unlimited()).await,
        cluster(&engine, unlimited()).await,
    ];
    let mut log = hubs[0].follow(0);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let hub = Arc::clone(&hubs[i % 2]);
        tasks.push(tokio::spawn(async move {
            hub.append(&[update("t", "same", Some("race"))], now_ms())
                .await
                .unwrap()
                .remove(0)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|p| !p.duplicate).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(|p| p.seq == results[0].seq));
    assert_eq!(take(&mut log, 1).await[0].seq, results[0].seq);
    quiet(&mut log).await;
}

async fn outage_and_recovery(kind: Kind) {
    let mut engine = Engine::start(kind).await;
    let c = cluster(&engine, unlimited()).await;
    let mut log = c.follow(0);
    let before = c
        .append(&[update("t", "before", Some("b"))], now_ms())
        .await
        .unwrap();
    assert_eq!(take(&mut log, 1).await[0].seq, before[0].seq);

    engine.kill().await;
    let started = Instant::now();
    // Not acknowledged: it may still have been appended, if it was on its
    // way when the engine went (NATS's client sends what it had queued
    // once it reconnects). A retry with its publisher id settles it.
    let down = [update("t", "down", Some("down"))];
    match c.append(&down, now_ms()).await {
        Err(PublishError::Unavailable(message)) => assert!(!message.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(c.bounds().await.is_err());

    // The follower keeps trying while the engine is down...
    let follower = tokio::spawn(async move {
        let entries = take(&mut log, 3).await;
        (entries, log)
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.restart().await;

    // ...and publishing works again once the client has reconnected.
    let deadline = Instant::now() + WAIT;
    let retried = loop {
        match c.append(&down, now_ms()).await {
            Ok(p) => break p,
            Err(PublishError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{err:?}"),
        }
    };
    assert!(retried[0].seq > before[0].seq, "places keep growing");
    let after = c
        .append(&[update("t", "after", None)], now_ms())
        .await
        .unwrap();
    let again = c
        .append(&[update("t", "before", Some("b"))], now_ms())
        .await
        .unwrap();
    assert_eq!(again[0].seq, before[0].seq, "ids survive the restart");
    assert!(again[0].duplicate);
    let last = c
        .append(&[update("t", "last", None)], now_ms())
        .await
        .unwrap();
    let (entries, mut log) = follower.await.unwrap();
    let got: Vec<(u64, &str)> = entries
        .iter()
        .map(|e| (e.seq, e.update.data.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (retried[0].seq, "down"),
            (after[0].seq, "after"),
            (last[0].seq, "last")
        ]
    );
    quiet(&mut log).await;
}

async fn retention_by_count(kind: Kind) {
    let engine = Engine::start(kind).await;
    let retention = Retention {
        max_events: Some(10),
        ..unlimited()
    };
    let c = cluster(&engine, retention).await;
    let first = c
        .append(&[update("t", "old", Some("old"))], now_ms())
        .await
        .unwrap();
    let mut last = 0;
    for i in 0..30 {
        let batch: Vec<Update> = (0..10)
            .map(|k| update("t", &format!("{i}-{k}"), None))
            .collect();
        last = c
            .append(&batch, now_ms())
            .await
            .unwrap()
            .last()
            .unwrap()
            .seq;
    }
    let bounds = c.bounds().await.unwrap();
    assert_eq!(bounds.next, last + 1);
    assert!(bounds.first > first[0].seq, "trimmed: {bounds:?}");
    // Redis trims approximately (whole macro nodes): it keeps at least 10.
    let kept = bounds.next - bounds.first;
    match kind {
        Kind::Nats => assert_eq!(kept, 10),
        Kind::Redis => assert!((10..=300).contains(&kept), "{kept}"),
    }
    assert_eq!(
        c.find_id("old").await.unwrap(),
        None,
        "ids go with their entries"
    );
    // The id may be used again, for anything, once its entry is gone.
    let reused = c
        .append(&[update("t", "new", Some("old"))], now_ms())
        .await
        .unwrap();
    assert!(!reused[0].duplicate);
    // Following from before the oldest entry starts at the oldest.
    let mut log = c.follow(0);
    let bounds = c.bounds().await.unwrap();
    assert_eq!(take(&mut log, 1).await[0].seq, bounds.first);
}

async fn retention_by_age(kind: Kind) {
    let engine = Engine::start(kind).await;
    let retention = Retention {
        max_age: Some(Duration::from_secs(1)),
        ..unlimited()
    };
    let c = cluster(&engine, retention).await;
    // Redis compares the publishing hub's time; NATS its own storage time.
    let old_time = match kind {
        Kind::Redis => now_ms() - 60_000,
        Kind::Nats => now_ms(),
    };
    c.append(&[update("t", "old", Some("old"))], old_time)
        .await
        .unwrap();
    if kind == Kind::Nats {
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let fresh = c
        .append(&[update("t", "fresh", None)], now_ms())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let bounds = c.bounds().await.unwrap();
        if bounds.first == fresh[0].seq {
            break;
        }
        assert!(Instant::now() < deadline, "not trimmed: {bounds:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.find_id("old").await.unwrap(), None);
}

/// Entries reach a follower promptly while publishing goes on (a pull that
/// stops delivering until it expires would show as seconds here).
async fn followers_keep_up(kind: Kind) {
    let engine = Engine::start(kind).await;
    let c = cluster(&engine, unlimited()).await;
    let mut log = c.follow(0);
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = Arc::clone(&c);
    let publishing = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        for i in 0..1200 {
            ticker.tick().await;
            let p = writer
                .append(&[update("t", &i.to_string(), None)], now_ms())
                .await
                .unwrap();
            sent_tx.send((p[0].seq, Instant::now())).unwrap();
        }
    });
    let mut worst = Duration::ZERO;
    for _ in 0..1200 {
        let entry = take(&mut log, 1).await.remove(0);
        let (seq, sent) = sent_rx.recv().await.unwrap();
        assert_eq!(entry.seq, seq);
        worst = worst.max(sent.elapsed());
    }
    publishing.await.unwrap();
    // Not a speed target: a follower that stalls until a pull expires (5 s)
    // fails this; a noisy machine's scheduling delays do not.
    assert!(worst < Duration::from_secs(3), "an entry took {worst:?}");
}

fn retained_update(topics: &[&str], data: &str, id: Option<&str>) -> Update {
    Update {
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        data: data.into(),
        id: id.map(Into::into),
        retain: true,
        ..Update::default()
    }
}

/// (topic, place, data) of every retained update the engine keeps, sorted.
async fn retained_of(c: &Arc<dyn Cluster>) -> Vec<(String, u64, String)> {
    let mut got: Vec<(String, u64, String)> = c
        .retained()
        .await
        .unwrap()
        .into_iter()
        .map(|(topic, entry)| {
            assert!(entry.update.retain);
            assert!(entry.update.topics.contains(&topic), "{topic}: {entry:?}");
            (topic, entry.seq, entry.update.data)
        })
        .collect();
    got.sort();
    got
}

/// The engine keeps each topic's newest retained update, clears it on an
/// empty one, keeps it when the log is trimmed, gets the same from every
/// connection, and an older write never replaces a newer one.
async fn retained_updates(kind: Kind) {
    let engine = Engine::start(kind).await;
    let retention = Retention {
        max_events: Some(10),
        ..unlimited()
    };
    let c = cluster(&engine, retention).await;
    assert!(c.retained().await.unwrap().is_empty());
    let first = c
        .append(
            &[
                retained_update(&["a", "b"], "1", Some("r1")),
                update("a", "plain", None),
                retained_update(&["c"], "2", None),
            ],
            now_ms(),
        )
        .await
        .unwrap();
    let other = cluster(&engine, retention).await;
    let second = other
        .append(
            &[
                retained_update(&["b"], "3", None),
                retained_update(&["c"], "", None),
            ],
            now_ms(),
        )
        .await
        .unwrap();
    let want = vec![
        ("a".to_owned(), first[0].seq, "1".to_owned()),
        ("b".to_owned(), second[0].seq, "3".to_owned()),
    ];
    assert_eq!(retained_of(&c).await, want);
    // A retry changes nothing.
    let retry = c
        .append(&[retained_update(&["a", "b"], "1", Some("r1"))], now_ms())
        .await
        .unwrap();
    assert!(retry[0].duplicate);
    assert_eq!(retained_of(&other).await, want);
    // The log is trimmed far past them: they stay. (Redis trims whole
    // macro nodes of 100 entries.)
    for i in 0..300 {
        c.append(&[update("noise", &i.to_string(), None)], now_ms())
            .await
            .unwrap();
    }
    assert!(c.bounds().await.unwrap().first > second[1].seq, "trimmed");
    assert_eq!(retained_of(&c).await, want);
    // Many topics, from two connections at once, each keeping its newest.
    let writers = [Arc::clone(&c), Arc::clone(&other)].map(|c| {
        tokio::spawn(async move {
            for i in 0..20 {
                let topic = format!("many/{}", i % 5);
                c.append(
                    &[retained_update(&[&topic], &i.to_string(), None)],
                    now_ms(),
                )
                .await
                .unwrap();
            }
        })
    });
    for w in writers {
        w.await.unwrap();
    }
    let got = retained_of(&c).await;
    let many: Vec<_> = got
        .iter()
        .filter(|(t, ..)| t.starts_with("many/"))
        .collect();
    assert_eq!(many.len(), 5);
    let mut log = c.follow(c.bounds().await.unwrap().first.saturating_sub(1));
    let bounds = c.bounds().await.unwrap();
    let entries = take(
        &mut log,
        usize::try_from(bounds.next - bounds.first).unwrap(),
    )
    .await;
    for (topic, seq, _) in many {
        let newest = entries
            .iter()
            .filter(|e| e.update.topics[0] == *topic)
            .map(|e| e.seq)
            .max()
            .unwrap();
        assert_eq!(*seq, newest, "{topic}: the newest in the log");
    }
}
