//! Active subscriptions on a single hub (`--subscriptions`), against the
//! real binary: subscription events (ids, percent-encoding, payload,
//! private delivery), the subscriptions API (documents, filters, 401, 403,
//! 404, 400), `lastEventID` exactness under churn, dev mode, goodbyes at
//! shutdown, and the feature off. Cluster mode: `cluster_subscriptions.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod subscriptions_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use subscriptions_support::*;
use support::{TestHub, encode as pct, refused_to_start};

async fn hub() -> TestHub {
    TestHub::start(&["--memory", "--jwt-key", SECRET, "--subscriptions"]).await
}

const BOOKS: &str = "https://example.com/books/{id}";
/// Reserved characters of every kind, a space, a `%`, non-ASCII.
const ODD: &str = "urn:x:a b/c?d=%41&e=é#frag[1]@!$'()*+,;={x}";

#[tokio::test]
async fn connect_and_disconnect_publish_private_subscription_events() {
    let hub = hub().await;
    let mut watcher = watch(&hub, None).await;
    // Its own subscription comes first.
    let (_, own) = next_doc(&mut watcher).await;
    assert_eq!(own["topic"], TEMPLATE);
    let own = own["subscriber"].as_str().unwrap().to_owned();

    // Who must not see them: anonymous, and a token that does not cover
    // the subscription topics.
    let mut anonymous = open(&hub, &["*"], None, None).await;
    let books_only = token(&[BOOKS], None);
    let mut uncovered = open(&hub, &[TEMPLATE, "*"], Some(&books_only), None).await;
    // Their own connections' events: one selector, then two.
    let mut known = vec![own.clone()];
    for _ in 0..3 {
        let (_, doc) = next_doc(&mut watcher).await;
        known.push(doc["subscriber"].as_str().unwrap().to_owned());
    }
    let known: Vec<&str> = known.iter().map(String::as_str).collect();

    let payload = json!({"user": "https://example.com/users/ann", "n": [1, 2]});
    let subscriber_token = token(&[], Some(payload.clone()));
    let subscriber = open(&hub, &[BOOKS, ODD, BOOKS], Some(&subscriber_token), None).await;
    let first = next_new_subscriber(&mut watcher, &known).await;
    let id = first["subscriber"].as_str().unwrap().to_owned();
    assert!(is_uuid_v4_urn(&id), "{id}");
    let mut active = vec![first];
    active.extend(docs_of(&mut watcher, &id, 1).await);
    let by_topic: BTreeMap<String, Value> = active
        .iter()
        .map(|d| (d["topic"].as_str().unwrap().to_owned(), d.clone()))
        .collect();
    assert_eq!(
        by_topic.len(),
        2,
        "one event per distinct selector: {active:#?}"
    );
    for topic in [BOOKS, ODD] {
        let expected = json!({
            "@context": "https://mercure.rocks/",
            "id": expected_id(topic, &id),
            "type": "Subscription",
            "topic": topic,
            "subscriber": id,
            "active": true,
            "payload": payload,
        });
        assert_eq!(by_topic[topic], expected);
    }
    // Every reserved character encoded, `%` too.
    let odd_id = by_topic[ODD]["id"].as_str().unwrap();
    assert!(odd_id.contains("urn%3Ax%3Aa%20b%2Fc%3Fd%3D%2541%26e%3D%C3%A9%23frag%5B1%5D%40%21%24%27%28%29%2A%2B%2C%3B%3D%7Bx%7D/urn%3Auuid%3A"), "{odd_id}");

    drop(subscriber);
    let inactive = docs_of(&mut watcher, &id, 2).await;
    for doc in &inactive {
        let topic = doc["topic"].as_str().unwrap();
        let mut expected = by_topic[topic].clone();
        expected["active"] = json!(false);
        assert_eq!(doc, &expected);
    }
    // Private: nobody else saw any of it.
    anonymous.no_event_within(Duration::from_millis(300)).await;
    uncovered.no_event_within(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn the_api_lists_filters_and_authorizes() {
    let hub = hub().await;
    let watcher = watcher_token();
    // Nothing published yet: `earliest`.
    let (last, subs) = list(&hub).await;
    assert_eq!(last, "earliest");
    assert!(subs.is_empty());

    let payload = json!({"room": 7});
    let subscriber_token = token(&[], Some(payload.clone()));
    let subscriber = open(&hub, &[BOOKS, ODD], Some(&subscriber_token), None).await;
    let subs = until_listed(&hub, Duration::from_secs(5), |s| s.len() == 2).await;
    let doc = subs.values().find(|d| d["topic"] == BOOKS).unwrap().clone();
    let id = doc["subscriber"].as_str().unwrap().to_owned();
    assert_eq!(
        doc,
        json!({
            "id": expected_id(BOOKS, &id),
            "type": "Subscription",
            "topic": BOOKS,
            "subscriber": id,
            "active": true,
            "payload": payload,
        })
    );

    // lastEventID is the newest event's id.
    let publisher = format!("Bearer {}", token(&[], None));
    let newest = hub
        .request(
            "POST",
            "/.well-known/mercure",
            &[
                ("Authorization", &publisher),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            b"topic=https%3A%2F%2Fexample.com%2Fother&data=x",
        )
        .await
        .text();
    assert!(newest.starts_with("urn:tidings:"), "{newest}");
    let response = get(&hub, API, Some(&watcher)).await;
    let body = response.json();
    assert_eq!(body["@context"], "https://mercure.rocks/");
    assert_eq!(body["id"], API);
    assert_eq!(body["lastEventID"], newest.as_str());

    // One topic's collection, one subscription.
    let path = format!("{API}/{}", pct(ODD));
    let response = get(&hub, &path, Some(&watcher)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["id"], path.as_str());
    assert_eq!(body["lastEventID"], newest.as_str());
    let only: Vec<&Value> = body["subscriptions"].as_array().unwrap().iter().collect();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["topic"], ODD);
    let single = expected_id(BOOKS, &id);
    let response = get(&hub, &single, Some(&watcher)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/ld+json"));
    let mut expected = doc.clone();
    expected["@context"] = json!("https://mercure.rocks/");
    expected["lastEventID"] = json!(newest);
    assert_eq!(response.json(), expected);
    let empty = get(&hub, &format!("{API}/nobody"), Some(&watcher)).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json()["subscriptions"], json!([]));

    // Refusals, each with a JSON error.
    let exact_only = token(&[API], None);
    let wrong_key = {
        let claims = json!({"mercure": {"subscribe": [TEMPLATE]}});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"another secret"),
        )
        .unwrap()
    };
    let unknown = expected_id(BOOKS, "urn:uuid:00000000-0000-4000-8000-000000000000");
    let cases: Vec<(String, Option<String>, u16)> = vec![
        (API.into(), None, 401),
        (API.into(), Some(wrong_key), 401),
        (API.into(), Some(exact_only.clone()), 200),
        (single.clone(), Some(exact_only), 403),
        (single.clone(), Some(token(&[BOOKS], None)), 403),
        (unknown, Some(watcher.clone()), 404),
        (format!("{API}/"), Some(watcher.clone()), 400),
        (format!("{API}/%zz"), Some(watcher.clone()), 400),
        (format!("{API}/a/%C3%28"), Some(watcher.clone()), 400),
        (format!("{API}/a/b/c"), Some(watcher.clone()), 404),
    ];
    for (path, token, status) in cases {
        let response = get(&hub, &path, token.as_deref()).await;
        assert_eq!(response.status, status, "{path}: {}", response.text());
        if status != 200 {
            assert!(response.json()["error"].is_string(), "{path}");
        }
    }
    let post = hub
        .request(
            "POST",
            API,
            &[("Authorization", &format!("Bearer {watcher}"))],
            b"",
        )
        .await;
    assert_eq!(post.status, 405);
    assert!(post.json()["error"].is_string());

    // Gone once it leaves.
    drop(subscriber);
    until_listed(&hub, Duration::from_secs(5), BTreeMap::is_empty).await;
    let response = get(&hub, &single, Some(&watcher)).await;
    assert_eq!(response.status, 404);
}

