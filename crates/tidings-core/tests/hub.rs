//! The hub core end to end, without any transport: publish, subscribe,
//! resume, idempotent retries, slow subscribers and shutdown.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tidings_core::{
    End, Hub, HubConfig, MemoryStore, PublishError, Retention, Selector, SubscribeRequest,
    SubscriberAuth, Subscription, Update, UpdateError,
};

fn hub_with(config: HubConfig, retention: Retention) -> Hub {
    Hub::start(config, Arc::new(MemoryStore::new(retention))).unwrap()
}

fn hub() -> Hub {
    hub_with(
        HubConfig {
            retry: None,
            ..HubConfig::default()
        },
        Retention::default(),
    )
}

fn update(topic: &str, data: &str) -> Update {
    Update {
        topics: vec![topic.into()],
        data: data.into(),
        ..Update::default()
    }
}

fn request(selectors: &[&str], last_event_id: Option<&str>) -> SubscribeRequest {
    SubscribeRequest {
        selectors: selectors.iter().map(|s| Selector::parse(s)).collect(),
        last_event_id: last_event_id.map(Into::into),
        auth: None,
    }
}

/// The next batch of frames, as text, skipping the opening comment.
async fn next_text(sub: &mut Subscription) -> Result<Vec<String>, End> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sub.next(&mut out))
        .await
        .expect("no frames within 5 s")?;
    Ok(out
        .iter()
        .map(|b: &Bytes| String::from_utf8(b.to_vec()).unwrap())
        .filter(|f| f != ":\n")
        .collect())
}

/// Collects data lines until `n` events arrived.
async fn collect(sub: &mut Subscription, n: usize) -> Vec<String> {
    let mut events = Vec::new();
    while events.len() < n {
        events.extend(next_text(sub).await.unwrap());
    }
    events
}

fn data_of(frame: &str) -> &str {
    frame
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or("")
}

#[tokio::test]
async fn live_events_reach_matching_subscribers_once() {
    let hub = hub();
    let mut a = hub
        .subscribe(request(&["books/1", "books/{id}", "*"], None))
        .await
        .unwrap();
    let mut b = hub.subscribe(request(&["other"], None)).await.unwrap();
    let _ = next_text(&mut a).await.unwrap(); // opening
    let _ = next_text(&mut b).await.unwrap();

    let mut u = update("books/1", "one");
    u.topics.push("other".into());
    let published = hub.publish(vec![u]).await.unwrap();
    assert_eq!(published.len(), 1);
    assert!(published[0].id.starts_with("urn:tidings:"));

    let got = collect(&mut a, 1).await;
    assert_eq!(got.len(), 1, "matched by three selectors, queued once");
    assert_eq!(data_of(&got[0]), "one");
    assert!(got[0].starts_with(&format!("id: {}\n", published[0].id)));
    assert_eq!(data_of(&collect(&mut b, 1).await[0]), "one");
}

#[tokio::test]
async fn resume_has_no_gap_and_no_duplicate() {
    let hub = hub();
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(
                hub.publish(vec![update("t", &i.to_string())])
                    .await
                    .unwrap()[0]
                    .id
                    .clone(),
            );
        }
        ids
    };
    let mut sub = hub.subscribe(request(&["t"], Some(&ids[3]))).await.unwrap();
    assert_eq!(sub.last_event_id_header(), Some(ids[3].as_str()));
    // Publish more while it replays.
    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            for i in 10..20 {
                hub.publish(vec![update("t", &i.to_string())])
                    .await
                    .unwrap();
            }
        })
    };
    let got = collect(&mut sub, 16).await;
    publisher.await.unwrap();
    let data: Vec<&str> = got.iter().map(|f| data_of(f)).collect();
    let expected: Vec<String> = (4..20).map(|i| i.to_string()).collect();
    assert_eq!(data, expected);
}

#[tokio::test]
async fn earliest_and_unknown_ids() {
    let hub = hub();
    hub.publish(vec![update("t", "a"), update("t", "b")])
        .await
        .unwrap();
    let mut sub = hub
        .subscribe(request(&["t"], Some("earliest")))
        .await
        .unwrap();
    assert_eq!(sub.last_event_id_header(), Some("earliest"));
    let got = collect(&mut sub, 2).await;
    assert_eq!(
        got.iter().map(|f| data_of(f)).collect::<Vec<_>>(),
        ["a", "b"]
    );

    let mut sub = hub
        .subscribe(request(&["t"], Some("never-seen")))
        .await
        .unwrap();
    assert_eq!(sub.last_event_id_header(), Some("earliest"));
    let got = collect(&mut sub, 3).await;
    assert!(got[0].starts_with("event: tidings.gap\n"), "{got:?}");
    assert!(got[0].contains("never-seen"));
    assert_eq!(data_of(&got[1]), "a");
}

