//! The cluster scenarios, run against each engine by `cluster_redis.rs`
//! and `cluster_nats.rs`: real `tidings serve --cluster` processes on free
//! loopback ports, sharing a real `redis-server` or `nats-server` that the
//! test starts (and stops, and kills) itself.

#![allow(dead_code, unreachable_pub)]

#[path = "../../crates/tidings-cluster/tests/engines/mod.rs"]
pub mod engines;
pub mod retained;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

pub use engines::{Engine, Kind};
use tidings_codec::{Item, MessageEvent};

use crate::support::{Stream, TestHub, WAIT, encode};

const ALL: &str = "/.well-known/mercure?topic=%2A";

/// A tiny deterministic generator: the seed is in every failure message.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Self(nanos | 1)
    }

    pub fn seed(&self) -> u64 {
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    pub fn pick(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

/// A hub of the cluster on `engine`, its history in memory, heartbeats
/// every second (so that idle streams show they are alive).
pub async fn node(engine: &Engine, extra: &[&str]) -> TestHub {
    let url = engine.url();
    let mut args = vec!["--cluster", &url, "--memory", "--heartbeat", "1"];
    args.extend_from_slice(extra);
    TestHub::start(&args).await
}

/// Publishes `data` on `topic` (with a publisher `id` if given); returns
/// the status and body.
pub async fn publish(hub: &TestHub, topic: &str, data: &str, id: Option<&str>) -> (u16, String) {
    let mut body = format!("topic={}&data={}", encode(topic), encode(data));
    if let Some(id) = id {
        body.push_str(&format!("&id={}", encode(id)));
    }
    let response = hub.publish_form(&body).await;
    (response.status, response.text())
}

/// Subscribes to every topic on `hub`, resuming after `last` if given.
pub async fn subscribe(hub: &TestHub, last: Option<&str>) -> Stream {
    let headers: Vec<(&str, &str)> = last.map(|id| ("Last-Event-ID", id)).into_iter().collect();
    let stream = hub.subscribe(ALL, &headers).await;
    assert_eq!(stream.status, 200);
    stream
}

/// Reads events until `want` says it has enough or the stream ends;
/// returns whether it ended. Heartbeats keep a stream busy, so this is
/// bounded by a deadline of its own.
pub async fn read_until(
    stream: &mut Stream,
    out: &mut Vec<MessageEvent>,
    mut want: impl FnMut(&[MessageEvent]) -> bool,
) -> bool {
    let deadline = Instant::now() + 3 * WAIT;
    while !want(out) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next_event()).await {
            Ok(Some(event)) => out.push(event),
            Ok(None) => return true,
            Err(_) => panic!(
                "events stopped coming after {} (the last: {:?})",
                out.len(),
                out.last()
            ),
        }
    }
    false
}

/// Asserts that `events` has no id twice.
fn assert_unique(events: &[String], who: &str) {
    let mut seen = HashSet::new();
    for id in events {
        assert!(seen.insert(id), "{who}: {id} delivered twice");
    }
}

