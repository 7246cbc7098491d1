//! End to end: the `tidings-bench` binary against a tiny real SSE server
//! started here on loopback (chunked `text/event-stream`, a Mercure-style
//! form publish endpoint and a raw one), reading the JSON result it writes.
//! The server can also misbehave (send every event twice, swap neighbours),
//! to show that the tool notices.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// How the test server misbehaves.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    /// Send every event twice.
    duplicate: bool,
    /// Hold each even-numbered event back and send it after the next one.
    swap: bool,
}

/// A tiny SSE hub: `GET /sub` streams, `POST /pub` (raw body) and
/// `POST /.well-known/mercure` (form `data=`) publish to every stream.
async fn serve(faults: Faults) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, _) = broadcast::channel::<Bytes>(4096);
    let ids = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(connection(stream, tx.clone(), Arc::clone(&ids), faults));
        }
    });
    addr
}

async fn connection(
    stream: TcpStream,
    tx: broadcast::Sender<Bytes>,
    ids: Arc<AtomicU64>,
    faults: Faults,
) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        // Request line and headers.
        let mut request_line = String::new();
        if read.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut content_length = 0;
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap();
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if method == "GET" {
            return stream_events(write, tx.subscribe(), faults).await;
        }
        let mut body = vec![0; content_length];
        read.read_exact(&mut body).await.unwrap();
        let data = if path.starts_with("/.well-known/mercure") {
            form_urlencoded::parse(&body)
                .find(|(k, _)| k == "data")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        } else {
            String::from_utf8(body).unwrap()
        };
        let id = format!("urn:test:{}", ids.fetch_add(1, Ordering::Relaxed));
        let event = tidings_codec::encode(&tidings_codec::Event::new(&data).id(&id)).unwrap();
        let _ = tx.send(event);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{id}",
            id.len()
        );
        if write.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn stream_events(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    mut events: broadcast::Receiver<Bytes>,
    faults: Faults,
) {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    if write.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let chunk = |bytes: &[u8]| {
        let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
        out
    };
    let hello = chunk(&tidings_codec::comment("hello"));
    if write.write_all(&hello).await.is_err() {
        return;
    }
    let mut held: Option<Bytes> = None;
    let mut count = 0u64;
    while let Ok(event) = events.recv().await {
        let mut out = Vec::new();
        let copies = if faults.duplicate { 2 } else { 1 };
        if faults.swap && count.is_multiple_of(2) {
            held = Some(event);
        } else {
            for _ in 0..copies {
                out.extend(chunk(&event));
            }
            if let Some(earlier) = held.take() {
                for _ in 0..copies {
                    out.extend(chunk(&earlier));
                }
            }
        }
        count += 1;
        if write.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn result_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tidings-bench-smoke-{}-{name}", std::process::id()))
}

/// Runs the tool with `args` (bounded in time) and returns its JSON result.
async fn bench(args: &[String], json: &PathBuf) -> Value {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings-bench"));
    command
        .args(args)
        .arg("--json")
        .arg(json)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("tidings-bench took too long")
        .unwrap();
    assert!(
        output.status.success(),
        "tidings-bench failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8(output.stdout).unwrap();
    assert!(
        summary.contains("delivered") || summary.contains("connects"),
        "{summary}"
    );
    let text = std::fs::read_to_string(json).unwrap();
    std::fs::remove_file(json).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn fanout_args(addr: std::net::SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "fanout",
        "--subscribers",
        "50",
        "--events",
        "20",
        "--rate",
        "200",
        "--warmup",
        "0.3",
        "--label",
        "smoke",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    args.extend(extra.iter().map(ToString::to_string));
    args.push("--sub-url".to_owned());
    args.push(format!("http://{addr}/sub"));
    args
}

/// Every one of `expected` (subscriber, event) pairs arrived once, in order.
fn assert_every_event_once(json: &Value, expected: u64) {
    let d = &json["delivery"];
    assert_eq!(d["expected"], expected, "{json:#}");
    assert_eq!(d["delivered"], expected, "{json:#}");
    assert_eq!(d["duplicates"], 0, "{json:#}");
    assert_eq!(d["out_of_order"], 0, "{json:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_publishing_every_event_once_in_order() {
    let addr = serve(Faults::default()).await;
    let pub_url = format!("http://{addr}/pub");
    let args = fanout_args(
        addr,
        &["--pub-format", "raw", "--pub-url", &pub_url, "--drain", "2"],
    );
    let json = bench(&args, &result_file("raw.json")).await;
    let d = &json["delivery"];
    assert_eq!(json["connect"]["connected"], 50, "{json:#}");
    assert_eq!(json["publish"]["ok"], 20, "{json:#}");
    assert_every_event_once(&json, 1000);
    assert_eq!(d["subscribers_complete"], 50, "{json:#}");
    assert_eq!(d["foreign"], 0, "{json:#}");
    assert_eq!(json["latency_ms"]["count"], 1000, "{json:#}");
    assert!(
        json["latency_ms"]["max"].as_f64().unwrap() < 5000.0,
        "{json:#}"
    );
    assert!(d["delivered_per_s"].as_f64().unwrap() > 0.0, "{json:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mercure_publishing_over_two_shards_and_two_source_addresses() {
    let addr = serve(Faults::default()).await;
    let pub_url = format!("http://{addr}/.well-known/mercure");
    let pid = std::process::id().to_string();
    let args = fanout_args(
        addr,
        &[
            "--pub-format",
            "mercure",
            "--topic",
            "https://example.com/bench",
            "--pub-url",
            &pub_url,
            "--shards",
            "2",
            "--source-ips",
            "127.0.0.1-127.0.0.2",
            "--server-pid",
            &pid,
            "--drain",
            "2",
        ],
    );
    let json = bench(&args, &result_file("mercure.json")).await;
    assert_eq!(json["settings"]["shards"], 2, "{json:#}");
    assert_eq!(json["tool"]["processes"], 2, "{json:#}");
    assert_every_event_once(&json, 1000);
    // Both shards' histograms reached the parent.
    assert_eq!(json["latency_ms"]["count"], 1000, "{json:#}");
    assert_eq!(json["connect"]["time_ms"]["count"], 50, "{json:#}");
    let server = &json["server"];
    assert!(
        server["before"]["rss_bytes"].as_u64().unwrap() > 0,
        "{json:#}"
    );
    assert!(
        server["idle"]["fds"].as_u64().unwrap() >= server["before"]["fds"].as_u64().unwrap() + 50,
        "{json:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_server_is_caught() {
    let addr = serve(Faults {
        duplicate: true,
        swap: true,
    })
    .await;
    let pub_url = format!("http://{addr}/pub");
    let args = fanout_args(
        addr,
        &[
            "--pub-format",
            "raw",
            "--pub-url",
            &pub_url,
            "--pub-connections",
            "1",
            "--drain",
            "1",
        ],
    );
    let json = bench(&args, &result_file("faulty.json")).await;
    let d = &json["delivery"];
    // Every event arrives (twice); in each swapped pair the earlier event
    // comes after the later one, which was sent once it had been answered.
    assert_eq!(d["delivered"], 1000, "{json:#}");
    assert_eq!(d["duplicates"], 1000, "{json:#}");
    assert_eq!(d["out_of_order"], 500, "{json:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_connects_and_disconnects() {
    let addr = serve(Faults::default()).await;
    let pid = std::process::id().to_string();
    let args: Vec<String> = [
        "churn",
        "--rate",
        "200",
        "--duration",
        "1",
        "--subscribers",
        "50",
        "--settle",
        "1",
        "--server-pid",
        &pid,
        "--sub-url",
        &format!("http://{addr}/sub"),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let json = bench(&args, &result_file("churn.json")).await;
    let completed = json["completed"].as_u64().unwrap();
    assert!((150..=200).contains(&completed), "{json:#}");
    assert_eq!(json["failed"], 0, "{json:#}");
    assert!(
        json["server"]["timeline"].as_array().unwrap().len() >= 2,
        "{json:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_fails_the_connections() {
    // Bind and drop a listener: nothing listens on that port any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let live = serve(Faults::default()).await;
    let pub_url = format!("http://{live}/pub");
    let args = fanout_args(
        addr,
        &[
            "--pub-format",
            "raw",
            "--pub-url",
            &pub_url,
            "--drain",
            "0.2",
        ],
    );
    let json = bench(&args, &result_file("refused.json")).await;
    assert_eq!(json["connect"]["connected"], 0, "{json:#}");
    assert_eq!(json["connect"]["failed"], 50, "{json:#}");
    assert_eq!(
        json["connect"]["errors"]["connect: connection refused"], 50,
        "{json:#}"
    );
    assert_eq!(json["delivery"]["expected"], 0, "{json:#}");
}