/// Fetch the list, then subscribe from its `lastEventID`: applying the
/// events to the list gives the true list, whatever happened meanwhile.
/// Readers start at random moments while subscribers come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_then_subscribe_from_last_event_id_loses_nothing() {
    let hub = std::sync::Arc::new(hub().await);
    let mut churners = Vec::new();
    for c in 0..3u64 {
        let hub = std::sync::Arc::clone(&hub);
        churners.push(tokio::spawn(async move {
            let mut open_now = Vec::new();
            for i in 0..40u64 {
                let selectors = [format!("t/{c}/{i}"), format!("shared/{}", i % 3)];
                let selectors: Vec<&str> = selectors.iter().map(String::as_str).collect();
                open_now.push(open(&hub, &selectors, None, None).await);
                if (i + c) % 3 != 0 {
                    open_now.remove(0);
                }
                tokio::time::sleep(Duration::from_millis(3 + (i * 7 + c) % 11)).await;
            }
            open_now
        }));
    }
    let mut readers = Vec::new();
    for r in 0..5u64 {
        tokio::time::sleep(Duration::from_millis(40 + r * 30)).await;
        let (last, subs) = list(&hub).await;
        let stream = watch(&hub, Some(&last)).await;
        readers.push((subs, stream));
    }
    let mut kept = Vec::new();
    for churner in churners {
        kept.push(churner.await.unwrap());
    }
    // Quiet now: the true list, and the id of the last event.
    let mut truth = list(&hub).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = list(&hub).await;
        if again == truth {
            break;
        }
        truth = again;
    }
    let (final_id, final_subs) = truth;
    assert!(
        final_subs.len() >= 5,
        "readers and kept subscribers are listed"
    );
    for (n, (mut subs, mut stream)) in readers.into_iter().enumerate() {
        loop {
            let (event_id, doc) = next_doc(&mut stream).await;
            let id = doc["id"].as_str().unwrap().to_owned();
            if doc["active"] == true {
                let mut listed = doc.clone();
                listed.as_object_mut().unwrap().remove("@context");
                subs.insert(id, listed);
            } else {
                subs.remove(&id);
            }
            if event_id == final_id {
                break;
            }
        }
        assert_eq!(subs, final_subs, "reader {n}");
    }
    drop(kept);
}

