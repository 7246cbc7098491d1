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

pub mod body;
pub mod churn;
pub mod cli;
pub mod fanout;
pub mod head;
pub mod payload;
pub mod procfs;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod scan;
pub mod shard;
pub mod sources;
pub mod stats;
pub mod swarm;
pub mod sys;
pub mod target;
pub mod track;
