//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::publisher::PubFormat;

/// Load generator for SSE hubs (Tidings, Nchan, any EventSource server):
/// fan-out throughput, publish-to-receive latency, memory per subscriber,
/// connection churn.
#[derive(Debug, Parser)]
#[command(name = "tidings-bench", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// N subscribers, then M stamped events at E per second: delivery,
    /// order, latency, throughput, server memory and CPU. A latency run is
    /// a fan-out run at a low rate.
    Fanout(FanoutArgs),
    /// Subscribers that connect, read the first bytes and disconnect, at a
    /// steady rate: achieved rate, errors, server memory over time.
    Churn(ChurnArgs),
    /// Prints the one-line summary of result files, and how each fan-out
    /// run compares with the first.
    Compare {
        /// Result files written by `--json`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// A shard process (started by `fanout --shards`; reads its orders on
    /// stdin).
    #[command(name = "__shard", hide = true)]
    Shard,
}

/// Options common to every run.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The full subscribe URL, e.g.
    /// http://127.0.0.1:8080/.well-known/mercure?topic=bench or
    /// http://127.0.0.1:8090/sub/bench.
    #[arg(long)]
    pub sub_url: String,
    /// Extra header on subscribe requests, `Name: value` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Source addresses: a count (50 = 127.0.0.1-127.0.0.50), a range
    /// (127.0.0.1-127.0.0.50), a comma-separated list, or `none`. Default:
    /// one 127.0.0.x per 20,000 connections when the server is on IPv4
    /// loopback, else none.
    #[arg(long)]
    pub source_ips: Option<String>,
    /// The server's process id: its RSS, PSS, CPU and open files (and its
    /// descendants', e.g. nginx workers) are sampled from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// How long opening one subscription may take, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout: f64,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Name of the run in the summary and the JSON (e.g. the server's name).
    #[arg(long, default_value = "run")]
    pub label: String,
    /// Draw the progress bar even when stderr is not a terminal.
    #[arg(long)]
    pub progress: bool,
}

/// `fanout` options.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Options common to every run.
    #[command(flatten)]
    pub common: Common,
    /// The publish URL, e.g. http://127.0.0.1:8080/.well-known/mercure or
    /// http://127.0.0.1:8090/pub/bench.
    #[arg(long)]
    pub pub_url: String,
    /// mercure: form `topic=…&data=…`; raw: the body is the data (Nchan).
    #[arg(long, value_enum, default_value = "mercure")]
    pub pub_format: PubFormat,
    /// The topic published to (mercure format).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Extra header on publish requests, `Name: value` (repeatable), e.g.
    /// `Authorization: Bearer JWT`.
    #[arg(long = "pub-header")]
    pub pub_headers: Vec<String>,
    /// Subscribers to open.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Subscriptions opened per second (0: as fast as possible).
    #[arg(long, default_value_t = 5000.0)]
    pub connect_rate: f64,
    /// Events to publish (0: only connect, wait, and measure memory).
    #[arg(long, default_value_t = 1000)]
    pub events: u32,
    /// Events published per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Size of each event's data in bytes (the stamp is padded to it).
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Seconds between the last subscription opening and the first event.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// After the last event, stop waiting when nothing arrived for this
    /// many seconds.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Processes holding subscribers (0: as few as the open-file limit
    /// allows). With more than one, the subscribers live in child
    /// processes and this one publishes.
    #[arg(long, default_value_t = 0)]
    pub shards: usize,
    /// How long one publish may take, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub pub_timeout: f64,
    /// Publishing connections: how many publishes may be in flight at once,
    /// so that a server that answers slower than the rate still gets the
    /// rate. 1 = strictly one after the other.
    #[arg(long, default_value_t = 8)]
    pub pub_connections: usize,
    /// Subscribers delay their TCP ACKs (TCP_QUICKACK off, re-armed after
    /// each read) instead of acknowledging every read at once as Linux
    /// does for a receive-only connection. On loopback each ACK costs both
    /// sides a trip through the TCP stack: when each subscriber gets more
    /// than about 25 events/s this cuts the tool's CPU per event by about a
    /// quarter and the server's too, so use it for every server of a
    /// comparison or for none.
    #[arg(long)]
    pub delayed_ack: bool,
    /// Churn alongside the measured subscribers: connect-and-disconnect
    /// cycles per second (separate connections that subscribe to the same
    /// URL, read the response head and close) during the second half of
    /// the publishing. The report then has the latency of each half, the
    /// first without churn and the second with it, and their ratio.
    /// 0: no churn.
    #[arg(long, default_value_t = 0.0)]
    pub churn_rate: f64,
    /// Churn cycles allowed in flight at once (each holds a descriptor of
    /// this process besides the subscribers).
    #[arg(long, default_value_t = 1000)]
    pub churn_in_flight: usize,
    /// Source addresses of the churn connections (as --source-ips).
    /// Default: on IPv4 loopback, the 127.0.0.x addresses right after the
    /// subscribers', one per 10,000 cycles a minute (each closed
    /// connection stays in TIME_WAIT for a minute).
    #[arg(long)]
    pub churn_source_ips: Option<String>,
    /// Events published less than this many seconds before the churn
    /// starts, or after it started, belong to neither phase.
    #[arg(long, default_value_t = 1.0)]
    pub churn_guard: f64,
}

/// `churn` options.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    /// Options common to every run.
    #[command(flatten)]
    pub common: Common,
    /// Connect-and-disconnect cycles per second (each is one connect and one
    /// disconnect: 2,500 cycles/s = 5,000 connects+disconnects/s).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of churn.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Cycles allowed in flight at once (the subscribers that come and go).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// How long each connection stays open after its first bytes, ms.
    #[arg(long, default_value_t = 0)]
    pub hold_ms: u64,
    /// Seconds to keep sampling the server after the churn stops.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
}
