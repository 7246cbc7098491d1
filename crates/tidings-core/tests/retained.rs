//! Retained updates in the hub core, without any transport: the snapshot a
//! new subscription starts with, the `id: HEAD` block after it and an exact
//! resume from it, clearing, private ones, the limit on topics, and that
//! history retention never removes them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use tidings_core::{
    End, EventId, Hub, HubConfig, MemoryStore, PublishError, Retention, Selector, Store,
    SubscribeRequest, SubscriberAuth, Subscription, Update,
};

fn hub_on(store: Arc<dyn Store>, retained_topics: usize) -> Hub {
    let config = HubConfig {
        retry: None,
        retained_topics,
        ..HubConfig::default()
    };
    Hub::start(config, store).unwrap()
}

fn hub() -> Hub {
    hub_on(Arc::new(MemoryStore::new(Retention::default())), 100)
}

fn update(topics: &[&str], data: &str, retain: bool) -> Update {
    Update {
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        data: data.into(),
        retain,
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

/// One frame as the client sees it: an event (`id`, data) or the id-only
/// block (`data` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    id: String,
    data: Option<String>,
}

fn parse(frame: &[u8]) -> Option<Frame> {
    let text = std::str::from_utf8(frame).unwrap();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))?
        .to_owned();
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
        .map(str::to_owned);
    Some(Frame { id, data })
}

/// Frames until `n` have an id (comments and `retry` skipped).
async fn frames(sub: &mut Subscription, n: usize) -> Vec<Frame> {
    let mut got = Vec::new();
    while got.len() < n {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), sub.next(&mut out))
            .await
            .expect("no frames within 5 s")
            .unwrap();
        got.extend(out.iter().filter_map(|f| parse(f)));
    }
    got
}

/// The snapshot: events until the id-only block; returns them and HEAD.
/// (The transport gets both in one or a few batches, nothing after HEAD.)
async fn snapshot(sub: &mut Subscription) -> (Vec<Frame>, String) {
    let mut events = Vec::new();
    loop {
        let batch = frames(sub, 1).await;
        for frame in batch {
            match frame.data {
                Some(_) => events.push(frame),
                None => return (events, frame.id),
            }
        }
    }
}

/// Asserts that nothing with an id comes within `wait`.
async fn quiet(sub: &mut Subscription, wait: Duration) {
    let mut out = Vec::new();
    if let Ok(result) = tokio::time::timeout(wait, sub.next(&mut out)).await {
        result.unwrap();
        let got: Vec<_> = out.iter().filter_map(|f| parse(f)).collect();
        assert!(got.is_empty(), "unexpected {got:?}");
    }
}

fn seq(id: &str) -> u64 {
    EventId::parse(id).unwrap()
}

#[tokio::test]
async fn a_new_subscriber_gets_each_matching_retained_update_once_in_order_then_head() {
    let hub = hub();
    let published = hub
        .publish(vec![
            update(&["books/1", "shelf"], "one", true),
            update(&["books/2"], "two", true),
            update(&["books/1"], "not retained", false),
            update(&["books/3"], "three", true),
            update(&["other"], "other", true),
            update(&["books/2"], "two again", true),
            update(&["noise"], "newest", false),
        ])
        .await
        .unwrap();
    let id = |i: usize| published[i].id.clone();
    // Several selectors and topics match the same events.
    let mut sub = hub
        .subscribe(request(&["books/{id}", "books/1", "shelf", "*"], None))
        .await
        .unwrap();
    let (events, head) = snapshot(&mut sub).await;
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|f| (f.id.as_str(), f.data.as_deref().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (id(0).as_str(), "one"),
            (id(3).as_str(), "three"),
            (id(4).as_str(), "other"),
            (id(5).as_str(), "two again"),
        ]
    );
    assert_eq!(head, id(6), "HEAD is the newest event, retained or not");
    quiet(&mut sub, Duration::from_millis(100)).await;
    // Then live.
    let next = hub
        .publish(vec![update(&["books/9"], "live", false)])
        .await
        .unwrap();
    assert_eq!(frames(&mut sub, 1).await[0].id, next[0].id);

    // Only what the selectors match.
    let mut narrow = hub.subscribe(request(&["shelf"], None)).await.unwrap();
    let (events, head) = snapshot(&mut narrow).await;
    assert_eq!(
        events.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        [id(0)]
    );
    assert_eq!(head, next[0].id);
}

#[tokio::test]
async fn an_empty_hub_sends_no_head() {
    let hub = hub();
    let mut sub = hub.subscribe(request(&["*"], None)).await.unwrap();
    quiet(&mut sub, Duration::from_millis(100)).await;
    let p = hub.publish(vec![update(&["t"], "x", false)]).await.unwrap();
    assert_eq!(
        frames(&mut sub, 1).await,
        [Frame {
            id: p[0].id.clone(),
            data: Some("x".into())
        }]
    );
}