#[tokio::test]
async fn expired_ids_get_a_gap_notice() {
    let hub = hub_with(
        HubConfig {
            retry: None,
            ..HubConfig::default()
        },
        Retention {
            max_events: Some(3),
            max_age: None,
            max_bytes: None,
        },
    );
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            hub.publish(vec![update("t", &i.to_string())])
                .await
                .unwrap()[0]
                .id
                .clone(),
        );
    }
    // ids[2] is still resumable: the event after it (3) is retained.
    let mut sub = hub.subscribe(request(&["t"], Some(&ids[2]))).await.unwrap();
    assert_eq!(sub.last_event_id_header(), Some(ids[2].as_str()));
    assert_eq!(data_of(&collect(&mut sub, 1).await[0]), "3");
    // ids[1] is not: event 2 is gone.
    let mut sub = hub.subscribe(request(&["t"], Some(&ids[1]))).await.unwrap();
    assert_eq!(sub.last_event_id_header(), Some("earliest"));
    let got = collect(&mut sub, 4).await;
    assert!(
        got[0].contains("tidings.gap") && got[0].contains("expired"),
        "{got:?}"
    );
    assert_eq!(
        got[1..].iter().map(|f| data_of(f)).collect::<Vec<_>>(),
        ["3", "4", "5"]
    );
}

#[tokio::test]
async fn publisher_ids_are_idempotent() {
    let hub = hub();
    let mut sub = hub.subscribe(request(&["t"], None)).await.unwrap();
    let _ = next_text(&mut sub).await.unwrap();
    let mut u = update("t", "x");
    u.id = Some("order-17".into());
    let first = hub.publish(vec![u.clone()]).await.unwrap();
    assert_eq!(first[0].id, "order-17");
    assert!(!first[0].duplicate);
    let again = hub.publish(vec![u.clone()]).await.unwrap();
    assert_eq!(again[0].seq, first[0].seq);
    assert!(again[0].duplicate);
    let mut changed = u.clone();
    changed.data = "y".into();
    assert!(matches!(
        hub.publish(vec![changed]).await,
        Err(PublishError::Conflict { id }) if id == "order-17"
    ));
    // A batch is all or nothing: the conflict stops the new update too.
    let mut changed = u.clone();
    changed.data = "z".into();
    assert!(
        hub.publish(vec![update("t", "new"), changed])
            .await
            .is_err()
    );
    hub.publish(vec![update("t", "after")]).await.unwrap();

    let got = collect(&mut sub, 2).await;
    assert_eq!(
        got.iter().map(|f| data_of(f)).collect::<Vec<_>>(),
        ["x", "after"]
    );

    // Resuming from the publisher's id works like a hub id.
    let mut resumed = hub
        .subscribe(request(&["t"], Some("order-17")))
        .await
        .unwrap();
    assert_eq!(resumed.last_event_id_header(), Some("order-17"));
    assert_eq!(data_of(&collect(&mut resumed, 1).await[0]), "after");
}

#[tokio::test]
async fn invalid_updates_are_refused_whole() {
    let hub = hub();
    let mut bad = update("t", "x");
    bad.event_type = Some("a\nb".into());
    let err = hub.publish(vec![update("t", "ok"), bad]).await.unwrap_err();
    assert!(matches!(
        err,
        PublishError::Invalid {
            index: 1,
            error: UpdateError::Field(_)
        }
    ));
    assert_eq!(
        hub.bounds().await.unwrap().first,
        hub.bounds().await.unwrap().next
    );
}

