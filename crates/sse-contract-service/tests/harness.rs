//! Drives the real `sse-contract-service` binary the way the harness does:
//! a loopback SSE endpoint and a loopback callback endpoint of our own, the
//! REST calls to create a stream, send commands and close it, and the
//! numbered callbacks that come back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{any, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(10);

/// The service process, killed if the test ends early.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sse-contract-service"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, base }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the SSE endpoint received, and the sender that feeds its
/// response body (`None` ends it).
struct Connection {
    method: String,
    headers: HeaderMap,
    body: Bytes,
    feed: mpsc::UnboundedSender<Option<&'static str>>,
}

/// The mock SSE endpoint: `/stream` streams what the test feeds it,
/// `/nothing` answers 204.
async fn stream_server() -> (String, mpsc::UnboundedReceiver<Connection>) {
    let (tx, rx) = mpsc::unbounded_channel::<Connection>();
    let app = Router::new()
        .route(
            "/stream",
            any(
                |State(tx): State<mpsc::UnboundedSender<Connection>>,
                 method: axum::http::Method,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let (feed, mut chunks) = mpsc::unbounded_channel::<Option<&'static str>>();
                    tx.send(Connection {
                        method: method.to_string(),
                        headers,
                        body,
                        feed,
                    })
                    .unwrap();
                    // The body ends when the test sends `None`.
                    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| {
                        chunks.poll_recv(cx).map(|chunk| {
                            chunk
                                .flatten()
                                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c.as_bytes())))
                        })
                    }));
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(body)
                        .unwrap()
                },
            ),
        )
        .route(
            "/nothing",
            any(
                |State(tx): State<mpsc::UnboundedSender<Connection>>| async move {
                    let (feed, _) = mpsc::unbounded_channel();
                    tx.send(Connection {
                        method: "GET".into(),
                        headers: HeaderMap::new(),
                        body: Bytes::new(),
                        feed,
                    })
                    .unwrap();
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(tx);
    (serve(app).await, rx)
}

/// Callbacks, by number.
type Callbacks = Arc<Mutex<BTreeMap<u64, Value>>>;

/// The mock callback endpoint: `POST /cb/{n}` stores the JSON body.
async fn callback_server() -> (String, Callbacks) {
    let received: Callbacks = Arc::default();
    let app = Router::new()
        .route(
            "/cb/{n}",
            post(
                |State(received): State<Callbacks>, Path(n): Path<u64>, body: Bytes| async move {
                    let value: Value = serde_json::from_slice(&body).unwrap();
                    received.lock().unwrap().insert(n, value);
                    StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(Arc::clone(&received));
    (format!("{}/cb", serve(app).await), received)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Waits until callbacks 1..=n have all arrived and returns them in order.
async fn callbacks(received: &Callbacks, n: u64) -> Vec<Value> {
    timeout(PATIENCE, async {
        loop {
            {
                let map = received.lock().unwrap();
                if (1..=n).all(|i| map.contains_key(&i)) {
                    return (1..=n).map(|i| map[&i].clone()).collect::<Vec<_>>();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("callbacks 1..={n} did not all come: {received:?}"))
}

async fn next_connection(rx: &mut mpsc::UnboundedReceiver<Connection>) -> Connection {
    timeout(PATIENCE, rx.recv())
        .await
        .expect("the client did not connect")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_protocol_end_to_end() {
    let service = Service::start();
    let http = reqwest_client();
    let base = &service.base;

    // Status: the capabilities the client has.
    let status: Value =
        serde_json::from_str(&http.get(base).send().await.unwrap().text().await.unwrap()).unwrap();
    let capabilities: Vec<&str> = status["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for needed in [
        "comments",
        "headers",
        "last-event-id",
        "post",
        "report",
        "read-timeout",
        "restart",
        "204",
    ] {
        assert!(
            capabilities.contains(&needed),
            "{needed} in {capabilities:?}"
        );
    }

    let (stream_base, mut connections) = stream_server().await;
    let (callback_url, received) = callback_server().await;

    // Create: POST with a body, headers and an initial last event id.
    let response = http
        .post(base)
        .body(
            json!({
                "streamUrl": format!("{stream_base}/stream"),
                "callbackUrl": callback_url,
                "tag": "end to end",
                "initialDelayMs": 0,
                "lastEventId": "abc",
                "headers": {"header-name-1": "value-1", "content-type": "application/json"},
                "method": "POST",
                "body": "{\"hello\": \"world\"}",
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let location = response
        .headers()
        .get("location")
        .expect("no Location")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(location.starts_with(base.as_str()), "{location}");

    let first = next_connection(&mut connections).await;
    assert_eq!(first.method, "POST");
    assert_eq!(first.body.as_ref(), b"{\"hello\": \"world\"}");
    assert_eq!(first.headers["header-name-1"], "value-1");
    assert_eq!(first.headers["content-type"], "application/json");
    assert_eq!(first.headers["last-event-id"], "abc");
    assert_eq!(first.headers["accept"], "text/event-stream");
    assert_eq!(first.headers["cache-control"], "no-cache");

    first.feed.send(Some(":Hello\n")).unwrap();
    first.feed.send(Some("id: 1\ndata: Hel")).unwrap();
    first.feed.send(Some("lo\n\ndata: World\n\n")).unwrap();
    assert_eq!(
        callbacks(&received, 3).await,
        [
            json!({"kind": "comment", "comment": "Hello"}),
            json!({"kind": "event", "event": {"type": "message", "data": "Hello", "id": "1"}}),
            json!({"kind": "event", "event": {"type": "message", "data": "World", "id": "1"}}),
        ]
    );

    // Restart: a new connection at once, with the last event id and body.
    let response = http
        .post(&location)
        .body(r#"{"command": "restart"}"#)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let second = next_connection(&mut connections).await;
    assert_eq!(second.headers["last-event-id"], "1");
    assert_eq!(second.body.as_ref(), b"{\"hello\": \"world\"}");
    second.feed.send(Some("data: Thanks\n\n")).unwrap();
    assert_eq!(
        callbacks(&received, 4).await[3],
        json!({"kind": "event", "event": {"type": "message", "data": "Thanks", "id": "1"}})
    );

    // Unknown commands and streams.
    let response = http
        .post(&location)
        .body(r#"{"command": "listen", "listen": {"type": "x"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = http
        .post(format!("{base}/streams/999"))
        .body(r#"{"command": "restart"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = http.post(base).body("{").send().await.unwrap();
    assert_eq!(response.status(), 400);

    // The server ends the stream: the client comes back.
    second.feed.send(None).unwrap();
    let third = next_connection(&mut connections).await;
    assert_eq!(third.headers["last-event-id"], "1");

    // Close: the client hangs up, and the resource is gone.
    let response = http.delete(&location).send().await.unwrap();
    assert!(matches!(response.status().as_u16(), 200 | 204));
    timeout(PATIENCE, third.feed.closed())
        .await
        .expect("the client kept the stream open after DELETE");
    let response = http.delete(&location).send().await.unwrap();
    assert_eq!(response.status(), 404);

    // 204: one error callback, no reconnection.
    let (callback_url, received) = callback_server().await;
    let response = http
        .post(base)
        .body(
            json!({
                "streamUrl": format!("{stream_base}/nothing"),
                "callbackUrl": callback_url,
                "initialDelayMs": 0,
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    next_connection(&mut connections).await;
    let error = &callbacks(&received, 1).await[0];
    assert_eq!(error["kind"], "error", "{error}");
    assert!(
        timeout(Duration::from_millis(500), connections.recv())
            .await
            .is_err(),
        "the client reconnected after 204"
    );

    // Stop: DELETE / ends the process.
    let _ = http.delete(base).send().await;
    let mut service = service;
    let exited = timeout(PATIENCE, async {
        loop {
            if let Some(status) = service.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the service did not stop after DELETE /");
    assert!(exited.success(), "{exited}");
}

fn reqwest_client() -> tidings_client::reqwest::Client {
    tidings_client::http_client().unwrap()
}