#[tokio::test]
async fn empty_data_clears_and_is_delivered() {
    let hub = hub();
    hub.publish(vec![update(&["a", "b"], "1", true)])
        .await
        .unwrap();
    let mut live = hub.subscribe(request(&["a"], None)).await.unwrap();
    let (events, _) = snapshot(&mut live).await;
    assert_eq!(events.len(), 1);
    let clear = hub.publish(vec![update(&["a"], "", true)]).await.unwrap();
    let got = frames(&mut live, 1).await;
    assert_eq!(got[0].id, clear[0].id);
    assert_eq!(got[0].data.as_deref(), Some(""), "delivered as an event");

    let mut fresh = hub.subscribe(request(&["a", "b"], None)).await.unwrap();
    let (events, head) = snapshot(&mut fresh).await;
    assert_eq!(events.len(), 1, "b still holds the update: {events:?}");
    assert_eq!(events[0].data.as_deref(), Some("1"));
    assert_eq!(head, clear[0].id);
    let mut only_a = hub.subscribe(request(&["a"], None)).await.unwrap();
    assert!(snapshot(&mut only_a).await.0.is_empty());
}

#[tokio::test]
async fn private_retained_updates_only_to_the_authorized() {
    let hub = hub();
    let mut secret = update(&["users/1"], "secret", true);
    secret.private = true;
    hub.publish(vec![secret, update(&["users/2"], "public", true)])
        .await
        .unwrap();
    let mut anonymous = hub.subscribe(request(&["users/{id}"], None)).await.unwrap();
    let (events, _) = snapshot(&mut anonymous).await;
    assert_eq!(
        events
            .iter()
            .map(|f| f.data.clone().unwrap())
            .collect::<Vec<_>>(),
        ["public"]
    );
    let mut other_claim = hub
        .subscribe(SubscribeRequest {
            auth: Some(SubscriberAuth {
                private_selectors: vec![Selector::parse("users/2")],
                ..SubscriberAuth::default()
            }),
            ..request(&["users/{id}"], None)
        })
        .await
        .unwrap();
    assert_eq!(snapshot(&mut other_claim).await.0.len(), 1);
    let mut allowed = hub
        .subscribe(SubscribeRequest {
            auth: Some(SubscriberAuth {
                private_selectors: vec![Selector::parse("users/{id}")],
                ..SubscriberAuth::default()
            }),
            ..request(&["users/{id}"], None)
        })
        .await
        .unwrap();
    let (events, _) = snapshot(&mut allowed).await;
    assert_eq!(
        events
            .iter()
            .map(|f| f.data.clone().unwrap())
            .collect::<Vec<_>>(),
        ["secret", "public"]
    );
}

#[tokio::test]
async fn resuming_gets_replay_and_no_snapshot() {
    let hub = hub();
    let p = hub
        .publish(vec![
            update(&["t"], "kept", true),
            update(&["t"], "plain", false),
        ])
        .await
        .unwrap();
    for (last, expected) in [
        (p[0].id.as_str(), &["plain"][..]),
        ("earliest", &["kept", "plain"]),
    ] {
        let mut sub = hub.subscribe(request(&["t"], Some(last))).await.unwrap();
        let got = frames(&mut sub, expected.len()).await;
        let data: Vec<_> = got.iter().map(|f| f.data.clone().unwrap()).collect();
        assert_eq!(data, expected, "{last}");
        quiet(&mut sub, Duration::from_millis(100)).await;
    }
}

/// The exactness of HEAD: publishers keep publishing while subscribers
/// open; each gets a snapshot whose events are all at or before HEAD, then
/// live events after HEAD only; a resume from HEAD replays exactly those
/// live events, nothing lost and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_head_loses_nothing_and_repeats_nothing() {
    let hub = hub_on(Arc::new(MemoryStore::new(Retention::default())), 1000);
    // The hub holds an event from the start: every snapshot ends with HEAD.
    hub.publish(vec![update(&["k/0"], "first", true)])
        .await
        .unwrap();
    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            for i in 0..600u32 {
                let topic = format!("k/{}", i % 50);
                hub.publish(vec![update(&[&topic], &i.to_string(), i % 3 != 0)])
                    .await
                    .unwrap();
                if i % 8 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut rounds = 0;
    while !publisher.is_finished() || rounds < 3 {
        rounds += 1;
        let mut sub = hub.subscribe(request(&["k/{n}"], None)).await.unwrap();
        let (events, head) = snapshot(&mut sub).await;
        let head_seq = seq(&head);
        assert!(
            events.iter().all(|e| seq(&e.id) <= head_seq),
            "{events:?} after {head}"
        );
        for pair in events.windows(2) {
            assert!(seq(&pair[0].id) < seq(&pair[1].id), "ascending and once");
        }
        // Live events for a while.
        let mut live = Vec::new();
        let mut out = Vec::new();
        while live.len() < 20 {
            out.clear();
            match tokio::time::timeout(Duration::from_millis(300), sub.next(&mut out)).await {
                Ok(result) => {
                    result.unwrap();
                    live.extend(out.iter().filter_map(|f| parse(f)));
                }
                Err(_) => break,
            }
        }
        assert!(
            live.iter().all(|e| seq(&e.id) > head_seq),
            "live after HEAD only"
        );
        // Resuming from HEAD replays exactly what came live, and on.
        let mut resumed = hub
            .subscribe(request(&["k/{n}"], Some(&head)))
            .await
            .unwrap();
        assert_eq!(resumed.last_event_id_header(), Some(head.as_str()));
        let replayed = frames(&mut resumed, live.len()).await;
        assert_eq!(replayed[..live.len()], live[..], "round {rounds}");
    }
    publisher.await.unwrap();
}

