//! Cluster mode on Redis Streams: three real hubs sharing a real
//! `redis-server` (started by the test on a free loopback port). The
//! scenarios are in `cluster_support`; see docs/cluster.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cluster_support;
mod retained_support;
mod support;

use cluster_support::Kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_random_publishers_hopping_subscribers() {
    cluster_support::three_nodes_hopping(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_outage_fails_publishes_fast_and_loses_nothing() {
    cluster_support::engine_outage(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_engine_gets_507_and_publishing_comes_back_by_itself() {
    cluster_support::engine_full(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_a_killed_node_resume_exactly_elsewhere() {
    cluster_support::node_death(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_updates_are_shared_by_every_hub() {
    cluster_support::retained::retained_across_hubs(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_history_gives_a_gap_notice_on_any_node() {
    cluster_support::retention_and_gaps(Kind::Redis).await;
}

/// What `tidings serve` says when cluster mode cannot start: a clear error
/// and a failed exit, at once.
#[tokio::test]
async fn start_up_refusals() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("redis://{}", free.local_addr().unwrap());
    drop(free);
    let cases: [(&[&str], &str); 4] = [
        (
            &["--cluster", "redis://127.0.0.1:1", "--data-dir", "/tmp/x"],
            "--data-dir",
        ),
        (
            &["--cluster", "kafka://127.0.0.1:1"],
            "unknown cluster engine",
        ),
        (&["--cluster", "redis://127.0.0.1:1?prefix=a.b"], "prefix"),
        (&["--cluster", &nobody], "cannot reach the cluster engine"),
    ];
    for (args, expected) in cases {
        let started = std::time::Instant::now();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(support::WAIT, output)
            .await
            .expect("tidings serve did not exit")
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
