//! Retained updates on the real `tidings serve`, over HTTP: publishing with
//! `retain` (form and JSON), the snapshot a new subscriber starts with
//! (each event once, in order, private ones only to the authorized), the
//! `id: HEAD` block and an exact resume from it while publishers publish,
//! clearing, no snapshot for a resume, the 507 limit, and durability:
//! history retention never removes them, and they survive SIGKILL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod retained_support;
mod support;

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use retained_support::{head_in, snapshot};
use serde_json::json;
use support::{HUB, TempDir, TestHub, WAIT, encode, target};

/// Publishes a form body; returns the id.
async fn publish(hub: &TestHub, body: &str) -> String {
    let response = hub.publish_form(body).await;
    assert_eq!(response.status, 200, "{body}: {}", response.text());
    response.text()
}

fn retained(topic: &str, data: &str) -> String {
    format!("topic={}&data={}&retain=on", encode(topic), encode(data))
}

#[tokio::test]
async fn a_new_subscriber_starts_with_the_retained_updates_then_head() {
    let hub = TestHub::start(&[]).await;
    let one = publish(
        &hub,
        &format!(
            "topic={}&topic=shelf&data=one&type=book&retain",
            encode("https://example.com/books/1")
        ),
    )
    .await;
    let json = hub
        .publish_json(
            r#"[{"topic":"https://example.com/books/2","data":{"n":2},"retain":true},
                {"topic":"https://example.com/books/1","data":"not retained"},
                {"topic":"https://example.com/books/3","data":"three","retain":true,"id":"mine"}]"#,
        )
        .await;
    assert_eq!(json.status, 200, "{}", json.text());
    let ids: Vec<String> = json.text().lines().map(str::to_owned).collect();
    let newest = publish(&hub, "topic=noise&data=newest").await;

    // Several selectors and topics match the same events: each once.
    let mut stream = hub
        .subscribe(
            &target(&[
                "https://example.com/books/{id}",
                "https://example.com/books/1",
                "shelf",
            ]),
            &[],
        )
        .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("last-event-id"), None);
    let (events, head) = snapshot(&mut stream).await;
    let got: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.last_event_id.as_str(),
                e.event_type.as_str(),
                e.data.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (one.as_str(), "book", "one"),
            (ids[0].as_str(), "message", r#"{"n":2}"#),
            ("mine", "message", "three"),
        ]
    );
    assert_eq!(head, newest, "HEAD is the newest event in the hub");
    assert_eq!(
        stream.decoder.last_event_id(),
        newest,
        "a WHATWG client's last event id is HEAD, with nothing dispatched for it"
    );
    // Then live.
    let live = hub.publish("https://example.com/books/9", "live").await;
    let event = stream.next_event().await.unwrap();
    assert_eq!(
        (event.last_event_id.as_str(), event.data.as_str()),
        (live.as_str(), "live")
    );

    // Clearing: delivered as an event with empty data, gone from snapshots.
    let cleared = publish(
        &hub,
        &format!("topic={}&retain", encode("https://example.com/books/2")),
    )
    .await;
    let event = stream.next_event().await.unwrap();
    assert_eq!(
        (event.last_event_id.as_str(), event.data.as_str()),
        (cleared.as_str(), "")
    );
    let mut fresh = hub
        .subscribe(&target(&["https://example.com/books/{id}"]), &[])
        .await;
    let (events, head) = snapshot(&mut fresh).await;
    assert_eq!(
        events
            .iter()
            .map(|e| e.last_event_id.as_str())
            .collect::<Vec<_>>(),
        [one.as_str(), "mine"]
    );
    assert_eq!(head, cleared);
}

