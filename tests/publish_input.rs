//! Publish bodies at the edges, against the real binary: JSON nested far
//! too deep (in `data` or around the update) is refused with a JSON error
//! and reaches nobody; form fields are read as the Mercure hub reads them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use support::{TestHub, target};
use tidings_codec::Item;

/// `depth` nested arrays.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn assert_json_error(response: &support::Response, status: u16, needle: &str) -> String {
    assert_eq!(response.status, status, "{}", response.text());
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        response.headers
    );
    let message = response.error();
    assert!(message.contains(needle), "{message}");
    message
}

#[tokio::test]
async fn json_nested_too_deep_is_refused_in_data_as_around_it() {
    let hub = TestHub::start(&[]).await;
    let mut live = hub.subscribe(&target(&["deep"]), &[]).await;
    assert_eq!(live.status, 200);

    // 100,000 levels inside `data` (200 KB, under the 1 MiB body limit):
    // once accepted and fanned out, because `data` is kept raw.
    let in_data = format!(r#"{{"topic":"deep","data":{}}}"#, nested(100_000));
    let refused = hub.publish_json(&in_data).await;
    let data_error = assert_json_error(&refused, 400, "nest more than 127 levels");
    // The same nesting around the update, and in a batch's second update.
    let around = hub.publish_json(&nested(100_000)).await;
    let around_error = assert_json_error(&around, 400, "nest more than 127 levels");
    let batch = format!(
        r#"[{{"topic":"deep","data":"fine"}},{{"topic":"deep","data":{}}}]"#,
        nested(100_000)
    );
    assert_json_error(&hub.publish_json(&batch).await, 400, "nest");
    // Refused the same way, wherever the nesting is.
    let kind = |m: &str| m.split(" (at byte").next().unwrap_or_default().to_owned();
    assert_eq!(kind(&data_error), kind(&around_error));

    // Nesting within the limit goes through unchanged, and is the first
    // thing the subscriber sees: nothing of the refused bodies was
    // delivered (the batch's first update neither: all or nothing).
    let fine = format!(r#"{{"topic":"deep","data":{}}}"#, nested(100));
    let accepted = hub.publish_json(&fine).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let event = live.next_event().await.unwrap();
    assert_eq!(event.data, nested(100));
    assert_eq!(event.last_event_id, accepted.text());
    live.no_event_within(Duration::from_millis(200)).await;

    // Nor stored: a replay of everything holds only the accepted one.
    let mut replay = hub
        .subscribe(&target(&["deep"]), &[("Last-Event-ID", "earliest")])
        .await;
    assert_eq!(replay.next_event().await.unwrap().data, nested(100));
    replay.no_event_within(Duration::from_millis(200)).await;
    assert_eq!(hub.request("GET", "/healthz", &[], b"").await.status, 200);
}

#[tokio::test]
async fn form_fields_are_read_as_mercure_reads_them() {
    let hub = TestHub::start(&[]).await;
    let mut live = hub.subscribe(&target(&["form"]), &[]).await;
    assert_eq!(live.status, 200);

    // The first `data` (and `type`, `id`) wins; an empty `retry` is no
    // retry, not an error.
    let published = hub
        .publish_form("topic=form&data=first&data=second&type=a&type=b&id=one&id=two&retry=")
        .await;
    assert_eq!(published.status, 200, "{}", published.text());
    assert_eq!(published.text(), "one");
    let mut items = Vec::new();
    let event = loop {
        match live.next_item().await.unwrap() {
            Item::Event(event) => break event,
            other => items.push(other),
        }
    };
    assert_eq!(
        (event.event_type.as_str(), event.data.as_str()),
        ("a", "first")
    );
    assert_eq!(event.last_event_id, "one");
    // The only `retry:` is the one the stream opened with.
    assert!(
        items.iter().filter(|i| matches!(i, Item::Retry(_))).count() <= 1,
        "{items:?}"
    );
    assert!(!String::from_utf8_lossy(&live.raw).contains("retry: 0"));

    // A retry that is not a number is still refused.
    let bad = hub.publish_form("topic=form&retry=soon").await;
    assert_json_error(&bad, 400, "retry");
    live.no_event_within(Duration::from_millis(200)).await;
}