#[tokio::test]
async fn private_updates_need_a_matching_claim() {
    let hub = hub();
    let mut anonymous = hub.subscribe(request(&["*"], None)).await.unwrap();
    let mut allowed = hub
        .subscribe(SubscribeRequest {
            auth: Some(SubscriberAuth {
                private_selectors: vec![Selector::parse("users/{id}")],
                expires_at: None,
                payload: None,
            }),
            ..request(&["users/1", "public"], None)
        })
        .await
        .unwrap();
    let _ = next_text(&mut anonymous).await.unwrap();
    let _ = next_text(&mut allowed).await.unwrap();
    let mut secret = update("users/1", "secret");
    secret.private = true;
    hub.publish(vec![secret, update("public", "open")])
        .await
        .unwrap();
    let got = collect(&mut allowed, 2).await;
    assert_eq!(
        got.iter().map(|f| data_of(f)).collect::<Vec<_>>(),
        ["secret", "open"]
    );
    let got = collect(&mut anonymous, 1).await;
    assert_eq!(got.iter().map(|f| data_of(f)).collect::<Vec<_>>(), ["open"]);

    // Same on replay.
    let mut replay = hub
        .subscribe(request(&["*"], Some("earliest")))
        .await
        .unwrap();
    let got = collect(&mut replay, 1).await;
    assert_eq!(got.iter().map(|f| data_of(f)).collect::<Vec<_>>(), ["open"]);
}