/// The "must show" test: three hubs, random publishers on random hubs,
/// subscribers hopping between hubs with `Last-Event-ID`, a publisher-id
/// retry on another hub and a conflicting reuse. Every subscriber sees
/// every event exactly once, in the same order as every other, with the
/// ids the publishers were given.
pub async fn three_nodes_hopping(kind: Kind) {
    let started = Instant::now();
    let engine = Engine::start(kind).await;
    let nodes = std::sync::Arc::new(vec![
        node(&engine, &[]).await,
        node(&engine, &[]).await,
        node(&engine, &[]).await,
    ]);
    let seed = Rng::new().seed();

    // Subscribers first, live from the start, each on a random hub.
    const SUBSCRIBERS: usize = 6;
    let (total_tx, total_rx) = tokio::sync::watch::channel(usize::MAX);
    let mut subscribers = Vec::new();
    for s in 0..SUBSCRIBERS {
        let nodes = std::sync::Arc::clone(&nodes);
        let mut total = total_rx.clone();
        let mut rng = Rng(seed.wrapping_add(s as u64 + 1) | 1);
        let mut at = rng.pick(3);
        let mut stream = subscribe(&nodes[at], None).await;
        subscribers.push(tokio::spawn(async move {
            let mut events: Vec<MessageEvent> = Vec::new();
            let mut hops = 0;
            let deadline = Instant::now() + Duration::from_secs(40);
            let mut hop_at = 3 + rng.pick(25);
            loop {
                // Done once told the total and holding it all.
                if events.len() >= *total.borrow_and_update() {
                    return (events, hops);
                }
                if events.len() >= hop_at {
                    // Hop: reconnect to another hub with the last id seen.
                    drop(stream);
                    at = (at + 1 + rng.pick(2)) % 3;
                    hops += 1;
                    hop_at = events.len() + 3 + rng.pick(25);
                    let last = events.last().map(|e| e.last_event_id.clone());
                    stream = subscribe(&nodes[at], last.as_deref()).await;
                    assert_eq!(
                        stream.header("last-event-id"),
                        last.as_deref(),
                        "subscriber {s} (seed {seed}): resumed exactly"
                    );
                }
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::select! {
                    event = stream.next_event() => match event {
                        Some(event) => events.push(event),
                        None => panic!("subscriber {s} (seed {seed}): stream ended"),
                    },
                    _ = total.changed() => {}
                    () = tokio::time::sleep(left) => panic!(
                        "subscriber {s} (seed {seed}): {} events of {}, the last {:?}",
                        events.len(),
                        *total.borrow(),
                        events.last()
                    ),
                }
            }
        }));
    }

    // Random publishers on random hubs, some with their own ids.
    const PUBLISHERS: usize = 4;
    const EACH: usize = 40;
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let nodes = std::sync::Arc::clone(&nodes);
        let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(p as u64) | 1);
        publishers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..EACH {
                let hub = &nodes[rng.pick(3)];
                let topic = format!("https://example.com/t/{}", rng.pick(5));
                let id = (rng.pick(4) == 0).then(|| format!("pub-{p}-{i}"));
                let (status, body) =
                    publish(hub, &topic, &format!("p{p}-{i}"), id.as_deref()).await;
                assert_eq!(status, 200, "publisher {p} (seed {seed}): {body}");
                if let Some(id) = &id {
                    assert_eq!(&body, id);
                } else {
                    assert!(body.starts_with("urn:tidings:"), "{body}");
                }
                acked.push(body);
            }
            acked
        }));
    }
    // A retry of a publisher id on another hub: 200, the same id, no second
    // delivery; a different update under it: 409 with a JSON error.
    let (status, id) = publish(&nodes[0], "retries", "once", Some("retry-1")).await;
    assert_eq!((status, id.as_str()), (200, "retry-1"));
    let (status, again) = publish(&nodes[2], "retries", "once", Some("retry-1")).await;
    assert_eq!((status, again.as_str()), (200, "retry-1"));
    let conflict = nodes[1]
        .publish_form("topic=retries&data=other&id=retry-1")
        .await;
    assert_eq!(conflict.status, 409, "{}", conflict.text());
    assert!(conflict.error().contains("retry-1"));

    let mut acked_by = Vec::new();
    for publisher in publishers {
        acked_by.push(publisher.await.unwrap());
    }
    let mut expected: HashSet<String> = acked_by.iter().flatten().cloned().collect();
    expected.insert("retry-1".to_owned());
    assert_eq!(
        expected.len(),
        PUBLISHERS * EACH + 1,
        "every id is distinct"
    );
    total_tx.send_replace(expected.len());

    let mut orders = Vec::new();
    let mut all_hops = 0;
    for (s, subscriber) in subscribers.into_iter().enumerate() {
        let (events, hops) = subscriber.await.unwrap();
        all_hops += hops;
        let ids: Vec<String> = events.iter().map(|e| e.last_event_id.clone()).collect();
        assert_unique(&ids, &format!("subscriber {s} (seed {seed})"));
        let got: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(got, expected, "subscriber {s} (seed {seed}): every event");
        // Each publisher's events in the order it was acknowledged.
        let place: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        for acked in &acked_by {
            let places: Vec<usize> = acked.iter().map(|id| place[id.as_str()]).collect();
            assert!(
                places.windows(2).all(|w| w[0] < w[1]),
                "subscriber {s} (seed {seed}): a publisher's events out of order"
            );
        }
        orders.push(ids);
    }
    for (s, order) in orders.iter().enumerate().skip(1) {
        assert_eq!(
            order, &orders[0],
            "subscriber {s} (seed {seed}): same order"
        );
    }
    assert!(
        all_hops >= SUBSCRIBERS * 3,
        "subscribers hopped ({all_hops})"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// The engine dies mid-stream (SIGKILL; its data is on disk): publishes
/// fail fast with 503 and a JSON error, subscribers stay connected and
/// keep getting heartbeats; the engine comes back on the same port:
/// publishing works again and every subscriber gets everything, once.
pub async fn engine_outage(kind: Kind) {
    let mut engine = Engine::start(kind).await;
    let nodes = [node(&engine, &[]).await, node(&engine, &[]).await];
    let mut streams = vec![
        subscribe(&nodes[0], None).await,
        subscribe(&nodes[1], None).await,
        subscribe(&nodes[1], None).await,
    ];
    let mut published = Vec::new();
    for i in 0..10 {
        let (status, id) = publish(&nodes[i % 2], "t", &format!("before {i}"), None).await;
        assert_eq!(status, 200, "{id}");
        published.push(id);
    }
    let mut seen = vec![Vec::new(); streams.len()];
    for (stream, seen) in streams.iter_mut().zip(&mut seen) {
        read_until(stream, seen, |e| e.len() >= 10).await;
    }

    engine.kill().await;
    // Not acknowledged, so their publisher retries them (with their ids, so
    // that one that reached the engine anyway is not appended twice).
    let mut unacknowledged = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let id = format!("during-{i}");
        let started = Instant::now();
        let response = node
            .publish_form(&format!("topic=t&data=during+{i}&id={id}"))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "503 in {:?}",
            started.elapsed()
        );
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json"))
        );
        let error = response.error();
        assert!(error.contains("cluster engine"), "{error}");
        unacknowledged.push((i, id));
    }
    // Subscribers stay connected: heartbeats keep coming.
    for stream in &mut streams {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            assert!(
                Instant::now() < deadline,
                "no heartbeat while the engine is down"
            );
            match stream.next_item().await {
                Some(Item::Comment(_)) => break,
                Some(Item::Event(e)) => panic!("unexpected event {e:?}"),
                Some(Item::Retry(_)) => {}
                None => panic!("the stream ended while the engine was down"),
            }
        }
    }

    // Not ready while the engine is away, alive all the same.
    for node in &nodes {
        let ready = node.request("GET", "/readyz", &[], b"").await;
        assert_eq!(ready.status, 503, "{}", ready.text());
        assert_eq!(ready.json()["reason"], "engine_unreachable");
        assert_eq!(node.request("GET", "/healthz", &[], b"").await.status, 200);
    }

    engine.restart().await;
    // Ready again by itself, before anything is published.
    for node in &nodes {
        wait_ready(node).await;
    }
    let deadline = Instant::now() + WAIT;
    for (i, id) in &unacknowledged {
        loop {
            let (status, body) = publish(&nodes[*i], "t", &format!("during {i}"), Some(id)).await;
            if status == 200 {
                assert_eq!(&body, id);
                published.push(body);
                break;
            }
            assert_eq!(status, 503, "{body}");
            assert!(Instant::now() < deadline, "publishing did not come back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for i in 0..10 {
        let (status, id) = publish(&nodes[i % 2], "t", &format!("after {i}"), None).await;
        assert_eq!(status, 200, "{id}");
        published.push(id);
    }
    for (stream, seen) in streams.iter_mut().zip(&mut seen) {
        let ended = read_until(stream, seen, |e| e.len() >= published.len()).await;
        assert!(!ended);
        stream.no_event_within(Duration::from_millis(500)).await;
        let ids: Vec<String> = seen.iter().map(|e| e.last_event_id.clone()).collect();
        assert_unique(&ids, "subscriber");
        assert_eq!(
            ids.iter().collect::<HashSet<_>>(),
            published.iter().collect::<HashSet<_>>()
        );
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);
}

/// Waits (a few seconds at most) until `hub` answers `/readyz` with 200.
pub async fn wait_ready(hub: &TestHub) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = hub.request("GET", "/readyz", &[], b"").await;
        if ready.status == 200 {
            assert_eq!(ready.json()["status"], "ready");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again: {}",
            ready.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many log lines of `hub` contain `text`, once there are at least
/// `want` (the log is read in the background) or a few seconds passed.
async fn log_lines(hub: &TestHub, text: &str, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let count = hub
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(text))
            .count();
        if count >= want || Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The engine fills up (Redis at `maxmemory` with `noeviction`; a
/// JetStream stream at its `max_bytes` with discard-new): publishes get
/// 507 with a JSON error on every hub, nothing of them is delivered,
/// subscribers keep streaming, the hubs stay ready (the engine is
/// reachable) and count the refusals; once the engine has room again,
/// every hub takes publishes by itself and nothing acknowledged is lost.
pub async fn engine_full(kind: Kind) {
    const ROOM: u64 = 600_000;
    let engine = Engine::start(kind).await;
    if kind == Kind::Nats {
        engine.create_discard_new_stream(ROOM).await;
    }
    let room = ROOM.to_string();
    let limit = ["--history-bytes", room.as_str()];
    let nodes = [node(&engine, &limit).await, node(&engine, &limit).await];
    let mut streams = [
        subscribe(&nodes[0], None).await,
        subscribe(&nodes[1], None).await,
    ];
    let mut published = Vec::new();
    if kind == Kind::Redis {
        // The append script is loaded before memory runs out.
        let (status, id) = publish(&nodes[0], "big", "first", None).await;
        assert_eq!(status, 200, "{id}");
        published.push(id);
        let policy = engine
            .redis(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
            .await;
        assert_eq!(policy, "+OK");
        let limit = (engine.redis_used_memory().await + ROOM).to_string();
        assert_eq!(
            engine.redis(&["CONFIG", "SET", "maxmemory", &limit]).await,
            "+OK"
        );
    }

    let filler = "x".repeat(30_000);
    let refused = loop {
        assert!(published.len() < 500, "the engine never filled up");
        let i = published.len();
        let (status, body) = publish(&nodes[i % 2], "big", &format!("{i} {filler}"), None).await;
        match status {
            200 => published.push(body),
            507 => break body,
            other => panic!("{other}: {body}"),
        }
    };
    assert!(published.len() >= 5, "{published:?}");
    let refused: serde_json::Value = serde_json::from_str(&refused).unwrap();
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("cluster engine is full"), "{error}");
    assert!(error.contains("nothing was published"), "{error}");
    for node in &nodes {
        let response = node
            .publish_form(&format!("topic=big&data=refused+{filler}"))
            .await;
        assert_eq!(response.status, 507, "{}", response.text());
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json"))
        );
        // Reachable, serving: ready. The refusals are counted.
        let ready = node.request("GET", "/readyz", &[], b"").await;
        assert_eq!(ready.status, 200, "{}", ready.text());
        let counted = node
            .metric("tidings_publishes_refused_total{cause=\"engine_full\"}")
            .await;
        assert!(counted >= 1.0, "{counted}");
        assert_eq!(log_lines(node, "the cluster engine is full", 1).await, 1);
    }

    // Subscribers got exactly what was acknowledged, and keep streaming.
    let mut seen = vec![Vec::new(); streams.len()];
    for (stream, seen) in streams.iter_mut().zip(&mut seen) {
        read_until(stream, seen, |e| e.len() >= published.len()).await;
        let ids: Vec<&str> = seen.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(ids, published);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            assert!(Instant::now() < deadline, "no heartbeat");
            match stream.next_item().await {
                Some(Item::Comment(_)) => break,
                Some(Item::Event(e)) => panic!("an event nobody acknowledged: {e:?}"),
                Some(Item::Retry(_)) => {}
                None => panic!("the stream ended"),
            }
        }
    }

    // Room again: every hub takes publishes by itself.
    match kind {
        Kind::Redis => assert_eq!(
            engine.redis(&["CONFIG", "SET", "maxmemory", "0"]).await,
            "+OK"
        ),
        Kind::Nats => engine.set_stream_max_bytes(ROOM * 100).await,
    }
    for (n, node) in nodes.iter().enumerate() {
        let started = Instant::now();
        loop {
            let (status, body) = publish(node, "big", &format!("after {n}"), None).await;
            if status == 200 {
                published.push(body);
                break;
            }
            assert_eq!(status, 507, "{body}");
            assert!(started.elapsed() < Duration::from_secs(5), "still refused");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            log_lines(node, "takes writes again: publishes are accepted", 1).await,
            1
        );
    }
    for (stream, seen) in streams.iter_mut().zip(&mut seen) {
        read_until(stream, seen, |e| e.len() >= published.len()).await;
        stream.no_event_within(Duration::from_millis(300)).await;
        let ids: Vec<&str> = seen.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(ids, published, "no loss, no duplicate, nothing refused");
    }
}

/// A hub with subscribers dies (SIGKILL): they reconnect to other hubs
/// with their last id and resume exactly.
pub async fn node_death(kind: Kind) {
    let engine = Engine::start(kind).await;
    let mut victim = node(&engine, &[]).await;
    let others = [node(&engine, &[]).await, node(&engine, &[]).await];
    let mut streams = Vec::new();
    for _ in 0..4 {
        streams.push(subscribe(&victim, None).await);
    }
    let mut published = Vec::new();
    for i in 0..10 {
        let (status, id) = publish(&others[0], "t", &format!("first {i}"), None).await;
        assert_eq!(status, 200);
        published.push(id);
    }
    let mut seen = vec![Vec::new(); streams.len()];
    for (stream, seen) in streams.iter_mut().zip(&mut seen) {
        read_until(stream, seen, |e| e.len() >= 10).await;
    }
    victim.child.start_kill().unwrap();
    victim.child.wait().await.unwrap();
    for (stream, seen) in streams.iter_mut().zip(&mut seen) {
        assert!(
            read_until(stream, seen, |_| false).await,
            "the stream ends with its hub"
        );
    }
    // Published while the subscribers are away.
    for i in 0..10 {
        let (status, id) = publish(&others[i % 2], "t", &format!("second {i}"), None).await;
        assert_eq!(status, 200);
        published.push(id);
    }
    let mut resumed = Vec::new();
    for (n, seen) in seen.iter().enumerate() {
        let last = seen.last().unwrap().last_event_id.clone();
        let stream = subscribe(&others[n % 2], Some(&last)).await;
        assert_eq!(stream.header("last-event-id"), Some(last.as_str()));
        resumed.push(stream);
    }
    for i in 0..5 {
        let (status, id) = publish(&others[1], "t", &format!("third {i}"), None).await;
        assert_eq!(status, 200);
        published.push(id);
    }
    for (stream, seen) in resumed.iter_mut().zip(&mut seen) {
        read_until(stream, seen, |e| e.len() >= published.len()).await;
        stream.no_event_within(Duration::from_millis(500)).await;
        let ids: Vec<String> = seen.iter().map(|e| e.last_event_id.clone()).collect();
        assert_eq!(ids, published, "no loss, no duplicate, in order");
    }
}

/// With a small `--history-events`, resuming on another hub from an id the
/// history no longer holds gets `Last-Event-ID: earliest` and the
/// `tidings.gap` event, then what is kept; a hub started later rebuilds the
/// history from the engine.
pub async fn retention_and_gaps(kind: Kind) {
    let engine = Engine::start(kind).await;
    let limit = ["--history-events", "5"];
    let nodes = [node(&engine, &limit).await, node(&engine, &limit).await];
    let mut published = Vec::new();
    for i in 0..30 {
        let id = (i == 0).then_some("first-one");
        let (status, body) = publish(&nodes[0], "t", &format!("e{i}"), id).await;
        assert_eq!(status, 200, "{body}");
        published.push(body);
    }
    let kept = &published[25..];
    // Let the other hub follow to the end.
    let mut live = subscribe(&nodes[1], Some(&published[28])).await;
    let mut tail = Vec::new();
    read_until(&mut live, &mut tail, |e| !e.is_empty()).await;
    assert_eq!(tail[0].last_event_id, published[29]);

    for lost in [published[0].as_str(), published[3].as_str()] {
        let mut stream = subscribe(&nodes[1], Some(lost)).await;
        assert_eq!(stream.header("last-event-id"), Some("earliest"), "{lost}");
        let gap = stream.next_event().await.unwrap();
        assert_eq!(gap.event_type, "tidings.gap");
        let notice: serde_json::Value = serde_json::from_str(&gap.data).unwrap();
        assert_eq!(notice["lastEventId"], lost);
        let replayed = stream.events(5).await;
        let ids: Vec<&str> = replayed.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(ids, kept, "then what is kept");
        stream.no_event_within(Duration::from_millis(300)).await;
    }
    // A kept id resumes exactly, on either hub.
    for node in &nodes {
        let mut stream = subscribe(node, Some(&published[26])).await;
        assert_eq!(stream.header("last-event-id"), Some(published[26].as_str()));
        let replayed = stream.events(3).await;
        let ids: Vec<&str> = replayed.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(ids, &published[27..]);
    }
    // A hub started now has the history too, once it has followed the log
    // (resuming from an id waits for that).
    let late = node(&engine, &limit).await;
    let mut caught_up = subscribe(&late, Some(&published[28])).await;
    assert_eq!(caught_up.events(1).await[0].last_event_id, published[29]);
    let mut stream = subscribe(&late, Some("earliest")).await;
    let replayed = stream.events(5).await;
    let ids: Vec<&str> = replayed.iter().map(|e| e.last_event_id.as_str()).collect();
    assert_eq!(ids, kept);
}