#[tokio::test]
async fn the_limit_on_topics_refuses_whole_publishes() {
    let hub = hub_on(Arc::new(MemoryStore::new(Retention::default())), 2);
    hub.publish(vec![update(&["a"], "1", true), update(&["b"], "1", true)])
        .await
        .unwrap();
    let err = hub
        .publish(vec![
            update(&["x"], "plain", false),
            update(&["c"], "1", true),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::RetainedFull { limit: 2 }),
        "{err:?}"
    );
    let before = hub.bounds().await.unwrap();
    // Replacing and clearing are always fine, and make room.
    hub.publish(vec![update(&["a"], "2", true)]).await.unwrap();
    hub.publish(vec![update(&["b"], "", true), update(&["c"], "1", true)])
        .await
        .unwrap();
    assert_eq!(
        hub.bounds().await.unwrap().next,
        before.next + 3,
        "nothing of the refused publish"
    );
    let mut sub = hub.subscribe(request(&["*"], None)).await.unwrap();
    let (events, _) = snapshot(&mut sub).await;
    assert_eq!(
        events
            .iter()
            .map(|f| f.data.clone().unwrap())
            .collect::<Vec<_>>(),
        ["2", "1"]
    );
    // Ordinary publishes are never refused.
    hub.publish(vec![update(&["d"], "x", false)]).await.unwrap();
}

#[tokio::test]
async fn history_retention_never_removes_a_retained_update() {
    let store = Arc::new(MemoryStore::new(Retention {
        max_events: Some(2),
        max_age: Some(Duration::from_millis(1)),
        max_bytes: None,
    }));
    let hub = hub_on(store.clone(), 100);
    let kept = hub
        .publish(vec![update(&["price"], "42", true)])
        .await
        .unwrap();
    for i in 0..10 {
        hub.publish(vec![update(&["noise"], &i.to_string(), false)])
            .await
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    store.enforce_retention(u64::MAX / 2).unwrap();
    assert!(
        store.find_id(&kept[0].id).unwrap().is_none(),
        "history dropped it"
    );
    let mut sub = hub.subscribe(request(&["price"], None)).await.unwrap();
    let (events, _) = snapshot(&mut sub).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, kept[0].id);
    // A hub started on the same store has it too.
    hub.shutdown().await;
    let again = hub_on(store, 100);
    let mut sub = again.subscribe(request(&["price"], None)).await.unwrap();
    let (events, head) = snapshot(&mut sub).await;
    assert_eq!(events[0].id, kept[0].id);
    assert_eq!(seq(&head), again.bounds().await.unwrap().next - 1);
}

#[tokio::test]
async fn retries_of_a_retained_publish_are_retries() {
    let hub = hub();
    let mut u = update(&["t"], "x", true);
    u.id = Some("mine".into());
    let first = hub.publish(vec![u.clone()]).await.unwrap();
    let again = hub.publish(vec![u.clone()]).await.unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].seq, first[0].seq);
    u.retain = false;
    assert!(matches!(
        hub.publish(vec![u]).await,
        Err(PublishError::Conflict { .. })
    ));
    let mut sub = hub.subscribe(request(&["t"], None)).await.unwrap();
    let (events, head) = snapshot(&mut sub).await;
    assert_eq!(events[0].id, "mine");
    assert_eq!(head, "mine", "HEAD may be a publisher's id");
    let mut resumed = hub.subscribe(request(&["t"], Some(&head))).await.unwrap();
    quiet(&mut resumed, Duration::from_millis(100)).await;
    let end = {
        hub.shutdown().await;
        let mut out = Vec::new();
        resumed.next(&mut out).await
    };
    assert_eq!(end, Err(End::Shutdown));
}
