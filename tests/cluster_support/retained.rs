//! The retained-update scenario, run against each engine: a retained
//! update published on one hub is in the snapshot of a new subscriber on
//! any other; HEAD from one hub resumes exactly on another; a hub started
//! after the log was trimmed past them still has them (from the engine's
//! own copy); clearing works across hubs; the limit refuses with 507.

use std::time::{Duration, Instant};

use tidings_codec::MessageEvent;

use super::{Engine, Kind, node};
use crate::retained_support::snapshot_within;
use crate::support::{TestHub, WAIT, encode};

const PRICES: &str = "/.well-known/mercure?topic=price%2F%7Bsymbol%7D";

async fn publish(hub: &TestHub, topic: &str, data: &str, retain: bool) -> (u16, String) {
    let mut body = format!("topic={}&data={}", encode(topic), encode(data));
    if retain {
        body.push_str("&retain");
    }
    let response = hub.publish_form(&body).await;
    (response.status, response.text())
}

/// A new subscriber's snapshot of the prices on `hub`, once it shows
/// `want` (the hub may still be following the log).
async fn prices_once(hub: &TestHub, want: &[&str]) -> (Vec<MessageEvent>, String) {
    let deadline = Instant::now() + 2 * WAIT;
    loop {
        let mut stream = hub.subscribe(PRICES, &[]).await;
        // A hub that has not followed anything yet holds no event.
        let got = snapshot_within(&mut stream, Duration::from_secs(1)).await;
        let ids: Vec<String> = got
            .iter()
            .flat_map(|(events, _)| events.iter().map(|e| e.last_event_id.clone()))
            .collect();
        if let Some((events, head)) = got
            && ids == want
        {
            return (events, head);
        }
        assert!(
            Instant::now() < deadline,
            "snapshot {ids:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn retained_across_hubs(kind: Kind) {
    let engine = Engine::start(kind).await;
    let flags = ["--history-events", "5", "--retained-topics", "3"];
    let a = node(&engine, &flags).await;
    let b = node(&engine, &flags).await;
    let (status, one) = publish(&a, "price/1", "10", true).await;
    assert_eq!(status, 200, "{one}");
    let (status, two) = publish(&b, "price/2", "20", true).await;
    assert_eq!(status, 200, "{two}");
    let (_, plain) = publish(&a, "price/1", "not retained", false).await;

    // Published on A and B, in the snapshot on both, in order, with HEAD.
    for hub in [&a, &b] {
        let (events, head) = prices_once(hub, &[&one, &two]).await;
        assert_eq!(events[0].data, "10");
        assert_eq!(events[1].data, "20");
        assert_eq!(head, plain);
    }
    // HEAD from B resumes exactly on A.
    let (_, head) = prices_once(&b, &[&one, &two]).await;
    let (_, next) = publish(&b, "price/3", "30", false).await;
    let mut resumed = a.subscribe(PRICES, &[("Last-Event-ID", &head)]).await;
    assert_eq!(resumed.header("last-event-id"), Some(head.as_str()));
    assert_eq!(resumed.next_event().await.unwrap().last_event_id, next);
    resumed.no_event_within(Duration::from_millis(300)).await;

    // The log is trimmed far past them (Redis trims whole blocks of 100).
    for i in 0..300 {
        let (status, _) = publish(&a, "noise", &i.to_string(), false).await;
        assert_eq!(status, 200);
    }
    let mut earliest = a
        .subscribe(
            "/.well-known/mercure?topic=%2A",
            &[("Last-Event-ID", "earliest")],
        )
        .await;
    let first = earliest.next_event().await.unwrap();
    assert_ne!(first.last_event_id, one, "the log no longer has them");
    // A hub started now loads them from the engine.
    let late = node(&engine, &flags).await;
    let (events, _) = prices_once(&late, &[&one, &two]).await;
    assert_eq!(events[1].data, "20");

    // Cleared on the late hub: gone from new snapshots everywhere.
    let (status, cleared) = publish(&late, "price/1", "", true).await;
    assert_eq!(status, 200, "{cleared}");
    for hub in [&a, &b, &late] {
        prices_once(hub, &[&two]).await;
    }
    // Two more topics fit (3 in all); once B has followed them, a fourth
    // is refused there with 507, and nothing of it is published.
    let (_, four) = publish(&a, "price/4", "x", true).await;
    let (_, five) = publish(&a, "price/5", "x", true).await;
    prices_once(&b, &[&two, &four, &five]).await;
    let (status, body) = publish(&b, "price/6", "x", true).await;
    assert_eq!(status, 507, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("at most 3 topics"),
        "{body}"
    );
    let (_, after) = publish(&b, "price/2", "21", true).await;
    prices_once(&a, &[&four, &five, &after]).await;
    let _ = kind;
}
