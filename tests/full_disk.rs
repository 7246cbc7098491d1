//! The real hub with its data directory on a small file system that fills
//! up (a tmpfs the test mounts, grown again with `remount`): publishes that
//! find no room get 507 and a JSON error, nothing of them is delivered or
//! stored, subscribers keep streaming, `/readyz` says why, the refusals are
//! counted; once there is room again the hub takes publishes by itself,
//! and a restart replays every acknowledged event exactly once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;
#[path = "../crates/tidings-store/tests/tmpfs/mod.rs"]
mod tmpfs;

use std::time::{Duration, Instant};

use support::{Response, Stream, TestHub, encode};
use tidings_codec::Item;
use tmpfs::Tmpfs;

const ALL: &str = "/.well-known/mercure?topic=%2A";

/// The log lines that contain `text`, once there are at least `want` (the
/// log is read in the background) or a few seconds passed.
async fn log_lines(hub: &TestHub, text: &str, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let lines: Vec<String> = hub
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(text))
            .cloned()
            .collect();
        if lines.len() >= want || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(hub: &TestHub, path: &str) -> Response {
    hub.request("GET", path, &[], b"").await
}

async fn publish(hub: &TestHub, data: &str) -> Response {
    hub.publish_form(&format!("topic=big&data={}", encode(data)))
        .await
}

/// Reads the next item that is not an event: a heartbeat comment proves
/// the stream is alive; an event here would be one nobody acknowledged.
async fn heartbeat(stream: &mut Stream) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no heartbeat");
        match stream.next_item().await {
            Some(Item::Comment(_)) => return,
            Some(Item::Retry(_)) => {}
            Some(Item::Event(event)) => panic!("an event nobody acknowledged: {event:?}"),
            None => panic!("the stream ended"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_directory_gets_507_and_the_hub_recovers_by_itself() {
    let Some(fs) = Tmpfs::mount("3m") else {
        return;
    };
    let dir = fs.path().join("data");
    let mut hub = TestHub::start_in(&dir, &["--heartbeat", "1"]).await;
    assert_eq!(get(&hub, "/readyz").await.json()["status"], "ready");
    let mut live = hub.subscribe(ALL, &[]).await;
    assert_eq!(live.status, 200);

    // Big events until the disk is full.
    let filler = "x".repeat(50_000);
    let mut acked: Vec<(String, String)> = Vec::new();
    let refused = loop {
        assert!(acked.len() < 200, "3 MiB never filled up");
        let data = format!("{} {filler}", acked.len());
        let response = publish(&hub, &data).await;
        match response.status {
            200 => acked.push((response.text(), data)),
            507 => break response,
            other => panic!("{other}: {}", response.text()),
        }
    };
    assert!(acked.len() >= 5, "only {} fitted", acked.len());
    assert!(
        refused
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    let error = refused.error();
    assert!(error.contains("disk is full"), "{error}");
    assert!(error.contains("nothing was published"), "{error}");
    // Refused at once while it lasts, small publishes too.
    for i in 0..3 {
        let started = Instant::now();
        let response = publish(&hub, &format!("small {i}")).await;
        assert_eq!(response.status, 507, "{}", response.text());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    // Not ready, and why; alive all the same; refusals counted by cause.
    let ready = get(&hub, "/readyz").await;
    assert_eq!(ready.status, 503);
    let body = ready.json();
    assert_eq!(body["reason"], "disk_full", "{body}");
    assert!(body["error"].as_str().unwrap().contains("disk is full"));
    assert_eq!(get(&hub, "/healthz").await.status, 200);
    let counted = hub
        .metric("tidings_publishes_refused_total{cause=\"disk_full\"}")
        .await;
    assert!(counted >= 4.0, "{counted}");

    // The live subscriber got exactly what was acknowledged, and keeps
    // streaming.
    let events = live.events(acked.len()).await;
    let got: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.last_event_id.clone(), e.data.clone()))
        .collect();
    assert_eq!(got, acked);
    heartbeat(&mut live).await;
    // Everything acknowledged stays replayable meanwhile.
    let mut resumed = hub
        .subscribe(ALL, &[("Last-Event-ID", acked[0].0.as_str())])
        .await;
    assert_eq!(resumed.status, 200);
    let replayed = resumed.events(acked.len() - 1).await;
    let ids: Vec<&str> = replayed.iter().map(|e| e.last_event_id.as_str()).collect();
    let want: Vec<&str> = acked[1..].iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, want);

    // One log line for the start, none for each refusal.
    assert_eq!(log_lines(&hub, "disk is full", 1).await.len(), 1);
    assert!(log_lines(&hub, "writes again", 0).await.is_empty());

    // Room again: the hub takes publishes by itself, within a few seconds.
    fs.resize("64m");
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let data = format!("after {attempt}");
        attempt += 1;
        let response = publish(&hub, &data).await;
        if response.status == 200 {
            // The order goes on where it stopped: no number skipped or
            // used twice by the refused publishes.
            let seq =
                |id: &str| -> u64 { id.strip_prefix("urn:tidings:").unwrap().parse().unwrap() };
            let before = seq(&acked.last().unwrap().0);
            assert_eq!(seq(&response.text()), before + 1);
            acked.push((response.text(), data));
            break;
        }
        assert_eq!(response.status, 507, "{}", response.text());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still refused after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&hub, "/readyz").await.status, 200);
    let last = acked.last().unwrap().clone();
    let event = live.next_event().await.unwrap();
    assert_eq!((event.last_event_id, event.data), last);
    assert_eq!(log_lines(&hub, "disk is full", 1).await.len(), 1);
    assert_eq!(log_lines(&hub, "writes again", 1).await.len(), 1);

    // A restart on the same directory replays every acknowledged event
    // exactly once, and nothing that was refused. (The file was reopened
    // during the episode; it is still closed cleanly.)
    assert!(hub.terminate().await.success());
    let again = TestHub::start_in(&dir, &[]).await;
    let opened = log_lines(&again, "history opened", 1).await;
    assert!(opened[0].contains("\"repaired\":false"), "{opened:?}");
    let mut replay = again.subscribe(ALL, &[("Last-Event-ID", "earliest")]).await;
    let replayed = replay.events(acked.len()).await;
    let got: Vec<(String, String)> = replayed
        .into_iter()
        .map(|e| (e.last_event_id, e.data))
        .collect();
    assert_eq!(got, acked);
    replay.no_event_within(Duration::from_millis(300)).await;
}
