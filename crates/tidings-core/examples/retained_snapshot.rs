//! How long a new subscription takes to start when the hub holds many
//! retained updates: time to its first frame and to its `id: HEAD` block
//! (the whole snapshot handed to the transport), for a template matching
//! 10,000 retained topics and an exact topic among 100,000, against the
//! same subscriptions on a hub that holds no retained update (the peer).
//!
//! ```sh
//! cargo run --release -p tidings-core --example retained_snapshot -- 200
//! ```
//! (the argument: subscriptions measured per case).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidings_core::{Hub, HubConfig, MemoryStore, Retention, Selector, SubscribeRequest, Update};

const PRICES: usize = 10_000;
const OTHERS: usize = 90_000;

fn request(selector: &str) -> SubscribeRequest {
    SubscribeRequest {
        selectors: vec![Selector::parse(selector)],
        last_event_id: None,
        auth: None,
    }
}

async fn hub(retained: bool) -> Hub {
    let config = HubConfig {
        retry: None,
        retained_topics: 200_000,
        ..HubConfig::default()
    };
    let hub = Hub::start(config, Arc::new(MemoryStore::new(Retention::default()))).unwrap();
    let topics = (0..PRICES)
        .map(|i| format!("https://example.com/prices/{i}"))
        .chain((0..OTHERS).map(|i| format!("https://example.com/other/{i}")));
    let mut batch = Vec::new();
    for topic in topics {
        batch.push(Update {
            topics: vec![topic],
            data: r#"{"price":123.45,"change":-0.5}"#.into(),
            retain: retained,
            ..Update::default()
        });
        if batch.len() == 1000 {
            hub.publish(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    hub
}

/// Time to the first frame after the opening comment, and to the HEAD
/// block; and how many events came before it.
async fn one(hub: &Hub, selector: &str) -> (Duration, Duration, usize) {
    let started = Instant::now();
    let mut sub = hub.subscribe(request(selector)).await.unwrap();
    let mut first = None;
    let mut events = 0;
    loop {
        let mut out = Vec::new();
        sub.next(&mut out).await.unwrap();
        for frame in &out {
            if &frame[..] == b":\n" {
                continue;
            }
            first.get_or_insert_with(|| started.elapsed());
            if frame.windows(6).any(|w| w == b"\ndata:") {
                events += 1;
            } else if frame.starts_with(b"id: ") {
                return (first.unwrap(), started.elapsed(), events);
            }
        }
    }
}

fn stats(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    format!(
        "p50 {:>9.1} µs  p99 {:>9.1} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(200, |a| a.parse().expect("subscriptions per case"));
    let with = hub(true).await;
    let without = hub(false).await;
    println!("{n} subscriptions per case; 100,000 events in each hub, retained in the first");
    for (name, selector) in [
        (
            "template matching 10,000",
            "https://example.com/prices/{id}",
        ),
        ("exact among 100,000", "https://example.com/other/4242"),
        ("* (all 100,000)", "*"),
    ] {
        for (hub_name, hub, runs) in [
            ("retained", &with, if selector == "*" { n / 10 } else { n }),
            ("peer (none retained)", &without, n),
        ] {
            let mut firsts = Vec::new();
            let mut heads = Vec::new();
            let mut events = 0;
            for _ in 0..runs.max(1) {
                let (first, head, got) = one(hub, selector).await;
                firsts.push(first);
                heads.push(head);
                events = got;
            }
            println!(
                "{name:<26} {hub_name:<21} events {events:>6}  first frame {}  HEAD {}",
                stats(firsts),
                stats(heads)
            );
        }
    }
}