#[tokio::test]
async fn a_resume_gets_replay_and_no_snapshot() {
    let hub = TestHub::start(&[]).await;
    let kept = publish(&hub, &retained("t", "kept")).await;
    let plain = hub.publish("t", "plain").await;
    for (header, query, expected) in [
        (Some(kept.as_str()), None, vec!["plain"]),
        (None, Some(kept.as_str()), vec!["plain"]),
        (Some("earliest"), None, vec!["kept", "plain"]),
        (None, Some("earliest"), vec!["kept", "plain"]),
    ] {
        let mut path = target(&["t"]);
        if let Some(id) = query {
            path.push_str(&format!("&lastEventID={}", encode(id)));
        }
        let headers: Vec<(&str, &str)> = header.map(|h| ("Last-Event-ID", h)).into_iter().collect();
        let mut stream = hub.subscribe(&path, &headers).await;
        let events = stream.events(expected.len()).await;
        assert_eq!(
            events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(events.last().unwrap().last_event_id, plain);
        stream.no_event_within(Duration::from_millis(300)).await;
        assert_eq!(
            head_in(&stream.raw),
            None,
            "no HEAD block: {header:?} {query:?}"
        );
    }
}

fn token(secret: &str, publish: &[&str], subscribe: &[&str]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "mercure": { "publish": publish, "subscribe": subscribe } }),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn private_retained_updates_only_to_the_authorized() {
    const SECRET: &str = "retained-test-secret-0123456789abcdef";
    let hub = TestHub::start(&["--jwt-key", SECRET]).await;
    let publisher = format!("Bearer {}", token(SECRET, &["*"], &[]));
    for body in [
        "topic=users%2F1&data=secret&private&retain",
        "topic=users%2F2&data=public&retain",
    ] {
        let response = hub
            .request(
                "POST",
                HUB,
                &[
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("Authorization", &publisher),
                ],
                body.as_bytes(),
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let path = target(&["users/{id}"]);
    let mut anonymous = hub.subscribe(&path, &[]).await;
    let (events, _) = snapshot(&mut anonymous).await;
    assert_eq!(
        events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["public"]
    );
    let other = format!("Bearer {}", token(SECRET, &[], &["users/2"]));
    let mut other = hub.subscribe(&path, &[("Authorization", &other)]).await;
    let (events, _) = snapshot(&mut other).await;
    assert_eq!(
        events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["public"]
    );
    let allowed = format!("Bearer {}", token(SECRET, &[], &["users/{id}"]));
    let mut allowed = hub.subscribe(&path, &[("Authorization", &allowed)]).await;
    let (events, _) = snapshot(&mut allowed).await;
    assert_eq!(
        events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["secret", "public"]
    );
}

/// Publishers keep publishing (retained or not) while subscribers open:
/// every snapshot event is at or before HEAD, everything after HEAD comes
/// live, and a reconnection with `Last-Event-ID: HEAD` gets exactly the
/// live events again, nothing lost and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_head_is_exact_while_publishers_publish() {
    let hub = std::sync::Arc::new(TestHub::start(&["--memory"]).await);
    publish(&hub, &retained("k/0", "first")).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (hub, stop) = (hub.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 3000 {
                let body = format!(
                    "topic=k%2F{}&data={i}{}",
                    i % 40,
                    if i.is_multiple_of(3) { "" } else { "&retain" }
                );
                publish(&hub, &body).await;
                i += 1;
            }
            i
        })
    };
    for round in 0..5 {
        let mut stream = hub.subscribe(&target(&["k/{n}"]), &[]).await;
        let (events, head) = snapshot(&mut stream).await;
        assert!(!events.is_empty());
        let seq = |id: &str| {
            id.strip_prefix("urn:tidings:")
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        let head_seq = seq(&head);
        for pair in events.windows(2) {
            assert!(seq(&pair[0].last_event_id) < seq(&pair[1].last_event_id));
        }
        assert!(seq(&events.last().unwrap().last_event_id) <= head_seq);
        let live = stream.events(30).await;
        assert!(
            live.iter().all(|e| seq(&e.last_event_id) > head_seq),
            "round {round}"
        );
        let mut resumed = hub
            .subscribe(&target(&["k/{n}"]), &[("Last-Event-ID", &head)])
            .await;
        assert_eq!(resumed.header("last-event-id"), Some(head.as_str()));
        let replayed = resumed.events(30).await;
        assert_eq!(replayed, live, "round {round}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let published = publisher.await.unwrap();
    assert!(published > 150, "the publisher ran alongside ({published})");
}

#[tokio::test]
async fn more_topics_than_the_limit_is_507_and_nothing_is_published() {
    let hub = TestHub::start(&["--retained-topics", "2"]).await;
    publish(&hub, &retained("a", "1")).await;
    publish(&hub, &retained("b", "1")).await;
    let refused = hub
        .publish_json(r#"[{"topic":"plain","data":"x"},{"topic":"c","data":"1","retain":true}]"#)
        .await;
    assert_eq!(refused.status, 507, "{}", refused.text());
    assert!(
        refused
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let error = refused.error();
    assert!(
        error.contains("retained updates for at most 2 topics"),
        "{error}"
    );
    // Replacing one, clearing one, ordinary publishes: all fine.
    publish(&hub, &retained("a", "2")).await;
    publish(&hub, "topic=b&retain").await;
    publish(&hub, &retained("c", "1")).await;
    let mut all = hub
        .subscribe(&target(&["*"]), &[("Last-Event-ID", "earliest")])
        .await;
    let events = all.events(5).await;
    assert_eq!(
        events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["1", "1", "2", "", "1"],
        "nothing of the refused batch"
    );
    all.no_event_within(Duration::from_millis(300)).await;
}

/// `--history-events 2` drops old events within seconds; the retained
/// update stays, and after a SIGKILL and a restart on the same directory
/// it is still there, and HEAD still resumes exactly.
#[tokio::test]
async fn retention_never_removes_them_and_they_survive_sigkill() {
    let dir = TempDir::new();
    let args = ["--history-events", "2"];
    let mut hub = TestHub::start_in(dir.path(), &args).await;
    let kept = publish(&hub, &retained("price", "42")).await;
    for i in 0..5 {
        hub.publish("noise", &i.to_string()).await;
    }
    // Retention runs every 5 seconds.
    let deadline = Instant::now() + 3 * WAIT;
    loop {
        let mut all = hub
            .subscribe(&target(&["*"]), &[("Last-Event-ID", "earliest")])
            .await;
        let mut events = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(300), all.next_event()).await
        {
            events.push(event.data);
        }
        if events == ["3", "4"] {
            break;
        }
        assert!(Instant::now() < deadline, "retention did not run");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut stream = hub.subscribe(&target(&["price"]), &[]).await;
    let (events, head) = snapshot(&mut stream).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].last_event_id.as_str(), events[0].data.as_str()),
        (kept.as_str(), "42")
    );

    hub.child.kill().await.unwrap();
    let hub = TestHub::start_in(dir.path(), &args).await;
    let mut stream = hub.subscribe(&target(&["price", "noise"]), &[]).await;
    let (events, head_after) = snapshot(&mut stream).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].last_event_id.as_str(), events[0].data.as_str()),
        (kept.as_str(), "42")
    );
    assert_eq!(head_after, head, "the newest event is the same");
    let mut resumed = hub
        .subscribe(&target(&["price", "noise"]), &[("Last-Event-ID", &head)])
        .await;
    let next = hub.publish("noise", "after").await;
    let event = resumed.next_event().await.unwrap();
    assert_eq!(
        event.last_event_id, next,
        "nothing before it, nothing twice"
    );
}
