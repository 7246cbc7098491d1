//! Active subscriptions across a cluster (`--subscriptions --cluster`), on
//! a real `redis-server` and a real `nats-server -js` started by the test:
//! subscription events reach watchers on every hub, every hub's API lists
//! every hub's subscriptions, a hub killed with SIGKILL has its
//! subscriptions reported inactive (once) within `--node-ttl` and gone
//! from every API, and a hub that stops says goodbye at once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cluster_support;
mod retained_support;
mod subscriptions_support;
mod support;

use std::time::{Duration, Instant};

use cluster_support::{Engine, Kind, node};
use subscriptions_support::*;

/// `--node-ttl` of these tests.
const TTL: Duration = Duration::from_secs(4);

async fn cluster_wide(kind: Kind) {
    let engine = Engine::start(kind).await;
    let args = ["--jwt-key", SECRET, "--subscriptions", "--node-ttl", "4"];
    let mut a = node(&engine, &args).await;
    let b = node(&engine, &args).await;
    let mut c = node(&engine, &args).await;

    let mut watcher = watch(&b, None).await;
    let (_, own) = next_doc(&mut watcher).await;
    let own = own["subscriber"].as_str().unwrap().to_owned();

    // A subscriber on A: the watcher on B sees it, every hub lists it.
    let _on_a = open(&a, &["t/1"], None, None).await;
    let first = next_new_subscriber(&mut watcher, &[&own]).await;
    assert_eq!(
        (first["topic"].as_str(), first["active"].as_bool()),
        (Some("t/1"), Some(true))
    );
    let first_id = first["id"].as_str().unwrap().to_owned();
    let first_subscriber = first["subscriber"].as_str().unwrap().to_owned();
    for hub in [&a, &b, &c] {
        until_listed(hub, Duration::from_secs(5), |s| s.contains_key(&first_id)).await;
    }

    // Two subscriptions of one subscriber on C.
    let _on_c = open(&c, &["t/2", "t/3"], None, None).await;
    let doc = next_new_subscriber(&mut watcher, &[&own, &first_subscriber]).await;
    let victim = doc["subscriber"].as_str().unwrap().to_owned();
    let mut victims = vec![doc["id"].as_str().unwrap().to_owned()];
    victims.extend(
        docs_of(&mut watcher, &victim, 1)
            .await
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned()),
    );
    until_listed(&a, Duration::from_secs(5), |s| {
        victims.iter().all(|v| s.contains_key(v)) && s.contains_key(&first_id)
    })
    .await;

    // C dies without a goodbye.
    c.child.start_kill().unwrap();
    c.child.wait().await.unwrap();
    let killed = Instant::now();
    let gone = docs_of(&mut watcher, &victim, 2).await;
    let took = killed.elapsed();
    assert!(took < TTL, "reported inactive after {took:?}");
    let mut gone_ids: Vec<String> = gone
        .iter()
        .map(|d| {
            assert_eq!(d["active"], false, "{d}");
            d["id"].as_str().unwrap().to_owned()
        })
        .collect();
    gone_ids.sort();
    victims.sort();
    assert_eq!(gone_ids, victims);
    for hub in [&a, &b] {
        let (_, subs) = list(hub).await;
        assert!(victims.iter().all(|v| !subs.contains_key(v)), "{subs:#?}");
        assert!(subs.contains_key(&first_id));
    }
    // Reported once, though two hubs were there to do it.
    watcher.no_event_within(TTL).await;

    // A stops: its goodbye comes at once.
    let stopping = Instant::now();
    a.terminate().await;
    let bye = docs_of(&mut watcher, &first_subscriber, 1).await;
    assert_eq!(bye[0]["active"], false);
    assert_eq!(bye[0]["id"], first_id.as_str());
    assert!(stopping.elapsed() < Duration::from_secs(3));
    until_listed(&b, Duration::from_secs(2), |s| !s.contains_key(&first_id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_wide_subscriptions_and_dead_hubs() {
    cluster_wide(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cluster_wide_subscriptions_and_dead_hubs() {
    cluster_wide(Kind::Nats).await;
}
