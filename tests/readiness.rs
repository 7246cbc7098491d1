//! Liveness and readiness while the history loads: a hub restarting on a
//! large history left by a crash (redb repairs it, and `--check-history`
//! reads it all) answers `/healthz` with 200 and `/readyz` with 503
//! `loading` from the moment it listens, refuses publishes with a JSON 503
//! meanwhile, and is ready, with the whole history, once it is loaded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{TempDir, free_port};
use tidings_core::{Event, Retention, Store, Update};
use tidings_store::{DiskStore, Options};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::Child;

/// Events in the history: enough that opening it takes a while (the
/// repair and the check read every page).
const EVENTS: u64 = 300_000;

/// Fills `dir` with a history of [`EVENTS`] events and leaves it as a crash
/// would (never closed); returns the first and last sequence numbers.
fn crashed_history(dir: &std::path::Path) -> (u64, u64) {
    let filling = TempDir::new();
    let store = DiskStore::open(
        filling.path(),
        Options {
            retention: Retention {
                max_events: None,
                max_age: None,
                max_bytes: None,
            },
            cache_bytes: 16 << 20,
        },
    )
    .unwrap();
    let first = store.bounds().unwrap().next;
    let mut next = first;
    while next < first + EVENTS {
        let batch: Vec<Arc<Event>> = (0..10_000)
            .map(|i| {
                let update = Update {
                    topics: vec!["https://example.com/t".into()],
                    data: format!("event {} {}", next + i, "x".repeat(60)),
                    ..Update::default()
                };
                Arc::new(Event::encode(next + i, &update, 1_700_000_000_000).unwrap())
            })
            .collect();
        store.append(&batch).unwrap();
        next += batch.len() as u64;
    }
    // Never closed, as after a SIGKILL: the copy is what a crash leaves
    // (this process keeps the original's locks).
    std::fs::copy(
        filling.path().join("history.redb"),
        dir.join("history.redb"),
    )
    .unwrap();
    std::mem::forget(store);
    (first, next - 1)
}

/// `GET path` on a fresh connection: the status and the body, or `None`
/// while nothing listens.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, serde_json::Value)> {
    request(addr, "GET", path, "").await
}

/// Sends one request (keep-alive: the server decides whether to close)
/// and reads its response: the status, the JSON body, and whether the
/// server closes the connection after it.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    form: &str,
) -> Option<(u16, serde_json::Value)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = response.parse(&raw).ok()? {
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
            };
            let length: usize = header("content-length")?.parse().ok()?;
            if raw.len() >= len + length {
                let status = response.code?;
                let body = serde_json::from_slice(&raw[len..len + length])
                    .unwrap_or(serde_json::Value::Null);
                if body["reason"] == "loading" || body["error"].to_string().contains("loading") {
                    assert_eq!(
                        header("connection").as_deref(),
                        Some("close"),
                        "{method} {path}: a loading answer closes its connection"
                    );
                }
                return Some((status, body));
            }
        }
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// Starts `tidings serve --check-history` with `extra` arguments on a free
/// loopback port, its history in `dir`; returns the process, its address
/// and a task that yields all it writes to stderr once it exits.
fn serve_checking(
    dir: &std::path::Path,
    extra: &[&str],
) -> (Child, SocketAddr, tokio::task::JoinHandle<String>) {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("serve")
        .args(["--listen", &addr.to_string(), "--check-history"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    (child, addr, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_are_answered_while_the_history_loads() {
    let dir = TempDir::new();
    let (first, last) = crashed_history(dir.path());
    let (mut child, addr, log) = serve_checking(dir.path(), &[]);

    // Ask as fast as possible from the start until it is ready.
    let started = Instant::now();
    let mut loading_seen = 0;
    let mut publish_refused = false;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the hub exited ({status}): {}", log.await.unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ready after a minute"
        );
        let Some((status, body)) = get(addr, "/readyz").await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        if status == 200 {
            assert_eq!(body["status"], "ready");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "not_ready", "{body}");
        assert_eq!(body["reason"], "loading", "{body}");
        assert!(body["error"].as_str().unwrap().contains("loading"));
        loading_seen += 1;
        if let Some((status, body)) = get(addr, "/healthz").await {
            assert_eq!((status, &body["status"]), (200, &"ok".into()), "{body}");
        }
        if !publish_refused
            && let Some((status, body)) =
                request(addr, "POST", "/.well-known/mercure", "topic=t&data=early").await
            && status != 200
        {
            assert_eq!(status, 503, "{body}");
            assert!(
                body["error"].as_str().unwrap().contains("loading"),
                "{body}"
            );
            publish_refused = true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        loading_seen > 0 && publish_refused,
        "the history loaded before anything was asked ({loading_seen} loading answers)"
    );

    // Loaded: the whole history is there, and publishing works.
    let (status, _) = get(addr, "/healthz").await.unwrap();
    assert_eq!(status, 200);
    let mut stream = support::Stream::send(
        TcpStream::connect(addr).await.unwrap(),
        addr,
        "/.well-known/mercure?topic=%2A",
        &[("Last-Event-ID", &format!("urn:tidings:{}", last - 1))],
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.next_event().await.unwrap().last_event_id,
        format!("urn:tidings:{last}")
    );
    let mut publisher = TcpStream::connect(addr).await.unwrap();
    let form = "topic=t&data=after";
    publisher
        .write_all(
            format!(
                "POST /.well-known/mercure HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
                form.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    publisher.read_to_end(&mut raw).await.unwrap();
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let after = stream.next_event().await.unwrap();
    assert_eq!(after.data, "after");
    assert!(first < last);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// SIGTERM while the history loads: the hub stops once the opening it
/// cannot interrupt has finished, and leaves the history closed cleanly,
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_while_loading_stops_the_hub_and_leaves_a_clean_history() {
    let dir = TempDir::new();
    let (first, last) = crashed_history(dir.path());
    let (mut child, addr, log) = serve_checking(dir.path(), &["--log-json"]);
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "never loading");
        match get(addr, "/readyz").await {
            Some((503, body)) if body["reason"] == "loading" => break,
            Some((status, body)) => panic!("loaded before the test could ask: {status} {body}"),
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the hub did not stop")
        .unwrap();
    let log = log.await.unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("stopped before the history finished loading"),
        "{log}"
    );
    assert!(log.contains("\"message\":\"loading the history"), "{log}");
    assert!(!log.contains("\"message\":\"listening\""), "{log}");
    let store = DiskStore::open(dir.path(), Options::default()).unwrap();
    assert!(!store.report().repaired, "closed cleanly");
    assert_eq!(
        store.bounds().unwrap(),
        tidings_core::Bounds {
            first,
            next: last + 1
        }
    );
}
