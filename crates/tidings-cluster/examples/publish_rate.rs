//! Benchmark: acknowledged publishes per second through one hub over HTTP,
//! with 1 and 16 concurrent publishers (keep-alive HTTP/1.1 connections,
//! each awaiting its `200` before sending the next), for a single hub with
//! its history in memory and for a hub in cluster mode on Redis and on
//! NATS JetStream, in the same run.
//!
//! It starts everything itself: `redis-server` (`--appendonly yes
//! --appendfsync always`, as the tests run it) and `nats-server -js` on
//! free loopback ports with their data in temporary directories, and the
//! `tidings` binary given (build it first: `cargo build --release`).
//!
//! ```sh
//! cargo run --release -p tidings-cluster --example publish_rate -- \
//!     target/release/tidings [seconds] [publishers,…]
//! ```
//!
//! Defaults: 5 seconds per case, 1,16 publishers. `REDIS_FSYNC=everysec`
//! runs Redis with `appendfsync everysec` instead.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark that reports on stdout"
)]

#[path = "../tests/engines/mod.rs"]
mod engines;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engines::{Engine, Kind};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A hub process, killed on drop.
struct Hub {
    _child: Child,
    addr: SocketAddr,
}

async fn hub(bin: &str, args: &[&str]) -> Hub {
    let mut child = Command::new(bin)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--log-json", "--log", "info"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start tidings");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if value["fields"]["message"] == "listening" {
                return value["fields"]["address"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
            }
        }
        panic!("the hub exited before listening")
    })
    .await
    .expect("the hub did not start");
    // Keep draining its log so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Hub {
        _child: child,
        addr,
    }
}

/// One keep-alive publisher: publishes until `stop`, counting `200`s.
async fn publisher(addr: SocketAddr, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.set_nodelay(true).unwrap();
    let data = "x".repeat(100);
    let body = format!("topic=bench&data={data}");
    let request = format!(
        "POST /.well-known/mercure HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        conn.write_all(request.as_bytes()).await.unwrap();
        buf.clear();
        let (status, end) = loop {
            let mut chunk = [0u8; 2048];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the hub closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response.parse(&buf).unwrap() {
                let length: usize = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .unwrap_or(0);
                break (response.code.unwrap(), head + length);
            }
        };
        while buf.len() < end {
            let mut chunk = [0u8; 2048];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the hub closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&buf));
        acked.fetch_add(1, Ordering::Relaxed);
    }
}

/// Acknowledged publishes per second with `publishers` connections.
async fn measure(addr: SocketAddr, publishers: usize, seconds: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    // A short warm-up: connections, caches, the engine's first script load.
    let warm = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..publishers {
        tasks.push(tokio::spawn(publisher(
            addr,
            Arc::clone(&warm),
            Arc::new(AtomicU64::new(0)),
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    warm.store(true, Ordering::Relaxed);
    for task in tasks.drain(..) {
        task.await.unwrap();
    }
    let started = Instant::now();
    for _ in 0..publishers {
        tasks.push(tokio::spawn(publisher(
            addr,
            Arc::clone(&stop),
            Arc::clone(&acked),
        )));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .unwrap_or_else(|| "target/release/tidings".into());
    let seconds: f64 = args.next().map_or(5.0, |a| a.parse().unwrap());
    let counts: Vec<usize> = args.next().map_or(vec![1, 16], |a| {
        a.split(',').map(|n| n.parse().unwrap()).collect()
    });

    let redis = Engine::start(Kind::Redis).await;
    if let Ok(fsync) = std::env::var("REDIS_FSYNC") {
        let status = std::process::Command::new("redis-cli")
            .args([
                "-p",
                &redis.port.to_string(),
                "config",
                "set",
                "appendfsync",
                &fsync,
            ])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success());
    }
    let nats = Engine::start(Kind::Nats).await;
    let redis_url = redis.url();
    let nats_url = nats.url();
    let setups = [
        ("single hub, memory", hub(&bin, &["--memory"]).await),
        (
            "cluster, Redis",
            hub(&bin, &["--cluster", &redis_url]).await,
        ),
        ("cluster, NATS", hub(&bin, &["--cluster", &nats_url]).await),
    ];
    println!(
        "| setup | {} |",
        counts
            .iter()
            .map(|n| format!("{n} publisher(s)"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(counts.len()));
    for (name, hub) in &setups {
        let mut row = format!("| {name} |");
        for &n in &counts {
            let rate = measure(hub.addr, n, seconds).await;
            row.push_str(&format!(" {rate:.0}/s |"));
        }
        println!("{row}");
    }
}