#[tokio::test]
async fn off_by_default_the_api_is_404_and_nothing_is_published() {
    let hub = TestHub::start(&["--memory", "--jwt-key", SECRET]).await;
    let mut watcher = watch(&hub, None).await;
    let _subscriber = open(&hub, &[BOOKS], None, None).await;
    for path in [
        API.to_owned(),
        format!("{API}/{}", pct(BOOKS)),
        expected_id(BOOKS, "urn:uuid:1"),
    ] {
        let response = get(&hub, &path, Some(&watcher_token())).await;
        assert_eq!(response.status, 404, "{path}");
        assert!(response.error().contains("--subscriptions"), "{path}");
    }
    watcher.no_event_within(Duration::from_millis(500)).await;
}

/// Without a subscriber key the API answers loopback clients only (as
/// dev mode publishing does); behind a trusted proxy, by the forwarded
/// client.
#[tokio::test]
async fn dev_mode_answers_loopback_clients_only() {
    let hub = TestHub::start(&[
        "--memory",
        "--subscriptions",
        "--trusted-proxy",
        "127.0.0.1",
    ])
    .await;
    let local = hub.request("GET", API, &[], b"").await;
    assert_eq!(local.status, 200, "{}", local.text());
    let remote = hub
        .request("GET", API, &[("X-Forwarded-For", "192.0.2.7")], b"")
        .await;
    assert_eq!(remote.status, 403);
    assert!(remote.error().contains("loopback"));
}

/// A hub that stops (SIGTERM) reports its subscriptions inactive first:
/// the durable history has the goodbye for whoever resumes later.
#[tokio::test]
async fn shutdown_reports_every_subscription_inactive() {
    let dir = support::TempDir::new();
    let args = ["--jwt-key", SECRET, "--subscriptions"];
    let mut hub = TestHub::start_in(dir.path(), &args).await;
    let _subscriber = open(&hub, &[BOOKS], None, None).await;
    until_listed(&hub, Duration::from_secs(5), |s| s.len() == 1).await;
    hub.terminate().await;
    let hub = TestHub::start_in(dir.path(), &args).await;
    let mut watcher = watch(&hub, Some("earliest")).await;
    let (_, on) = next_doc(&mut watcher).await;
    let (_, off) = next_doc(&mut watcher).await;
    assert_eq!(
        (on["topic"].as_str(), on["active"].as_bool()),
        (Some(BOOKS), Some(true))
    );
    assert_eq!(off["id"], on["id"]);
    assert_eq!(off["active"], false);
}

#[tokio::test]
async fn bad_node_ttl_stops_the_start() {
    let stderr = refused_to_start(&["--subscriptions", "--node-ttl", "1"], &[]).await;
    assert!(stderr.contains("--node-ttl"), "{stderr}");
}
