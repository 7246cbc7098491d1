//! Both engines when they fill up, on real servers: Redis at `maxmemory`
//! with `noeviction`, a JetStream stream at its `max_bytes` with
//! discard-new. A publish they refuse fails as `EngineFull` and is not in
//! the log; what was acknowledged before stays and is followed; once the
//! engine has room again, publishing works without reconnecting.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod engines;
#[path = "../../tidings-store/tests/tmpfs/mod.rs"]
mod tmpfs;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engines::{Engine, Kind};
use futures_util::StreamExt as _;
use tidings_cluster::connect;
use tidings_core::{Cluster, PublishError, Retention, Update};

const WAIT: Duration = Duration::from_secs(10);

/// The limit the tests fill: a few dozen big updates.
const ROOM: u64 = 600_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn big(n: usize) -> Update {
    Update {
        topics: vec!["big".into()],
        data: format!("{n} {}", "x".repeat(30_000)),
        ..Update::default()
    }
}

/// Publishes big updates until the engine refuses one; returns the places
/// of those it took.
async fn fill(cluster: &dyn Cluster) -> Vec<u64> {
    let mut acked = Vec::new();
    loop {
        assert!(acked.len() < 500, "the engine never filled up");
        match cluster.append(&[big(acked.len())], now_ms()).await {
            Ok(published) => acked.push(published[0].seq),
            Err(PublishError::EngineFull(message)) => {
                assert!(!message.is_empty());
                return acked;
            }
            Err(other) => panic!("not a full engine: {other:?}"),
        }
    }
}

/// Every entry followed from the start is one of `acked`, in order.
async fn follows_exactly(cluster: &dyn Cluster, acked: &[u64]) {
    let mut log = cluster.follow(0);
    let mut seen = Vec::new();
    while seen.len() < acked.len() {
        match tokio::time::timeout(WAIT, log.next()).await.unwrap() {
            Some(Ok(entry)) => seen.push(entry.seq),
            Some(Err(err)) => panic!("{err}"),
            None => panic!("the log ended"),
        }
    }
    assert_eq!(seen, acked);
    if let Ok(Some(Ok(entry))) = tokio::time::timeout(Duration::from_millis(500), log.next()).await
    {
        panic!("a refused update is in the log: {entry:?}");
    }
}

async fn full_then_room_again(kind: Kind) {
    let engine = Engine::start(kind).await;
    let retention = Retention {
        max_events: None,
        max_age: None,
        max_bytes: Some(ROOM),
    };
    if kind == Kind::Nats {
        engine.create_discard_new_stream(ROOM).await;
    }
    let cluster: Arc<dyn Cluster> = connect(&engine.url(), retention).await.unwrap();
    if kind == Kind::Redis {
        // Loads the script before memory runs out.
        cluster.append(&[big(0)], now_ms()).await.unwrap();
        assert_eq!(
            engine
                .redis(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
                .await,
            "+OK"
        );
        let limit = engine.redis_used_memory().await + ROOM;
        let limit = limit.to_string();
        assert_eq!(
            engine.redis(&["CONFIG", "SET", "maxmemory", &limit]).await,
            "+OK"
        );
    }
    let mut acked = if kind == Kind::Redis {
        let bounds = cluster.bounds().await.unwrap();
        vec![bounds.next - 1]
    } else {
        Vec::new()
    };
    acked.extend(fill(&*cluster).await);
    assert!(acked.len() >= 5, "{acked:?}");
    // Still refused, and reads still work.
    assert!(matches!(
        cluster.append(&[big(999)], now_ms()).await,
        Err(PublishError::EngineFull(_))
    ));
    follows_exactly(&*cluster, &acked).await;

    // Room again.
    match kind {
        Kind::Redis => assert_eq!(
            engine.redis(&["CONFIG", "SET", "maxmemory", "0"]).await,
            "+OK"
        ),
        Kind::Nats => engine.set_stream_max_bytes(ROOM * 100).await,
    }
    let published = cluster.append(&[big(1000)], now_ms()).await.unwrap();
    assert!(published[0].seq > *acked.last().unwrap());
    acked.push(published[0].seq);
    follows_exactly(&*cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_at_maxmemory_refuses_as_full_and_takes_writes_again() {
    full_then_room_again(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_jetstream_stream_refuses_as_full_and_takes_writes_again() {
    full_then_room_again(Kind::Nats).await;
}

/// Redis whose append-only file is on a disk that fills up refuses writes
/// (`MISCONF … No space left on device`): a full engine too; once there
/// is room, Redis writes its file again by itself and takes publishes.
/// (With `appendfsync always` Redis exits on such an error instead: the
/// hubs then see an engine outage, 503.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_on_a_full_disk_refuses_as_full_and_takes_writes_again() {
    let Some(fs) = tmpfs::Tmpfs::mount("4m") else {
        return;
    };
    let engine = Engine::start_in(Kind::Redis, fs.path().join("redis")).await;
    assert_eq!(
        engine
            .redis(&["CONFIG", "SET", "appendfsync", "everysec"])
            .await,
        "+OK"
    );
    let cluster: Arc<dyn Cluster> = connect(
        &engine.url(),
        Retention {
            max_events: None,
            max_age: None,
            max_bytes: None,
        },
    )
    .await
    .unwrap();
    let acked = fill(&*cluster).await;
    assert!(acked.len() >= 5, "{acked:?}");
    follows_exactly(&*cluster, &acked).await;
    fs.resize("64m");
    let deadline = std::time::Instant::now() + WAIT;
    let published = loop {
        match cluster.append(&[big(1000)], now_ms()).await {
            Ok(published) => break published,
            Err(PublishError::EngineFull(_)) => {
                assert!(std::time::Instant::now() < deadline, "still full");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    };
    let mut all = acked;
    all.push(published[0].seq);
    follows_exactly(&*cluster, &all).await;
    drop(engine);
}
