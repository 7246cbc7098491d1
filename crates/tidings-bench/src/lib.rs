//! `tidings-bench`: the load generator of Tidings, and of its peers.
//!
//! It measures any HTTP/1.1 Server-Sent Events server that publishes over
//! HTTP: the Tidings hub (Mercure protocol) and Nchan side by side, with the
//! same tool in the same run. See `docs/load-generator.md`.
//!
//! - [`fanout`]: N subscribers, M stamped events at E/s: delivery,
//!   duplicates, order, latency, throughput, server memory and CPU;
//! - [`churn`]: connect, read the first bytes, disconnect, at a steady rate;
//! - [`shard`]: more subscribers than one process may hold files for;
//! - the per-event path: [`body`] (HTTP body framing), [`scan`] (stamps in
//!   the event stream), [`track`] (per-subscriber order), [`swarm`] (the
//!   subscribers of one process).
//!
//! The tool runs on Linux only: it samples the server in `/proc`, binds
//! with `IP_BIND_ADDRESS_NO_PORT`, delays ACKs with `TCP_QUICKACK`, reads
//! its threads' CPU with `RUSAGE_THREAD`. On other systems only the
//! per-event parsing modules build ([`body`], [`payload`], [`scan`],
//! [`stats`], [`target`], [`track`]), so that the workspace builds there,
//! and the command says that it runs on Linux only.

#[cfg(target_os = "linux")]
pub mod app;
pub mod body;
#[cfg(target_os = "linux")]
pub mod churn;
#[cfg(target_os = "linux")]
pub mod cli;
#[cfg(target_os = "linux")]
pub mod fanout;
#[cfg(target_os = "linux")]
pub mod head;
pub mod payload;
#[cfg(target_os = "linux")]
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod progress;
#[cfg(target_os = "linux")]
pub mod publisher;
#[cfg(target_os = "linux")]
pub mod report;
pub mod scan;
#[cfg(target_os = "linux")]
pub mod shard;
#[cfg(target_os = "linux")]
pub mod sources;
pub mod stats;
#[cfg(target_os = "linux")]
pub mod swarm;
#[cfg(target_os = "linux")]
pub mod sys;
pub mod target;
pub mod track;
