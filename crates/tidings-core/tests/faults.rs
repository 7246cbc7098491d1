//! The hub core when its store cannot write: publishes refused with the
//! store's reason and nothing of them delivered, subscribers unaffected,
//! readiness saying why, and publishing back by itself once the store can
//! write again, with no hole and no repeat in the order.
//!
//! The store here is the in-memory one behind a byte quota, so that the
//! hub's side is tested alone; the durable store on a real full disk is
//! tested in `tidings-store` and by the workspace's `full_disk` test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_core::{
    Bounds, Event, Hub, HubConfig, MemoryStore, PublishError, Readiness, Retention, Selector,
    Store, StoreError, StoreErrorKind, SubscribeRequest, Update,
};

/// The in-memory store with room for so many bytes of frames.
#[derive(Debug)]
struct Quota {
    /// Where events go.
    inner: MemoryStore,
    /// Bytes of frames it still takes.
    left: Mutex<u64>,
}

impl Quota {
    fn grant(&self, bytes: u64) {
        *self.left.lock().unwrap() += bytes;
    }
}

fn full() -> StoreError {
    StoreError::new(StoreErrorKind::Full, "no space left on the test's quota")
}

impl Store for Quota {
    fn append(&self, events: &[Arc<Event>]) -> Result<(), StoreError> {
        let need: u64 = events.iter().map(|e| e.frame.len() as u64).sum();
        let mut left = self.left.lock().unwrap();
        if need > *left {
            return Err(full());
        }
        *left -= need;
        self.inner.append(events)
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event>>, StoreError> {
        self.inner.read_after(after, limit)
    }

    fn find_id(&self, id: &str) -> Result<Option<Arc<Event>>, StoreError> {
        self.inner.find_id(id)
    }

    fn bounds(&self) -> Result<Bounds, StoreError> {
        self.inner.bounds()
    }

    fn enforce_retention(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.inner.enforce_retention(now_ms)
    }

    fn blocking(&self) -> bool {
        false
    }

    fn recover(&self) -> Result<(), StoreError> {
        if *self.left.lock().unwrap() >= 1000 {
            Ok(())
        } else {
            Err(full())
        }
    }
}

fn update(data: &str) -> Update {
    Update {
        topics: vec!["t".into()],
        data: data.into(),
        ..Update::default()
    }
}

/// The `data:` of each event frame in `frames`.
fn data(frames: &[Bytes]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| {
            let text = std::str::from_utf8(f).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_refuses_publishes_and_the_hub_comes_back_by_itself() {
    let quota = Arc::new(Quota {
        inner: MemoryStore::new(Retention::default()),
        left: Mutex::new(2_000),
    });
    let config = HubConfig {
        retry: None,
        ..HubConfig::default()
    };
    let hub = Hub::start(config, Arc::clone(&quota) as Arc<dyn Store>).unwrap();
    assert_eq!(hub.readiness(), Readiness::Ready);
    let mut sub = hub
        .subscribe(SubscribeRequest {
            selectors: vec![Selector::parse("*")],
            last_event_id: None,
            auth: None,
        })
        .await
        .unwrap();

    let mut acked = Vec::new();
    let refused = loop {
        assert!(acked.len() < 100, "the quota never ran out");
        let data = format!("event {}", acked.len());
        match hub.publish(vec![update(&data)]).await {
            Ok(published) => acked.push((published[0].seq, data)),
            Err(err) => break err,
        }
    };
    assert!(
        matches!(&refused, PublishError::Store(e) if e.kind == StoreErrorKind::Full),
        "{refused:?}"
    );
    assert_eq!(refused.cause(), "disk_full");
    assert!(refused.is_refusal());
    assert_eq!(hub.readiness(), Readiness::DiskFull);
    // Still refused, whatever is published, while the store is full.
    for _ in 0..3 {
        let again = hub.publish(vec![update("refused")]).await.unwrap_err();
        assert_eq!(again.cause(), "disk_full");
    }
    assert_eq!(hub.readiness(), Readiness::DiskFull);

    // The subscriber got exactly what was acknowledged, and nothing else.
    let mut got = Vec::new();
    while got.len() < acked.len() {
        let mut frames = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), sub.next(&mut frames))
            .await
            .unwrap()
            .unwrap();
        got.extend(data(&frames));
    }
    let want: Vec<String> = acked.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(got, want);

    // Recovery is tried (at once, then every second) and fails while the
    // store is full: still refused.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(hub.readiness(), Readiness::DiskFull);
    let again = hub.publish(vec![update("refused")]).await.unwrap_err();
    assert_eq!(again.cause(), "disk_full");

    // Room again: the hub notices by itself within a few seconds.
    quota.grant(1_000_000);
    let deadline = Instant::now() + Duration::from_secs(5);
    while hub.readiness() != Readiness::Ready {
        assert!(Instant::now() < deadline, "still {:?}", hub.readiness());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = hub.publish(vec![update("after")]).await.unwrap();
    // The order goes on where it stopped: no hole, no repeat.
    assert_eq!(published[0].seq, acked.last().unwrap().0 + 1);
    let mut frames = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sub.next(&mut frames))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(data(&frames), ["after"]);
    let stored = hub.bounds().await.unwrap();
    assert_eq!(stored.next, published[0].seq + 1);
    hub.shutdown().await;
    assert_eq!(hub.readiness(), Readiness::ShuttingDown);
}
