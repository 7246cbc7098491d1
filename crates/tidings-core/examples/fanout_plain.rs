//! Fan-out throughput of ordinary updates (no `retain`), core level: 1,000
//! subscriptions on one topic (half exact, half a template), 20,000 events
//! published in batches of 100, every subscription drained on its own
//! task. Prints events delivered per second. Written to compare the core
//! with and without retained updates (the example compiles against both:
//! it uses no retained-update API).
//!
//! ```sh
//! cargo run --release -p tidings-core --example fanout_plain -- 5
//! ```
//! (the argument: rounds; each prints one figure).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Instant;

use tidings_core::{Hub, HubConfig, MemoryStore, Retention, Selector, SubscribeRequest, Update};

const SUBSCRIBERS: usize = 1000;
const EVENTS: usize = 20_000;
const BATCH: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(5, |a| a.parse().expect("rounds"));
    for _ in 0..rounds {
        let config = HubConfig {
            retry: None,
            queue_capacity: EVENTS + 16,
            ..HubConfig::default()
        };
        let hub = Hub::start(config, Arc::new(MemoryStore::new(Retention::default()))).unwrap();
        let mut readers = Vec::new();
        for i in 0..SUBSCRIBERS {
            let selector = if i % 2 == 0 {
                "https://example.com/t/1"
            } else {
                "https://example.com/t/{n}"
            };
            let mut sub = hub
                .subscribe(SubscribeRequest {
                    selectors: vec![Selector::parse(selector)],
                    last_event_id: None,
                    auth: None,
                })
                .await
                .unwrap();
            readers.push(tokio::spawn(async move {
                let mut got = 0;
                let mut out = Vec::new();
                while got < EVENTS {
                    out.clear();
                    sub.next(&mut out).await.unwrap();
                    got += out.iter().filter(|f| f.starts_with(b"id: ")).count();
                }
            }));
        }
        let started = Instant::now();
        for _ in 0..EVENTS / BATCH {
            let batch = (0..BATCH)
                .map(|_| Update {
                    topics: vec!["https://example.com/t/1".into()],
                    data: r#"{"price":123.45}"#.into(),
                    ..Update::default()
                })
                .collect();
            hub.publish(batch).await.unwrap();
        }
        for reader in readers {
            reader.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:.2} million events delivered per second ({} subscribers x {} events in {:.2} s)",
            (SUBSCRIBERS * EVENTS) as f64 / secs / 1e6,
            SUBSCRIBERS,
            EVENTS,
            secs
        );
        hub.shutdown().await;
    }
}
