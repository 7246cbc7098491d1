//! The hub over real HTTP: the `tidings` binary on a free loopback port.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use support::{HUB, TestHub, encode, target as sub_target};
use tidings_codec::Item;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

#[tokio::test]
async fn stream_opens_with_headers_comment_and_retry() {
    let hub = TestHub::start(&["--retry-ms", "1500"]).await;
    let mut stream = hub.subscribe(&sub_target(&["a"]), &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.header("cache-control"), Some("no-cache"));
    assert_eq!(stream.header("x-accel-buffering"), Some("no"));
    assert_eq!(stream.header("last-event-id"), None, "no resumption asked");
    // Flushed at once, before any event exists.
    assert!(matches!(stream.next_item().await, Some(Item::Comment(_))));
    assert_eq!(stream.next_item().await, Some(Item::Retry(1500)));
}

#[tokio::test]
async fn form_publish_reaches_subscribers_with_id_type_and_lines() {
    let hub = TestHub::start(&[]).await;
    let mut stream = hub.subscribe(&sub_target(&["books/{id}"]), &[]).await;
    let mut other = hub.subscribe(&sub_target(&["movies/{id}"]), &[]).await;
    let response = hub
        .publish_form("topic=books%2F7&data=line+1%0D%0Aline+2%0Dline+3&type=update")
        .await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let id = response.text();
    assert!(id.starts_with("urn:tidings:"), "{id}");
    let event = stream.next_event().await.unwrap();
    assert_eq!(event.event_type, "update");
    assert_eq!(event.data, "line 1\nline 2\nline 3");
    assert_eq!(event.last_event_id, id);
    other.no_event_within(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn selectors_and_alternate_topics() {
    let hub = TestHub::start(&[]).await;
    let mut exact = hub
        .subscribe(&sub_target(&["https://example.com/a"]), &[])
        .await;
    let mut several = hub
        .subscribe(&sub_target(&["nope", "https://example.com/{x}"]), &[])
        .await;
    let mut any = hub.subscribe(&sub_target(&["*"]), &[]).await;
    let mut alternate = hub
        .subscribe(&format!("/events?topic={}", encode("alt")), &[])
        .await;
    let response = hub
        .publish_form(&format!(
            "topic={}&topic=alt&data=one",
            encode("https://example.com/a")
        ))
        .await;
    assert_eq!(response.status, 200);
    hub.publish("https://example.com/a/deeper", "two").await;
    assert_eq!(exact.next_event().await.unwrap().data, "one");
    assert_eq!(alternate.next_event().await.unwrap().data, "one");
    let got: Vec<String> = any.events(2).await.into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["one", "two"]);
    assert_eq!(several.next_event().await.unwrap().data, "one");
    several.no_event_within(Duration::from_millis(300)).await;
    exact.no_event_within(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn json_publish_single_batch_and_structured_data() {
    let hub = TestHub::start(&[]).await;
    let mut stream = hub.subscribe(&sub_target(&["j"]), &[]).await;
    let one = hub
        .publish_json(r#"{"topic":"j","data":{"price": 1.50, "s": "a b"},"type":"tick"}"#)
        .await;
    assert_eq!(one.status, 200, "{}", one.text());
    let batch = hub
        .publish_json(
            r#"[{"topic":["x","j"],"data":"first"},{"topic":"j","data":"second","id":"b-2"}]"#,
        )
        .await;
    assert_eq!(batch.status, 200, "{}", batch.text());
    let ids: Vec<String> = batch.text().lines().map(String::from).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], "b-2");
    let events = stream.events(3).await;
    assert_eq!(events[0].data, r#"{"price":1.50,"s":"a b"}"#);
    assert_eq!(events[0].event_type, "tick");
    assert_eq!(events[1].data, "first");
    assert_eq!(events[1].last_event_id, ids[0]);
    assert_eq!(events[2].last_event_id, "b-2");
}

#[tokio::test]
async fn resume_from_header_query_and_earliest() {
    let hub = TestHub::start(&[]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(hub.publish("r", &format!("e{i}")).await);
    }
    // The header.
    let mut stream = hub
        .subscribe(&sub_target(&["r"]), &[("Last-Event-ID", &ids[1])])
        .await;
    assert_eq!(stream.header("last-event-id"), Some(ids[1].as_str()));
    let got: Vec<String> = stream.events(3).await.into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["e2", "e3", "e4"]);
    // Then live, with no duplicate where the two meet.
    hub.publish("r", "e5").await;
    assert_eq!(stream.next_event().await.unwrap().data, "e5");
    stream.no_event_within(Duration::from_millis(200)).await;

    // The query parameter; the header wins when both are there.
    let target = format!("{}&lastEventID={}", sub_target(&["r"]), encode(&ids[3]));
    let mut by_query = hub.subscribe(&target, &[]).await;
    assert_eq!(by_query.next_event().await.unwrap().data, "e4");
    let mut both = hub.subscribe(&target, &[("Last-Event-ID", &ids[0])]).await;
    assert_eq!(both.header("last-event-id"), Some(ids[0].as_str()));
    assert_eq!(both.next_event().await.unwrap().data, "e1");

    // earliest.
    let mut all = hub
        .subscribe(&sub_target(&["r"]), &[("Last-Event-ID", "earliest")])
        .await;
    assert_eq!(all.header("last-event-id"), Some("earliest"));
    let got: Vec<String> = all.events(6).await.into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["e0", "e1", "e2", "e3", "e4", "e5"]);
}

#[tokio::test]
async fn unknown_ids_replay_everything_and_say_so() {
    let hub = TestHub::start(&[]).await;
    hub.publish("g", "kept").await;
    let mut stream = hub
        .subscribe(&sub_target(&["g"]), &[("Last-Event-ID", "who-knows")])
        .await;
    assert_eq!(stream.header("last-event-id"), Some("earliest"));
    let gap = stream.next_event().await.unwrap();
    assert_eq!(gap.event_type, "tidings.gap");
    let notice: serde_json::Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(notice["lastEventId"], "who-knows");
    assert_eq!(gap.last_event_id, "", "the notice carries no id");
    assert_eq!(stream.next_event().await.unwrap().data, "kept");
}

#[tokio::test]
async fn publisher_ids_are_sse_ids_and_idempotent() {
    let hub = TestHub::start(&[]).await;
    let mut stream = hub.subscribe(&sub_target(&["p"]), &[]).await;
    let first = hub.publish_form("topic=p&data=x&id=order-1").await;
    assert_eq!((first.status, first.text()), (200, "order-1".to_owned()));
    let retry = hub.publish_form("topic=p&data=x&id=order-1").await;
    assert_eq!((retry.status, retry.text()), (200, "order-1".to_owned()));
    let conflict = hub.publish_form("topic=p&data=changed&id=order-1").await;
    assert_eq!(conflict.status, 409);
    assert!(conflict.error().contains("order-1"));
    hub.publish("p", "next").await;
    let events = stream.events(2).await;
    assert_eq!(events[0].last_event_id, "order-1");
    assert_eq!(events[1].data, "next", "the retry was not delivered again");
    let mut resumed = hub
        .subscribe(&sub_target(&["p"]), &[("Last-Event-ID", "order-1")])
        .await;
    assert_eq!(resumed.next_event().await.unwrap().data, "next");
}

#[tokio::test]
async fn bad_input_gets_a_status_and_a_json_error() {
    let hub = TestHub::start(&["--max-body", "1000", "--max-selectors", "3"]).await;
    let cases: Vec<(support::Response, u16)> = vec![
        (hub.publish_form("data=no-topic").await, 400),
        (hub.publish_form("topic=t&type=a%0Adata:%20evil").await, 400),
        (hub.publish_form("topic=t&id=a%0Db").await, 400),
        (hub.publish_form("topic=t&id=a%00b").await, 400),
        (hub.publish_form("topic=t&id=%23reserved").await, 400),
        (hub.publish_form("topic=t&retry=soon").await, 400),
        (
            hub.publish_form(&format!("topic=t&data={}", "x".repeat(2000)))
                .await,
            413,
        ),
        (
            hub.request("POST", HUB, &[("Content-Type", "text/plain")], b"x")
                .await,
            415,
        ),
        (hub.request("POST", HUB, &[], b"topic=t").await, 415),
        (hub.publish_json(r#"{"topic": 7}"#).await, 400),
        (hub.publish_json("[]").await, 400),
        (hub.publish_json("not json").await, 400),
        (
            hub.request("GET", &sub_target(&["a", "b", "c", "d"]), &[], b"")
                .await,
            400,
        ),
        (hub.request("GET", HUB, &[], b"").await, 400),
        (hub.request("GET", "/nowhere", &[], b"").await, 404),
        (hub.request("DELETE", HUB, &[], b"").await, 405),
    ];
    for (i, (response, status)) in cases.iter().enumerate() {
        assert_eq!(
            response.status,
            *status,
            "case {i}: {}",
            String::from_utf8_lossy(&response.body)
        );
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "case {i}"
        );
        assert!(
            response.json()["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "case {i}"
        );
    }
    // Nothing of the refused publishes was stored.
    let mut all = hub
        .subscribe(&sub_target(&["t"]), &[("Last-Event-ID", "earliest")])
        .await;
    all.no_event_within(Duration::from_millis(300)).await;

    // Malformed requests are answered by the HTTP layer; the hub lives on.
    for garbage in [
        &b"\x00\x01\x02 nonsense\r\n\r\n"[..],
        b"GET /events?topic=a HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(hub.addr).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(
            support::WAIT,
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut out),
        )
        .await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    }
    assert_eq!(hub.request("GET", "/healthz", &[], b"").await.status, 200);
}

#[tokio::test]
async fn private_updates_do_not_reach_anonymous_subscribers() {
    let hub = TestHub::start(&[]).await;
    let mut stream = hub.subscribe(&sub_target(&["*"]), &[]).await;
    assert_eq!(
        hub.publish_form("topic=s&data=secret&private=on")
            .await
            .status,
        200
    );
    hub.publish("s", "public").await;
    assert_eq!(stream.next_event().await.unwrap().data, "public");
    let mut replay = hub
        .subscribe(&sub_target(&["s"]), &[("Last-Event-ID", "earliest")])
        .await;
    assert_eq!(replay.next_event().await.unwrap().data, "public");
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_without_slowing_anyone() {
    let hub = TestHub::start(&["--subscriber-queue", "16"]).await;
    let big = "y".repeat(16 * 1024);
    // Never reads after the head.
    let stalled = hub.subscribe(&sub_target(&["q"]), &[]).await;
    let mut reader = hub.subscribe(&sub_target(&["q"]), &[]).await;
    let reader_task = tokio::spawn(async move {
        let mut n = 0;
        while n < 300 {
            let event = reader.next_event().await.unwrap();
            assert_eq!(event.data.len(), 16 * 1024);
            n += 1;
        }
        n
    });
    for _ in 0..300 {
        hub.publish("q", &big).await;
    }
    assert_eq!(reader_task.await.unwrap(), 300);
    assert!(hub.metric("tidings_slow_consumer_drops_total").await >= 1.0);
    drop(stalled);
}

/// Stuck readers pin at most `--subscriber-queue-bytes` of events each:
/// with 1 MB events and a 4 MiB bound, 200 MB go through while the hub's
/// memory stays far below that, and a reading subscriber gets every event.
#[tokio::test]
async fn stuck_readers_are_bounded_in_bytes() {
    let hub = TestHub::start(&[
        "--memory",
        "--history-bytes",
        "8388608",
        "--max-body",
        "2000000",
        "--subscriber-queue-bytes",
        "4194304",
    ])
    .await;
    let pid = hub.child.id().unwrap();
    let rss_kib = move || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    let target = sub_target(&["big"]);
    let mut stuck = Vec::new();
    for _ in 0..3 {
        stuck.push(hub.subscribe(&target, &[]).await);
    }
    let mut reader = hub.subscribe(&target, &[]).await;
    let big = "z".repeat(1_000_000);
    let mut peak = 0;
    for i in 0..200 {
        let id = hub.publish("big", &big).await;
        let event = reader.next_event().await.unwrap();
        assert_eq!(event.last_event_id, id, "event {i}");
        assert_eq!(event.data.len(), big.len());
        peak = peak.max(rss_kib());
    }
    assert!(
        peak < 150 * 1024,
        "the hub held {peak} KiB at its peak while 200 MB went through"
    );
    assert!(hub.metric("tidings_slow_consumer_drops_total").await >= 3.0);
    drop(stuck);
}

#[tokio::test]
async fn heartbeats_keep_idle_streams_alive() {
    let hub = TestHub::start(&["--heartbeat", "1"]).await;
    let mut stream = hub.subscribe(&sub_target(&["idle"]), &[]).await;
    let mut comments = 0;
    let start = tokio::time::Instant::now();
    while comments < 2 {
        if let Some(Item::Comment(_)) = stream.next_item().await {
            comments += 1;
        }
    }
    // The opening comment, then a heartbeat after about a second.
    assert!(start.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn closed_connections_free_their_subscriptions() {
    let hub = TestHub::start(&[]).await;
    for round in 0..5 {
        let mut streams = Vec::new();
        for i in 0..40 {
            streams.push(
                hub.subscribe(&sub_target(&[&format!("c{i}"), "c/{x}"]), &[])
                    .await,
            );
        }
        assert_eq!(
            hub.metric("tidings_subscriptions").await,
            40.0,
            "round {round}"
        );
        drop(streams);
        let mut left = 40.0;
        for _ in 0..100 {
            left = hub.metric("tidings_subscriptions").await;
            if left == 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(left, 0.0, "round {round}");
    }
}

#[tokio::test]
async fn subscribe_on_a_kept_alive_connection_goes_through_hyper() {
    let hub = TestHub::start(&[]).await;
    let mut stream = TcpStream::connect(hub.addr).await.unwrap();
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", hub.addr).as_bytes())
        .await
        .unwrap();
    // Read the health response fully (it has a Content-Length).
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 1024];
        let n = tokio::io::AsyncReadExt::read(&mut stream, &mut chunk)
            .await
            .unwrap();
        buf.extend_from_slice(&chunk[..n]);
        if String::from_utf8_lossy(&buf).contains("\"ok\"") {
            break;
        }
    }
    let mut events = support::Stream::send(
        stream,
        hub.addr,
        &sub_target(&["k"]),
        &[("Last-Event-ID", "earliest")],
    )
    .await;
    assert_eq!(events.header("transfer-encoding"), Some("chunked"));
    assert_eq!(events.header("last-event-id"), Some("earliest"));
    hub.publish("k", "through hyper").await;
    assert_eq!(events.next_event().await.unwrap().data, "through hyper");
}

#[tokio::test]
async fn sigterm_flushes_ends_streams_and_exits_cleanly() {
    let mut hub = TestHub::start(&[]).await;
    let mut stream = hub.subscribe(&sub_target(&["z"]), &[]).await;
    let id = hub.publish("z", "before shutdown").await;
    let status = hub.terminate().await;
    assert!(status.success(), "{status:?}");
    let events = stream.until_end().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].last_event_id, id);
}

#[tokio::test]
async fn health_and_metrics() {
    let hub = TestHub::start(&[]).await;
    let health = hub.request("GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let mut stream = hub.subscribe(&sub_target(&["m"]), &[]).await;
    hub.publish("m", "x").await;
    stream.next_event().await.unwrap();
    let metrics = hub.request("GET", "/metrics", &[], b"").await;
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text();
    for name in [
        "tidings_connections",
        "tidings_subscriptions",
        "tidings_events_published_total",
        "tidings_events_delivered_total",
        "tidings_events_replayed_total",
        "tidings_slow_consumer_drops_total",
        "tidings_publish_to_write_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    assert_eq!(hub.metric("tidings_events_published_total").await, 1.0);
    assert!(hub.metric("tidings_events_delivered_total").await >= 1.0);
}