#[tokio::test]
async fn a_slow_subscriber_is_dropped_and_nobody_waits() {
    let hub = hub_with(
        HubConfig {
            queue_capacity: 8,
            retry: None,
            ..HubConfig::default()
        },
        Retention::default(),
    );
    let mut slow = hub.subscribe(request(&["t"], None)).await.unwrap();
    let mut fast = hub.subscribe(request(&["t"], None)).await.unwrap();
    let _ = next_text(&mut slow).await.unwrap();
    let _ = next_text(&mut fast).await.unwrap();
    let reader = tokio::spawn(async move { collect(&mut fast, 50).await.len() });
    for i in 0..50 {
        hub.publish(vec![update("t", &i.to_string())])
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(reader.await.unwrap(), 50);
    // The slow one gets what was queued, then the end.
    let mut frames = 0;
    let end = loop {
        match next_text(&mut slow).await {
            Ok(f) => frames += f.len(),
            Err(end) => break end,
        }
    };
    assert_eq!(end, End::Lagged);
    assert_eq!(frames, 8);
}

#[tokio::test]
async fn shutdown_ends_streams_after_flushing() {
    let hub = hub();
    let mut sub = hub.subscribe(request(&["t"], None)).await.unwrap();
    let _ = next_text(&mut sub).await.unwrap();
    hub.publish(vec![update("t", "last")]).await.unwrap();
    hub.shutdown().await;
    assert_eq!(data_of(&next_text(&mut sub).await.unwrap()[0]), "last");
    assert_eq!(next_text(&mut sub).await, Err(End::Shutdown));
    assert!(matches!(
        hub.publish(vec![update("t", "late")]).await,
        Err(PublishError::ShuttingDown)
    ));
    assert!(hub.subscribe(request(&["t"], None)).await.is_err());
}

#[tokio::test]
async fn dropped_subscriptions_are_forgotten() {
    let hub = hub();
    let subs: Vec<_> = futures_collect(&hub, 100).await;
    assert_eq!(hub.subscription_count(), 100);
    drop(subs);
    assert_eq!(hub.subscription_count(), 0);
}

async fn futures_collect(hub: &Hub, n: usize) -> Vec<Subscription> {
    let mut subs = Vec::new();
    for i in 0..n {
        subs.push(
            hub.subscribe(request(&[&format!("t{i}"), "x/{y}"], None))
                .await
                .unwrap(),
        );
    }
    subs
}

#[tokio::test(start_paused = true)]
async fn heartbeats_on_idle_streams() {
    let hub = hub_with(
        HubConfig {
            heartbeat: Duration::from_secs(2),
            retry: None,
            ..HubConfig::default()
        },
        Retention::default(),
    );
    let mut sub = hub.subscribe(request(&["t"], None)).await.unwrap();
    let mut out = Vec::new();
    sub.next(&mut out).await.unwrap(); // opening
    out.clear();
    // Paused time auto-advances while everything waits.
    sub.next(&mut out).await.unwrap();
    assert_eq!(&out[0][..], b":\n");
}

/// A stand-in for a transport's connection: what the fan-out writes to it
/// and what the subscriber's task writes go to one byte stream, as on a
/// socket. It takes everything, or at most `budget` more bytes and then
/// would block.
#[derive(Debug, Default)]
struct Connection {
    bytes: std::sync::Mutex<Vec<u8>>,
    budget: std::sync::Mutex<Option<usize>>,
    direct_writes: std::sync::atomic::AtomicUsize,
}

impl tidings_core::DirectWrite for Connection {
    fn try_write_vectored(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let mut budget = self.budget.lock().unwrap();
        let mut bytes = self.bytes.lock().unwrap();
        let mut written = 0;
        for buf in bufs {
            let take = budget.map_or(buf.len(), |b| buf.len().min(b - written));
            bytes.extend_from_slice(&buf[..take]);
            written += take;
            if take < buf.len() {
                break;
            }
        }
        if written == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        if let Some(b) = budget.as_mut() {
            *b -= written;
        }
        self.direct_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(written)
    }
}

/// While the subscriber's task waits with nothing unwritten, the fan-out
/// writes events to the connection itself; what the connection does not
/// take (in part or at all) the task writes, in order, nothing twice.
#[tokio::test]
async fn the_fan_out_writes_through_to_idle_connections() {
    let hub = hub();
    let mut sub = hub.subscribe(request(&["t"], None)).await.unwrap();
    let connection = Arc::new(Connection::default());
    sub.write_through(connection.clone());
    // The transport's task: writes what it is handed to the same stream.
    let task_connection = Arc::clone(&connection);
    let (batches, mut batches_rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        while sub.next(&mut out).await.is_ok() {
            let mut bytes = task_connection.bytes.lock().unwrap();
            for frame in out.drain(..) {
                bytes.extend_from_slice(&frame);
            }
            drop(bytes);
            sub.written();
            let _ = batches.send(());
        }
    });
    batches_rx.recv().await.unwrap(); // the opening comment
    let wait_for = |n: usize| {
        let connection = Arc::clone(&connection);
        async move {
            tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    let text = String::from_utf8(connection.bytes.lock().unwrap().clone()).unwrap();
                    if text.matches("data: ").count() >= n {
                        return text;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("events did not arrive")
        }
    };

    // Idle and the connection takes it all: written by the fan-out.
    hub.publish(vec![update("t", "one")]).await.unwrap();
    wait_for(1).await;
    assert_eq!(
        connection
            .direct_writes
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(batches_rx.try_recv().is_err(), "the task was not needed");

    // The connection takes a few bytes: the task writes the rest.
    *connection.budget.lock().unwrap() = Some(7);
    hub.publish(vec![update("t", "two, in part")])
        .await
        .unwrap();
    batches_rx.recv().await.unwrap();
    wait_for(2).await;

    // The connection takes nothing: the task writes everything, in order.
    *connection.budget.lock().unwrap() = Some(0);
    hub.publish(vec![update("t", "three"), update("t", "four")])
        .await
        .unwrap();
    let text = wait_for(4).await;
    *connection.budget.lock().unwrap() = None;
    hub.publish(vec![update("t", "five")]).await.unwrap();
    let text_after = wait_for(5).await;
    assert!(text_after.starts_with(&text));

    let data: Vec<&str> = text_after
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data, ["one", "two, in part", "three", "four", "five"]);
    let ids: Vec<&str> = text_after
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(text_after.ends_with("\n\n"));
    hub.shutdown().await;
    task.await.unwrap();
}

/// A subscriber whose queue holds more bytes than its limit is ended as
/// too slow, however few events that is.
#[tokio::test]
async fn the_queue_is_bounded_in_bytes() {
    let hub = hub_with(
        HubConfig {
            retry: None,
            queue_bytes: 10_000,
            ..HubConfig::default()
        },
        Retention::default(),
    );
    let mut sub = hub.subscribe(request(&["t"], None)).await.unwrap();
    let _ = next_text(&mut sub).await.unwrap();
    let big = "x".repeat(4_000);
    for _ in 0..4 {
        hub.publish(vec![update("t", &big)]).await.unwrap();
    }
    let mut out = Vec::new();
    let mut events = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), sub.next(&mut out))
            .await
            .unwrap()
        {
            Ok(()) => {
                events += out.len();
                out.clear();
            }
            Err(end) => break end,
        }
    };
    assert_eq!(end, End::Lagged);
    assert_eq!(
        events, 2,
        "two 4 kB events fit in 10 kB, the third does not"
    );
}
