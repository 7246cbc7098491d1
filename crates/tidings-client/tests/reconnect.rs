//! The EventSource state machine against a real loopback server: what ends
//! a connection, what the client does next, and when.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use common::{Framing, PATIENCE, Server};
use futures_util::StreamExt as _;
use tidings_client::{Error, EventSource, Jitter, Limits, MessageEvent, ReadyState, Sse};

const SSE: Option<&str> = Some("text/event-stream");

/// The next item, or a panic if the client stalls.
async fn next(source: &mut EventSource) -> Option<Result<Sse, Error>> {
    tokio::time::timeout(PATIENCE, source.next())
        .await
        .expect("the client stalled")
}

/// The next item that is not a comment, expected to be `Ok`.
async fn next_ok(source: &mut EventSource) -> Sse {
    loop {
        match next(source).await {
            Some(Ok(Sse::Comment(_))) => {}
            Some(Ok(item)) => return item,
            other => panic!("expected an item, got {other:?}"),
        }
    }
}

async fn expect_open(source: &mut EventSource) {
    match next_ok(source).await {
        Sse::Open(head) => assert_eq!(head.status, 200),
        other => panic!("expected Open, got {other:?}"),
    }
}

async fn expect_event(source: &mut EventSource) -> MessageEvent {
    match next_ok(source).await {
        Sse::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn expect_reconnect(source: &mut EventSource) -> tidings_client::Reconnect {
    match next_ok(source).await {
        Sse::Reconnecting(r) => r,
        other => panic!("expected Reconnecting, got {other:?}"),
    }
}

/// The stream's last item: a permanent error, then `None`.
async fn expect_failure(source: &mut EventSource) -> Error {
    let error = match next(source).await {
        Some(Err(error)) => error,
        other => panic!("expected a failure, got {other:?}"),
    };
    assert!(error.is_permanent(), "{error}");
    assert_eq!(source.ready_state(), ReadyState::Closed);
    assert!(next(source).await.is_none(), "items after a failure");
    error
}

fn quick(url: &str) -> tidings_client::Builder {
    EventSource::builder(url)
        .reconnection_time(Duration::from_millis(50))
        .jitter(Jitter::None)
}

#[tokio::test]
async fn a_cut_connection_reconnects_with_the_last_event_id() {
    let server = Server::bind().await;
    let mut source = quick(&server.url("/")).build().unwrap();
    let client = tokio::spawn(async move {
        expect_open(&mut source).await;
        let a = expect_event(&mut source).await;
        assert_eq!((a.data.as_str(), a.last_event_id.as_str()), ("a", "1"));
        let r = expect_reconnect(&mut source).await;
        assert!(
            matches!(r.error, Some(Error::Transport(_))),
            "a cut chunked body is a network error: {:?}",
            r.error
        );
        assert_eq!(r.failures, 0, "the connection delivered data");
        assert_eq!(source.ready_state(), ReadyState::Connecting);
        expect_open(&mut source).await;
        // The block cut in the middle ("b") was dropped; the id stays "1".
        let c = expect_event(&mut source).await;
        assert_eq!((c.data.as_str(), c.last_event_id.as_str()), ("c", "1"));
        assert_eq!(source.ready_state(), ReadyState::Open);
        source.close();
        assert!(next(&mut source).await.is_none());
    });

    let (mut conn, first) = server.accept().await;
    assert!(first.header("last-event-id").is_none());
    conn.head(200, SSE, &[], Framing::Chunked).await;
    conn.send(Framing::Chunked, b"id: 1\ndata: a\n\n").await;
    conn.send(Framing::Chunked, b"id: 2\ndata: b\n").await;
    drop(conn);

    let (mut conn, second) = server.accept().await;
    assert_eq!(second.header_str("last-event-id"), Some("1"));
    conn.head(200, SSE, &[], Framing::Chunked).await;
    conn.send(Framing::Chunked, b"data: c\n\n").await;
    client.await.unwrap();
    assert!(
        conn.closed_by_peer_within(PATIENCE).await,
        "close() hung up"
    );
}

#[tokio::test]
async fn a_clean_end_reconnects_without_an_error() {
    let server = Server::bind().await;
    let mut source = quick(&server.url("/")).build().unwrap();
    let client = tokio::spawn(async move {
        expect_open(&mut source).await;
        expect_event(&mut source).await;
        let r = expect_reconnect(&mut source).await;
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.delay, Duration::from_millis(50));
        expect_open(&mut source).await;
        source
    });
    let (mut conn, _) = server.accept().await;
    conn.head(200, SSE, &[], Framing::Chunked).await;
    conn.send(Framing::Chunked, b"id: 7\ndata: x\n\n").await;
    conn.finish_chunked().await;
    // The body ended cleanly, so the client may send the next request on
    // the same connection, or open a new one.
    let (mut conn, second) = tokio::select! {
        request = conn.read_request() => (conn, request),
        accepted = server.accept() => accepted,
    };
    assert_eq!(second.header_str("last-event-id"), Some("7"));
    conn.head(200, SSE, &[], Framing::Chunked).await;
    let source = client.await.unwrap();
    assert_eq!(source.last_event_id(), "7");
}

#[tokio::test]
async fn a_restarted_server_on_the_same_port_is_found_again() {
    let server = Server::bind().await;
    let addr = server.addr;
    let mut source = quick(&server.url("/"))
        .backoff_ceiling(Duration::from_millis(300))
        .build()
        .unwrap();
    let client = tokio::spawn(async move {
        expect_open(&mut source).await;
        expect_event(&mut source).await;
        // The server is down: every attempt is refused until it is back.
        let mut refused = 0;
        loop {
            match next_ok(&mut source).await {
                Sse::Reconnecting(r) => {
                    if let Some(error) = &r.error {
                        assert!(matches!(error, Error::Transport(_)), "{error}");
                        refused += 1;
                        assert_eq!(r.failures, refused);
                        assert!(r.delay <= Duration::from_millis(300), "{:?}", r.delay);
                    }
                }
                Sse::Open(_) => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(refused >= 1, "the server was down, yet no attempt failed");
        let e = expect_event(&mut source).await;
        assert_eq!(e.data, "back");
        refused
    });

    let (mut conn, _) = server.accept().await;
    conn.head(200, SSE, &[], Framing::Close).await;
    conn.send(Framing::Close, b"id: 41\ndata: before\n\n").await;
    drop(conn);
    drop(server);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let server = Server::bind_to(addr).await;
    let (mut conn, request) = server.accept().await;
    assert_eq!(request.header_str("last-event-id"), Some("41"));
    conn.head(200, SSE, &[], Framing::Close).await;
    conn.send(Framing::Close, b"data: back\n\n").await;
    client.await.unwrap();
}

#[tokio::test]
async fn retry_sets_the_reconnection_time_and_is_honoured() {
    let server = Server::bind().await;
    // Without the server's retry the client would wait 20 s.
    let mut source = EventSource::builder(&server.url("/"))
        .reconnection_time(Duration::from_secs(20))
        .build()
        .unwrap();
    let client = tokio::spawn(async move {
        expect_open(&mut source).await;
        expect_event(&mut source).await;
        let r = expect_reconnect(&mut source).await;
        assert_eq!(r.delay, Duration::from_millis(700));
        assert_eq!(source.reconnection_time(), Duration::from_millis(700));
        expect_open(&mut source).await;
    });
    let (mut conn, _) = server.accept().await;
    conn.head(200, SSE, &[], Framing::Close).await;
    conn.send(Framing::Close, b"retry: 700\ndata: x\n\n").await;
    drop(conn);
    let ended = Instant::now();
    let (mut conn, _) = server.accept().await;
    let waited = ended.elapsed();
    assert!(
        (Duration::from_millis(650)..Duration::from_secs(5)).contains(&waited),
        "reconnected after {waited:?}, want about 700 ms"
    );
    conn.head(200, SSE, &[], Framing::Close).await;
    client.await.unwrap();
}

#[tokio::test]
async fn an_absurd_retry_is_capped_not_a_crash() {
    let server = Server::bind().await;
    let mut source = quick(&server.url("/")).build().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = server.accept().await;
        conn.head(200, SSE, &[], Framing::Close).await;
        conn.send(
            Framing::Close,
            b"retry: 99999999999999999999999\ndata: x\n\n",
        )
        .await;
    });
    expect_open(&mut source).await;
    expect_event(&mut source).await;
    let r = expect_reconnect(&mut source).await;
    assert_eq!(source.reconnection_time(), Duration::from_millis(u64::MAX));
    assert_eq!(r.delay, Duration::from_secs(u64::from(u32::MAX)));
    assert_eq!(source.ready_state(), ReadyState::Connecting);
}

/// Serves one response and checks that no second request comes.
async fn fails_for_good(
    status: u16,
    content_type: Option<&str>,
) -> (Error, tidings_client::ReadyState) {
    let server = Server::bind().await;
    let mut source = quick(&server.url("/")).build().unwrap();
    let client = tokio::spawn(async move {
        let error = expect_failure(&mut source).await;
        (error, source.ready_state())
    });
    let (mut conn, _) = server.accept().await;
    if status == 204 {
        conn.respond_empty(204, &[]).await;
    } else {
        conn.head(status, content_type, &[], Framing::Close).await;
        conn.send(Framing::Close, b"data: never\n\n").await;
        drop(conn);
    }
    let result = client.await.unwrap();
    assert!(
        server
            .accept_within(Duration::from_millis(500))
            .await
            .is_none(),
        "the client came back after a failure"
    );
    result
}

#[tokio::test]
async fn no_content_ends_the_stream() {
    let (error, state) = fails_for_good(204, None).await;
    assert!(error.is_no_content(), "{error}");
    assert_eq!(state, ReadyState::Closed);
}

#[tokio::test]
async fn a_server_error_fails_the_connection() {
    let (error, _) = fails_for_good(500, SSE).await;
    let head = error.response().unwrap();
    assert_eq!(head.status, 500);
    assert!(!error.is_no_content());
    assert!(matches!(error, Error::Status(_)));
}

#[tokio::test]
async fn a_wrong_content_type_fails_the_connection() {
    let (error, _) = fails_for_good(200, Some("text/plain")).await;
    assert!(matches!(error, Error::ContentType(_)), "{error}");
    assert_eq!(error.response().unwrap().content_type(), Some("text/plain"));
    let (error, _) = fails_for_good(200, None).await;
    assert!(matches!(error, Error::ContentType(_)), "{error}");
}

#[tokio::test]
async fn redirects_are_followed() {
    for status in [301, 302, 307, 308] {
        let entry = Server::bind().await;
        let stream = Server::bind().await;
        let target = stream.url("/real");
        let mut source = quick(&entry.url("/old")).build().unwrap();
        let client = tokio::spawn(async move {
            let head = match next_ok(&mut source).await {
                Sse::Open(head) => head,
                other => panic!("{other:?}"),
            };
            let e = expect_event(&mut source).await;
            (head.url.path().to_owned(), e.data)
        });
        let (conn, request) = entry.accept().await;
        assert_eq!(request.target, "/old");
        conn.respond_empty(status, &[("Location", &target)]).await;
        let (mut conn, request) = stream.accept().await;
        assert_eq!(request.target, "/real");
        assert_eq!(request.header_str("accept"), Some("text/event-stream"));
        conn.head(200, SSE, &[], Framing::Close).await;
        conn.send(Framing::Close, b"data: moved\n\n").await;
        let (path, data) = client.await.unwrap();
        assert_eq!(
            (path.as_str(), data.as_str()),
            ("/real", "moved"),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_redirect_without_location_fails_and_a_loop_fails() {
    // Missing Location: the 3xx itself is the answer, which is not 200.
    let server = Server::bind().await;
    let mut source = quick(&server.url("/")).build().unwrap();
    let client = tokio::spawn(async move { expect_failure(&mut source).await });
    let (conn, _) = server.accept().await;
    conn.respond_empty(307, &[]).await;
    let error = client.await.unwrap();
    assert!(
        matches!(&error, Error::Status(h) if h.status == 307),
        "{error}"
    );

    // An empty Location points back at the same URL: a loop.
    let server = Server::bind().await;
    let mut source = quick(&server.url("/")).max_redirects(3).build().unwrap();
    let client = tokio::spawn(async move { expect_failure(&mut source).await });
    let looping = tokio::spawn(async move {
        let mut requests = 0;
        while let Some((conn, _)) = server.accept_within(Duration::from_secs(1)).await {
            conn.respond_empty(301, &[("Location", "")]).await;
            requests += 1;
        }
        requests
    });
    let error = client.await.unwrap();
    assert!(matches!(error, Error::Redirect(_)), "{error}");
    // The first request and three redirects, and no retry after.
    assert_eq!(looping.await.unwrap(), 4);
}

#[tokio::test]
async fn a_silent_stream_hits_the_read_timeout() {
    let server = Server::bind().await;
    let timeout = Duration::from_millis(300);
    let mut source = quick(&server.url("/"))
        .read_timeout(timeout)
        .build()
        .unwrap();
    let client = tokio::spawn(async move {
        expect_open(&mut source).await;
        expect_event(&mut source).await;
        let got_event = Instant::now();
        // Heartbeats for 900 ms keep the connection alive...
        let r = expect_reconnect(&mut source).await;
        let silent_for = got_event.elapsed();
        assert!(
            matches!(r.error, Some(Error::ReadTimeout(t)) if t == timeout),
            "{:?}",
            r.error
        );
        assert!(
            silent_for >= Duration::from_millis(900) + timeout,
            "timed out after {silent_for:?}, despite heartbeats"
        );
        expect_open(&mut source).await;
    });
    let (mut conn, _) = server.accept().await;
    conn.head(200, SSE, &[], Framing::Close).await;
    conn.send(Framing::Close, b"data: a\n\n").await;
    for _ in 0..9 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.send(Framing::Close, b":\n").await;
    }
    // ...then silence: the client drops it and comes back.
    let (mut second, _) = server.accept().await;
    assert!(conn.closed_by_peer_within(PATIENCE).await);
    second.head(200, SSE, &[], Framing::Close).await;
    client.await.unwrap();
}

#[tokio::test]
async fn the_read_timeout_covers_the_response_head() {
    let server = Server::bind().await;
    let mut source = quick(&server.url("/"))
        .read_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let client = tokio::spawn(async move {
        let r = expect_reconnect(&mut source).await;
        assert!(
            matches!(r.error, Some(Error::ReadTimeout(_))),
            "{:?}",
            r.error
        );
        assert_eq!(r.failures, 1, "no response is a failed attempt");
        expect_open(&mut source).await;
    });
    let (_silent, _) = server.accept().await;
    let (mut conn, _) = server.accept().await;
    conn.head(200, SSE, &[], Framing::Close).await;
    client.await.unwrap();
}

#[tokio::test]
async fn backoff_grows_on_failed_attempts_and_resets_after_data() {
    let server = Server::bind().await;
    let mut source = quick(&server.url("/"))
        .backoff_ceiling(Duration::from_millis(700))
        .build()
        .unwrap();
    let client = tokio::spawn(async move {
        let mut seen = Vec::new();
        // Three connections that end before any byte: failed attempts.
        for _ in 0..3 {
            expect_open(&mut source).await;
            let r = expect_reconnect(&mut source).await;
            seen.push((r.failures, r.delay));
        }
        // One that delivers: the count starts over.
        expect_open(&mut source).await;
        expect_event(&mut source).await;
        let r = expect_reconnect(&mut source).await;
        seen.push((r.failures, r.delay));
        seen
    });
    for _ in 0..3 {
        let (mut conn, _) = server.accept().await;
        conn.head(200, SSE, &[], Framing::Close).await;
    }
    let (mut conn, _) = server.accept().await;
    conn.head(200, SSE, &[], Framing::Close).await;
    conn.send(Framing::Close, b"data: x\n\n").await;
    drop(conn);
    let ms = Duration::from_millis;
    // From max(50 ms, 100 ms floor): 200, 400, then the 700 ms ceiling.
    assert_eq!(
        client.await.unwrap(),
        [(1, ms(200)), (2, ms(400)), (3, ms(700)), (0, ms(50))]
    );
}

#[tokio::test]
async fn a_runaway_line_is_dropped_and_the_stream_resumed() {
    let server = Server::bind().await;
    let mut source = quick(&server.url("/"))
        .limits(Limits {
            max_line: 32,
            max_event: 1024,
        })
        .build()
        .unwrap();
    let client = tokio::spawn(async move {
        expect_open(&mut source).await;
        assert_eq!(expect_event(&mut source).await.data, "ok");
        let r = expect_reconnect(&mut source).await;
        assert!(matches!(r.error, Some(Error::Decode(_))), "{:?}", r.error);
        assert_eq!(r.failures, 1, "a runaway stream is a failed attempt");
        expect_open(&mut source).await;
    });
    let (mut conn, _) = server.accept().await;
    conn.head(200, SSE, &[], Framing::Close).await;
    conn.send(Framing::Close, b"id: 3\ndata: ok\n\n").await;
    conn.send(Framing::Close, &[b'x'; 100]).await;
    let (mut second, request) = server.accept().await;
    assert_eq!(request.header_str("last-event-id"), Some("3"));
    second.head(200, SSE, &[], Framing::Close).await;
    client.await.unwrap();
}

#[tokio::test]
async fn a_handle_restarts_and_closes_from_another_task() {
    let server = Server::bind().await;
    let mut source = quick(&server.url("/"))
        .reconnection_time(Duration::from_secs(30))
        .build()
        .unwrap();
    let handle = source.handle();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = tokio::spawn(async move {
        while let Some(item) = source.next().await {
            tx.send(item).unwrap();
        }
    });
    let (mut conn, _) = server.accept().await;
    conn.head(200, SSE, &[], Framing::Close).await;
    conn.send(Framing::Close, b"id: 9\ndata: a\n\n").await;
    assert!(matches!(rx.recv().await, Some(Ok(Sse::Open(_)))));
    assert!(matches!(rx.recv().await, Some(Ok(Sse::Event(_)))));

    // Restart: no wait for the 30 s reconnection time.
    handle.reconnect();
    let (mut second, request) = server.accept().await;
    assert_eq!(request.header_str("last-event-id"), Some("9"));
    assert!(conn.closed_by_peer_within(PATIENCE).await);
    match rx.recv().await {
        Some(Ok(Sse::Reconnecting(r))) => {
            assert!(r.error.is_none());
            assert_eq!(r.delay, Duration::ZERO);
        }
        other => panic!("{other:?}"),
    }
    second.head(200, SSE, &[], Framing::Close).await;
    assert!(matches!(rx.recv().await, Some(Ok(Sse::Open(_)))));

    handle.close();
    tokio::time::timeout(PATIENCE, client)
        .await
        .expect("close() did not end the stream")
        .unwrap();
    assert!(second.closed_by_peer_within(PATIENCE).await);
}
