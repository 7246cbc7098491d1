//! The demo feeds on a real hub served over loopback HTTP: a subscriber
//! with the demo page's selectors sees every kind of event, typed and in
//! order, can resume from any of them, and the feeds stop with the hub.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tidings_codec::{Decoder, Item, MessageEvent};
use tidings_core::{Hub, HubConfig, MemoryStore, Retention};
use tidings_demo::{DemoConfig, topics};
use tidings_http::{AppState, ServerConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

/// A hub with its HTTP server on a free loopback port.
struct Served {
    addr: SocketAddr,
    hub: Hub,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

async fn serve() -> Served {
    let store = Arc::new(MemoryStore::new(Retention::default()));
    let hub = Hub::start(HubConfig::default(), store).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(hub.clone(), ServerConfig::default(), None);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        tidings_http::serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Served {
        addr,
        hub,
        stop: Some(stop),
        server,
    }
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An event stream read over a plain socket and decoded with the
/// project's own decoder.
struct Stream {
    socket: TcpStream,
    decoder: Decoder,
    events: Vec<MessageEvent>,
}

impl Stream {
    async fn open(addr: SocketAddr, headers: &str) -> Self {
        let query: Vec<String> = topics::SELECTORS
            .iter()
            .map(|s| format!("topic={}", encode(s)))
            .collect();
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /events?{} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{headers}\r\n",
            query.join("&")
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        // The head, byte by byte: the body is decoded from the next byte.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let n = tokio::time::timeout(WAIT, socket.read(&mut byte))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 1, "closed before the head ended");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("text/event-stream"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
        Self {
            socket,
            decoder: Decoder::new(),
            events: Vec::new(),
        }
    }

    /// Reads until `done` holds for the events so far.
    async fn until(&mut self, what: &str, done: impl Fn(&[MessageEvent]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = vec![0u8; 16 * 1024];
        while !done(&self.events) {
            let n = tokio::time::timeout_at(deadline, self.socket.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap();
            assert!(n > 0, "the stream ended while waiting for {what}");
            let events = &mut self.events;
            self.decoder
                .decode(&buf[..n], |item| {
                    if let Item::Event(e) = item {
                        events.push(e);
                    }
                })
                .unwrap();
        }
    }
}

fn seq(event: &MessageEvent) -> u64 {
    event
        .last_event_id
        .strip_prefix("urn:tidings:")
        .unwrap_or_else(|| panic!("not a hub id: {event:?}"))
        .parse()
        .unwrap()
}

fn json(event: &MessageEvent) -> serde_json::Value {
    serde_json::from_str(&event.data).unwrap_or_else(|e| panic!("{e}: {event:?}"))
}

/// A finished match clears its retained score with an update that has no
/// data; it arrives as a score event with empty data.
fn is_cleared_score(event: &MessageEvent) -> bool {
    event.event_type == "score" && event.data.is_empty()
}

/// Checks that `event` has the fields its type promises.
fn check_schema(event: &MessageEvent) {
    if is_cleared_score(event) {
        return;
    }
    let v = json(event);
    let number = |k: &str| assert!(v[k].is_number(), "{k} in {v}");
    let string = |k: &str| assert!(v[k].is_string(), "{k} in {v}");
    match event.event_type.as_str() {
        "price" => {
            string("symbol");
            string("name");
            for k in ["price", "open", "change", "changePct", "time"] {
                number(k);
            }
        }
        "score" => {
            for k in ["match", "home", "away", "status"] {
                string(k);
            }
            for k in ["pitch", "homeScore", "awayScore", "minute", "time"] {
                number(k);
            }
            assert!(v["goals"].is_array(), "{v}");
        }
        "notification" => {
            string("text");
            string("level");
            assert_eq!(v["from"], "demo");
            number("time");
        }
        "clock" => {
            number("unixMs");
            string("iso");
            number("uptime");
        }
        other => panic!("unexpected event type {other:?}: {v}"),
    }
}

#[tokio::test]
async fn every_kind_arrives_typed_in_order_and_resumable() {
    let served = serve().await;
    let mut live = Stream::open(served.addr, "").await;
    let config = DemoConfig {
        tick: Duration::from_millis(5),
        seed: Some(2024),
    };
    let demo = tokio::spawn(tidings_demo::run(served.hub.clone(), config));

    // The clock speaks once per wall-clock second whatever the tick, so
    // two clock events take at most two seconds.
    live.until("every kind of event and two clock ticks", |events| {
        let kinds: BTreeSet<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        kinds.len() == 4 && events.iter().filter(|e| e.event_type == "clock").count() >= 2
    })
    .await;

    // Every event has a hub id, one after the other: nothing the feeds
    // publish is missing from the stream, nothing comes twice.
    let first = seq(&live.events[0]);
    for (i, event) in live.events.iter().enumerate() {
        assert_eq!(seq(event), first + i as u64, "{event:?}");
        check_schema(event);
    }
    // The first tick published every symbol and every pitch at once.
    let opening: BTreeSet<String> = live
        .events
        .iter()
        .take(9)
        .filter(|e| e.event_type == "price")
        .map(|e| json(e)["symbol"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(opening.len(), 5, "{opening:?}");

    // A subscriber that resumes from the 10th event gets exactly what
    // followed it.
    let from = live.events[9].last_event_id.clone();
    let mut resumed = Stream::open(served.addr, &format!("Last-Event-ID: {from}\r\n")).await;
    let want = live.events.len() - 10;
    resumed
        .until("the replay", |events| events.len() >= want)
        .await;
    assert_eq!(resumed.events[..want], live.events[10..]);

    // The feeds stop when the hub shuts down.
    served.hub.shutdown().await;
    tokio::time::timeout(WAIT, demo)
        .await
        .expect("the demo did not stop with the hub")
        .unwrap();
    let Served { stop, server, .. } = served;
    let _ = stop.map(|s| s.send(()));
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn prices_walk_and_matches_play() {
    let served = serve().await;
    let mut live = Stream::open(served.addr, "").await;
    let config = DemoConfig {
        tick: Duration::from_millis(2),
        seed: None,
    };
    let demo = tokio::spawn(tidings_demo::run(served.hub.clone(), config));
    live.until("a goal and many trades", |events| {
        let goal = events.iter().any(|e| {
            e.event_type == "score"
                && !is_cleared_score(e)
                && !json(e)["goals"].as_array().unwrap().is_empty()
        });
        let trades = events.iter().filter(|e| e.event_type == "price").count();
        goal && trades > 100
    })
    .await;
    for symbol in ["ACME", "GLOBEX", "HOOLI", "INITECH", "UMBRELLA"] {
        let prices: Vec<f64> = live
            .events
            .iter()
            .filter(|e| e.event_type == "price")
            .map(json)
            .filter(|v| v["symbol"] == symbol)
            .map(|v| v["price"].as_f64().unwrap())
            .collect();
        assert!(prices.len() > 3, "{symbol}: {prices:?}");
        assert!(
            prices.windows(2).all(|w| w[0] != w[1]),
            "{symbol}: {prices:?}"
        );
    }
    demo.abort();
    served.hub.shutdown().await;
}
