//! Cluster mode on NATS JetStream: three real hubs sharing a real
//! `nats-server` (started by the test on a free loopback port). The
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
    cluster_support::three_nodes_hopping(Kind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_outage_fails_publishes_fast_and_loses_nothing() {
    cluster_support::engine_outage(Kind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_engine_gets_507_and_publishing_comes_back_by_itself() {
    cluster_support::engine_full(Kind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_a_killed_node_resume_exactly_elsewhere() {
    cluster_support::node_death(Kind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_updates_are_shared_by_every_hub() {
    cluster_support::retained::retained_across_hubs(Kind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_history_gives_a_gap_notice_on_any_node() {
    cluster_support::retention_and_gaps(Kind::Nats).await;
}
