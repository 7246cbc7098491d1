//! Load tool: acknowledged publishes per second over HTTP. N keep-alive
//! HTTP/1.1 connections, each posting a form-encoded ~100-byte update and
//! waiting for its `200` before the next, against a running hub.
//!
//! ```sh
//! tidings serve --listen 127.0.0.1:8090 --data-dir /tmp/bench-data &   # or --memory
//! cargo run --release -p tidings-store --example http_publish -- 127.0.0.1:8090 [seconds] [connections,…]
//! ```
//!
//! Defaults: 5 seconds per case, 1,16,256 connections.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a load tool that reports on stdout"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn form(connection: usize, n: u64) -> String {
    let mut data = format!("%7B%22c%22%3A{connection}%2C%22n%22%3A{n}%7D");
    while data.len() < 100 {
        data.push('x');
    }
    format!("topic=https%3A%2F%2Fbench.example%2F{connection}&data={data}")
}

/// Posts until `deadline`; returns the acknowledged publishes and their
/// latencies in microseconds.
async fn publisher(addr: SocketAddr, connection: usize, deadline: Instant) -> Vec<u32> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = Vec::with_capacity(4096);
    let mut latencies = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let body = form(connection, n);
        let request = format!(
            "POST /.well-known/mercure HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        stream.write_all(request.as_bytes()).await.unwrap();
        let status = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response.parse(&buf).unwrap() {
                let length: usize = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .expect("a content-length");
                if buf.len() >= head + length {
                    let status = response.code.unwrap();
                    buf.drain(..head + length);
                    break status;
                }
            }
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the hub closed the connection");
            buf.extend_from_slice(&chunk[..read]);
        };
        assert_eq!(status, 200, "publish refused");
        latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        n += 1;
    }
    latencies
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .expect("usage: http_publish HOST:PORT [seconds] [connections,…]")
        .parse()
        .expect("HOST:PORT");
    let seconds: f64 = args.next().map_or(5.0, |s| s.parse().expect("seconds"));
    let counts: Vec<usize> = args.next().map_or(vec![1, 16, 256], |s| {
        s.split(',')
            .map(|n| n.parse().expect("connections"))
            .collect()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| connections | publishes/s | p50 ms | p99 ms |");
    println!("|---:|---:|---:|---:|");
    for connections in counts {
        let (acked, elapsed, mut latencies) = runtime.block_on(async {
            let start = Instant::now();
            let deadline = start + Duration::from_secs_f64(seconds);
            let tasks: Vec<_> = (0..connections)
                .map(|c| tokio::spawn(publisher(addr, c, deadline)))
                .collect();
            let mut latencies = Vec::new();
            for task in tasks {
                latencies.extend(task.await.unwrap());
            }
            (latencies.len(), start.elapsed(), latencies)
        });
        latencies.sort_unstable();
        let q = |q: f64| {
            let at = ((latencies.len().saturating_sub(1)) as f64 * q) as usize;
            f64::from(latencies.get(at).copied().unwrap_or(0)) / 1e3
        };
        println!(
            "| {connections} | {:.0} | {:.2} | {:.2} |",
            acked as f64 / elapsed.as_secs_f64(),
            q(0.5),
            q(0.99)
        );
    }
}
