//! Every vector of `conformance/sse-vectors.json` (at the repository
//! root), served by a real loopback HTTP server to a real [`EventSource`],
//! in three chunkings: the vector's own chunks, one byte per write, and the
//! whole body in one write (each write flushed, with `TCP_NODELAY`).
//!
//! For each run: the events dispatched, failing or not, the reconnection
//! time the stream set, and the `Last-Event-ID` the client sends when it
//! reconnects after the body ends (the server then answers 204 to stop it).
//! All 159 runs go at once, each on its own port, so the vectors that set
//! `retry: 3000` cost three seconds once, not forty times.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Framing, PATIENCE, Server};
use futures_util::StreamExt as _;
use serde::Deserialize;
use tidings_client::{Error, EventSource, Sse};

/// The reconnection time the client starts with: distinct from every
/// `retry:` in the vectors, short enough to keep the runs quick.
const START_RECONNECT: Duration = Duration::from_millis(40);

#[derive(Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(Deserialize, Clone)]
struct Vector {
    name: String,
    chunks_b64: Vec<String>,
    status: u16,
    content_type: String,
    expect_fail_connection: bool,
    events: Vec<Expected>,
    last_event_id_after_eof: String,
    retry_ms: Option<u64>,
}

#[derive(Deserialize, Debug, PartialEq, Eq, Clone)]
struct Expected {
    #[serde(rename = "type")]
    event_type: String,
    data: String,
    id: String,
}

