//! What the client sends: method, headers, body and `Last-Event-ID`, on the
//! first request and on every reconnection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::{Framing, PATIENCE, Server};
use futures_util::StreamExt as _;
use tidings_client::{ConfigError, EventSource, Method, Sse};

const SSE: Option<&str> = Some("text/event-stream; charset=utf-8");

/// Reads items until `n` connections have opened.
async fn until_opened(source: &mut EventSource, n: usize) {
    let mut opened = 0;
    while opened < n {
        match tokio::time::timeout(PATIENCE, source.next()).await.unwrap() {
            Some(Ok(Sse::Open(_))) => opened += 1,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn get_sends_accept_cache_control_and_custom_headers() {
    let server = Server::bind().await;
    let mut source = EventSource::builder(&server.url("/s?topic=a"))
        .header("header-name-1", "value-1")
        .header("X-Multi", "one")
        .header("X-Multi", "two")
        .header("Cache-Control", "no-store")
        .build()
        .unwrap();
    let client = tokio::spawn(async move { until_opened(&mut source, 1).await });
    let (mut conn, request) = server.accept().await;
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/s?topic=a");
    assert_eq!(request.header_str("accept"), Some("text/event-stream"));
    assert_eq!(request.header_str("cache-control"), Some("no-store"));
    assert_eq!(request.header_str("header-name-1"), Some("value-1"));
    let multi: Vec<_> = request
        .headers
        .iter()
        .filter(|(n, _)| n == "x-multi")
        .map(|(_, v)| v.as_slice())
        .collect();
    assert_eq!(multi, [b"one".as_slice(), b"two".as_slice()]);
    assert!(request.header("last-event-id").is_none());
    assert!(request.header("content-type").is_none());
    assert!(request.body.is_empty());
    conn.head(200, SSE, &[], Framing::Close).await;
    client.await.unwrap();
}

#[tokio::test]
async fn post_and_report_send_their_body_on_every_attempt() {
    for method in ["POST", "REPORT"] {
        let server = Server::bind().await;
        let body = r#"{"hello": "world"}"#;
        let mut source = EventSource::builder(&server.url("/"))
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .reconnection_time(Duration::from_millis(20))
            .build()
            .unwrap();
        let client = tokio::spawn(async move { until_opened(&mut source, 2).await });
        for _ in 0..2 {
            let (mut conn, request) = server.accept().await;
            assert_eq!(request.method, method);
            assert_eq!(
                request.header_str("content-type"),
                Some("application/json; charset=utf-8")
            );
            assert_eq!(request.body, body.as_bytes());
            conn.head(200, SSE, &[], Framing::Close).await;
            conn.send(Framing::Close, b":\n").await;
        }
        client.await.unwrap();
    }
}

#[tokio::test]
async fn a_body_without_content_type_is_sent_as_text() {
    let server = Server::bind().await;
    let mut source = EventSource::builder(&server.url("/"))
        .method(Method::POST)
        .body("x=1")
        .build()
        .unwrap();
    let client = tokio::spawn(async move { until_opened(&mut source, 1).await });
    let (mut conn, request) = server.accept().await;
    assert_eq!(
        request.header_str("content-type"),
        Some("text/plain;charset=UTF-8")
    );
    assert_eq!(request.body, b"x=1");
    conn.head(200, SSE, &[], Framing::Close).await;
    client.await.unwrap();
}

#[tokio::test]
async fn an_initial_last_event_id_is_sent_and_reported_as_utf8() {
    for via_header in [false, true] {
        let server = Server::bind().await;
        let builder =
            EventSource::builder(&server.url("/")).reconnection_time(Duration::from_millis(20));
        let builder = if via_header {
            builder.header("Last-Event-ID", "caf\u{e9}")
        } else {
            builder.last_event_id("caf\u{e9}")
        };
        let mut source = builder.build().unwrap();
        assert_eq!(source.last_event_id(), "café");
        let client = tokio::spawn(async move {
            let (mut ids, mut opened) = (Vec::new(), 0);
            // Two events on the first connection, then the second one.
            while opened < 2 {
                match tokio::time::timeout(PATIENCE, source.next()).await.unwrap() {
                    Some(Ok(Sse::Event(e))) => ids.push(e.last_event_id),
                    Some(Ok(Sse::Open(_))) => opened += 1,
                    Some(Ok(_)) => {}
                    other => panic!("{other:?}"),
                }
            }
            ids
        });
        let (mut conn, request) = server.accept().await;
        // UTF-8 on the wire, exactly once.
        assert_eq!(request.header("last-event-id"), Some("café".as_bytes()));
        let count = request
            .headers
            .iter()
            .filter(|(n, _)| n == "last-event-id")
            .count();
        assert_eq!(count, 1);
        conn.head(200, SSE, &[], Framing::Close).await;
        conn.send(Framing::Close, b"data: a\n\nid: \xE2\x80\xA6\ndata: b\n\n")
            .await;
        drop(conn);
        let (mut conn, request) = server.accept().await;
        assert_eq!(request.header("last-event-id"), Some("…".as_bytes()));
        conn.head(200, SSE, &[], Framing::Close).await;
        assert_eq!(client.await.unwrap(), ["café", "…"]);
    }
}

#[test]
fn bad_configuration_is_reported_by_build() {
    assert!(matches!(
        EventSource::new("not a url"),
        Err(ConfigError::Url { .. })
    ));
    assert!(matches!(
        EventSource::new("ftp://127.0.0.1/x"),
        Err(ConfigError::Scheme(s)) if s == "ftp"
    ));
    assert!(matches!(
        EventSource::builder("http://127.0.0.1/")
            .header("bad name", "v")
            .build(),
        Err(ConfigError::HeaderName(_))
    ));
    assert!(matches!(
        EventSource::builder("http://127.0.0.1/")
            .header("x", "a\r\nInjected: 1")
            .build(),
        Err(ConfigError::HeaderValue(_))
    ));
}
