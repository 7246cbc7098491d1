//! Shared pieces of the active-subscriptions tests (`subscriptions.rs`,
//! `cluster_subscriptions.rs`): tokens, watchers of subscription events,
//! the API, and an independent expansion of the documents' ids.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

pub use crate::support::target;
use crate::support::{Response, Stream, TestHub, encode as pct};

pub const SECRET: &str = "test-secret-for-tidings-0123456789";
pub const API: &str = "/.well-known/mercure/subscriptions";
/// The selector that covers every subscription event and every API path.
pub const TEMPLATE: &str = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";

pub fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A subscriber token with `mercure.subscribe` = `subscribe`, and
/// `mercure.payload` when given.
pub fn token(subscribe: &[&str], payload: Option<Value>) -> String {
    let mut mercure = json!({ "subscribe": subscribe, "publish": ["*"] });
    if let Some(payload) = payload {
        mercure["payload"] = payload;
    }
    hs256(&json!({ "mercure": mercure }))
}

/// The token of a watcher of every subscription.
pub fn watcher_token() -> String {
    token(&[TEMPLATE], None)
}

/// Opens a stream on `hub` to `selectors` with `token` (if any), from
/// `last` (if any).
pub async fn open(
    hub: &TestHub,
    selectors: &[&str],
    token: Option<&str>,
    last: Option<&str>,
) -> Stream {
    let mut target = target(selectors);
    if let Some(last) = last {
        target.push_str(&format!("&lastEventID={}", pct(last)));
    }
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers = authorization(bearer.as_deref());
    let stream = hub.subscribe(&target, &headers).await;
    assert_eq!(stream.status, 200);
    stream
}

/// The `Authorization` header carrying `bearer` (`Bearer …`), if any.
fn authorization(bearer: Option<&str>) -> Vec<(&str, &str)> {
    bearer.map(|b| ("Authorization", b)).into_iter().collect()
}

/// A watcher of every subscription event on `hub`.
pub async fn watch(hub: &TestHub, last: Option<&str>) -> Stream {
    open(hub, &[TEMPLATE], Some(&watcher_token()), last).await
}

/// The next subscription event: its SSE id and its document.
pub async fn next_doc(stream: &mut Stream) -> (String, Value) {
    let event = stream.next_event().await.expect("the stream ended");
    let doc: Value =
        serde_json::from_str(&event.data).unwrap_or_else(|e| panic!("{e}: {}", event.data));
    (event.last_event_id, doc)
}

/// The next `n` subscription events whose subscriber is `subscriber`
/// (others are skipped), each as (topic, active, document).
pub async fn docs_of(stream: &mut Stream, subscriber: &str, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        let (_, doc) = next_doc(stream).await;
        if doc["subscriber"] == subscriber {
            out.push(doc);
        }
    }
    out
}

/// The next subscription event of a subscriber other than `known`.
pub async fn next_new_subscriber(stream: &mut Stream, known: &[&str]) -> Value {
    loop {
        let (_, doc) = next_doc(stream).await;
        if !known.iter().any(|k| doc["subscriber"] == *k) {
            return doc;
        }
    }
}

/// The expansion of `/.well-known/mercure/subscriptions/{topic}/{subscriber}`
/// (by the test's own encoder: everything but unreserved characters).
pub fn expected_id(topic: &str, subscriber: &str) -> String {
    format!("{API}/{}/{}", pct(topic), pct(subscriber))
}

/// `GET path` on the API with `token`.
pub async fn get(hub: &TestHub, path: &str, token: Option<&str>) -> Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers = authorization(bearer.as_deref());
    hub.request("GET", path, &headers, b"").await
}

/// The collection at `API` on `hub`: (lastEventID, id → document).
pub async fn list(hub: &TestHub) -> (String, BTreeMap<String, Value>) {
    let response = get(hub, API, Some(&watcher_token())).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/ld+json"));
    let body = response.json();
    assert_eq!(body["type"], "Subscriptions");
    let subs = body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), d.clone()))
        .collect();
    (body["lastEventID"].as_str().unwrap().to_owned(), subs)
}

/// Polls the list on `hub` until `check` holds (within `within`).
pub async fn until_listed(
    hub: &TestHub,
    within: Duration,
    mut check: impl FnMut(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (_, subs) = list(hub).await;
        if check(&subs) {
            return subs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the list never came right: {subs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `id` looks like `urn:uuid:` + a version 4 UUID.
pub fn is_uuid_v4_urn(id: &str) -> bool {
    let Some(hex) = id.strip_prefix("urn:uuid:") else {
        return false;
    };
    let parts: Vec<&str> = hex.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && hex
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && parts[2].starts_with('4')
        && matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b'))
}