fn vectors() -> Vec<Vector> {
    // The package's directory as `cargo test` gives it when the test runs,
    // not as it was when the binary was built: CI builds this test in a
    // clone of the repository too, sharing the target directory.
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = format!("{dir}/../../conformance/sse-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<File>(&text).unwrap().vectors
}

/// What one run observed, or why it went wrong.
async fn run(vector: Vector, how: &'static str, chunks: Vec<Vec<u8>>) -> Result<(), String> {
    let label = format!("{} ({how})", vector.name);
    let server = Server::bind().await;
    let url = server.url("/stream");
    let v = vector.clone();

    let serving = tokio::spawn(async move {
        let (mut conn, first) = server.accept().await;
        conn.head(v.status, Some(&v.content_type), &[], Framing::Close)
            .await;
        // Pause between writes so that they travel as separate segments;
        // the long comment vector goes without pauses to stay quick.
        let pause = (chunks.len() <= 200).then_some(Duration::from_millis(1));
        for chunk in &chunks {
            conn.send(Framing::Close, chunk).await;
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
        drop(conn);
        let ended = Instant::now();
        // A failed connection must not come back; a working one must, after
        // the reconnection time.
        let wait = if v.expect_fail_connection {
            START_RECONNECT * 10
        } else {
            PATIENCE
        };
        let second = match server.accept_within(wait).await {
            Some((conn, request)) => {
                let after = ended.elapsed();
                conn.respond_empty(204, &[]).await;
                Some((request, after))
            }
            None => None,
        };
        (first, second)
    });

    let mut source = EventSource::builder(&url)
        .reconnection_time(START_RECONNECT)
        .build()
        .map_err(|e| format!("{label}: build: {e}"))?;
    let mut events = Vec::new();
    let mut failure = None;
    let mut reconnecting = None;
    let mut retry_at_eof = None;
    let mut id_at_eof = None;
    let mut opened = 0;
    while let Some(item) = tokio::time::timeout(PATIENCE, source.next())
        .await
        .map_err(|_| format!("{label}: the client stalled"))?
    {
        match item {
            Ok(Sse::Open(_)) => opened += 1,
            Ok(Sse::Event(e)) => events.push(Expected {
                event_type: e.event_type,
                data: e.data,
                id: e.last_event_id,
            }),
            Ok(Sse::Comment(_)) => {}
            Ok(Sse::Reconnecting(r)) => {
                if reconnecting.is_none() {
                    retry_at_eof = Some(source.reconnection_time());
                    id_at_eof = Some(source.last_event_id().to_owned());
                    reconnecting = Some(r);
                }
            }
            Err(e) => {
                failure = Some(e);
            }
        }
    }
    let (first, second) = serving.await.map_err(|e| format!("{label}: server: {e}"))?;

    let check = |ok: bool, what: String| {
        if ok {
            Ok(())
        } else {
            Err(format!("{label}: {what}"))
        }
    };
    check(
        first.header_str("accept") == Some("text/event-stream"),
        format!("Accept was {:?}", first.header_str("accept")),
    )?;
    check(
        first.header_str("cache-control") == Some("no-cache"),
        "Cache-Control".into(),
    )?;
    check(
        first.header("last-event-id").is_none(),
        "first request sent Last-Event-ID".into(),
    )?;

    if vector.expect_fail_connection {
        let failure = failure.ok_or_else(|| format!("{label}: the connection did not fail"))?;
        check(failure.is_permanent(), format!("not permanent: {failure}"))?;
        let right_kind = if vector.status == 200 {
            matches!(failure, Error::ContentType(_))
        } else {
            matches!(&failure, Error::Status(h) if h.status.as_u16() == vector.status)
        };
        check(right_kind, format!("wrong failure: {failure}"))?;
        check(
            events.is_empty(),
            format!("events from a failed connection: {events:?}"),
        )?;
        check(opened == 0, "reported Open".into())?;
        check(reconnecting.is_none(), "scheduled a reconnect".into())?;
        check(second.is_none(), "reconnected after failing".into())?;
        return Ok(());
    }

    check(opened == 1, format!("{opened} connections opened, want 1"))?;
    check(
        events == vector.events,
        format!("events\n  got  {events:?}\n  want {:?}", vector.events),
    )?;
    let reconnecting = reconnecting.ok_or_else(|| format!("{label}: no reconnect after EOF"))?;
    check(
        reconnecting.error.is_none(),
        format!("clean EOF reported {:?}", reconnecting.error),
    )?;
    let want_retry = vector
        .retry_ms
        .map_or(START_RECONNECT, Duration::from_millis);
    check(
        retry_at_eof == Some(want_retry),
        format!("reconnection time {retry_at_eof:?}, want {want_retry:?}"),
    )?;
    check(
        reconnecting.delay == want_retry,
        format!(
            "reconnect delay {:?}, want {want_retry:?}",
            reconnecting.delay
        ),
    )?;
    check(
        id_at_eof.as_deref() == Some(vector.last_event_id_after_eof.as_str()),
        format!("last event id {id_at_eof:?}"),
    )?;
    let (second, after) = second.ok_or_else(|| format!("{label}: no reconnect came"))?;
    let sent = second.header("last-event-id");
    let want = vector.last_event_id_after_eof.as_bytes();
    if want.is_empty() {
        check(
            sent.is_none(),
            format!("sent Last-Event-ID {sent:?}, want none"),
        )?;
    } else {
        check(
            sent == Some(want),
            format!("sent Last-Event-ID {sent:?}, want {want:?}"),
        )?;
    }
    // Honoured: not before the reconnection time (a little slack for the
    // server noticing the close later than the client did).
    check(
        after + Duration::from_millis(30) >= want_retry,
        format!("reconnected after {after:?}, before {want_retry:?}"),
    )?;
    let failure = failure.ok_or_else(|| format!("{label}: 204 did not end the stream"))?;
    check(failure.is_no_content(), format!("ended by {failure}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_in_every_chunking_over_loopback() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 53, "the suite has 53 vectors");
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut runs = Vec::new();
    for v in &vectors {
        let chunks: Vec<Vec<u8>> = v
            .chunks_b64
            .iter()
            .map(|c| b64.decode(c).unwrap())
            .collect();
        let whole = chunks.concat();
        let bytewise: Vec<Vec<u8>> = whole.iter().map(|b| vec![*b]).collect();
        for (how, feed) in [
            ("as given", chunks.clone()),
            ("byte by byte", bytewise),
            ("whole", vec![whole]),
        ] {
            runs.push(tokio::spawn(run(v.clone(), how, feed)));
        }
    }
    assert_eq!(runs.len(), 159);
    let mut failures = Vec::new();
    for run in runs {
        if let Err(why) = run.await.unwrap() {
            failures.push(why);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 159 runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
