//! The JSON result files and their one-line summaries.
//!
//! Field names carry their unit (`_s`, `_ms`, `_bytes`, `_per_s`); latency
//! summaries are in milliseconds. `docs/load-generator.md` explains every
//! number.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::procfs::ProcSample;
use crate::publisher::PubFormat;
use crate::stats::Summary;

/// The result of `tidings-bench fanout`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutReport {
    /// Always `fanout`.
    pub kind: String,
    /// A name for this run (e.g. the server measured).
    pub label: String,
    /// The tool's version.
    pub tool_version: String,
    /// When the run started, Unix seconds.
    pub started_unix_s: u64,
    /// What was asked.
    pub settings: FanoutSettings,
    /// Opening the subscriptions.
    pub connect: ConnectReport,
    /// Publishing.
    pub publish: PublishReport,
    /// What reached the subscribers.
    pub delivery: DeliveryReport,
    /// Publish-to-receive latency over every delivered event, ms.
    pub latency_ms: Summary,
    /// The server's memory and CPU, when `--server-pid` was given.
    pub server: Option<ServerReport>,
    /// The tool's own cost.
    pub tool: ToolReport,
    /// The machine: what else was running.
    pub host: HostReport,
    /// With `--churn-rate`: the latency without and with churn alongside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<ChurnPhasesReport>,
}

/// A fan-out run with churn alongside (`--churn-rate`): the first half of
/// the events published without churn, the second half with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnPhasesReport {
    /// Connect-and-disconnect cycles per second asked for.
    pub rate: f64,
    /// Cycles allowed in flight at once.
    pub max_in_flight: u64,
    /// Source addresses of the churn's connections.
    pub source_ips: String,
    /// Events sent less than this many seconds before the churn started or
    /// after it started are in neither phase.
    pub guard_s: f64,
    /// The events published without churn.
    pub baseline: PhaseReport,
    /// The events published with churn going on.
    pub churn: PhaseReport,
    /// churn p50 / baseline p50.
    pub p50_ratio: f64,
    /// churn p99 / baseline p99: what the churn cost the subscribers.
    pub p99_ratio: f64,
    /// What the churn's cycles did.
    pub cycles: ChurnCyclesReport,
}

/// One phase of a run with churn alongside.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    /// The first event of the phase (by number).
    pub events_from: u64,
    /// The event after the phase's last.
    pub events_to: u64,
    /// How long the phase lasted, seconds: from the first publish to the
    /// churn's start, or from its start to its stop.
    pub duration_s: f64,
    /// Publish-to-receive latency of the phase's events, ms.
    pub latency_ms: Summary,
    /// The server's CPU over the phase, in cores (with `--server-pid`).
    pub server_cpu_cores: Option<f64>,
    /// This process's CPU over the phase, in cores (all its threads: the
    /// subscribers when not sharded, the publisher, the churn).
    pub tool_cpu_cores: f64,
}

/// What the churn's connect-and-disconnect cycles did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChurnCyclesReport {
    /// Cycles started.
    pub started: u64,
    /// Cycles that got their response head and closed.
    pub completed: u64,
    /// Cycles that failed.
    pub failed: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Cycles not started because `max_in_flight` were running.
    pub skipped: u64,
    /// Completed cycles per second of the churn phase.
    pub cycles_per_s: f64,
    /// Connects plus disconnects per second: 2 × cycles per second.
    pub connects_and_disconnects_per_s: f64,
    /// Connect to response head, ms.
    pub time_to_first_bytes_ms: Summary,
    /// CPU time of the tool's churn thread, seconds.
    pub thread_cpu_s: f64,
    /// That CPU time per second of the churn phase, in cores: the part of
    /// the tool's core the churn took from the subscribers.
    pub thread_cpu_cores: f64,
}

/// The machine a run ran on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostReport {
    /// CPUs online.
    pub cpus: usize,
    /// One-minute load average when the run started.
    pub load_average_start: f64,
    /// One-minute load average when the run ended. Well above the CPUs the
    /// server and the tool use means other work competed with them.
    pub load_average_end: f64,
}

/// The fan-out run's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutSettings {
    /// Subscribe URL.
    pub sub_url: String,
    /// Publish URL.
    pub pub_url: String,
    /// How events were published.
    pub pub_format: PubFormat,
    /// The Mercure topic (for `mercure` format).
    pub topic: String,
    /// Subscribers asked for.
    pub subscribers: u64,
    /// Connections opened per second, over all shards.
    pub connect_rate: f64,
    /// Events to publish.
    pub events: u64,
    /// Events published per second.
    pub rate: f64,
    /// Size of each event's data, bytes.
    pub payload_bytes: usize,
    /// Pause between the last connection and the first event, seconds.
    pub warmup_s: f64,
    /// How long to wait for stragglers after the last event, seconds.
    pub drain_s: f64,
    /// Processes holding subscribers (0 extra processes when 1 and local).
    pub shards: usize,
    /// Source addresses used.
    pub source_ips: String,
    /// The server process measured.
    pub server_pid: Option<u32>,
    /// Subscribers delayed their ACKs (`--delayed-ack`).
    pub delayed_ack: bool,
    /// Publishing connections.
    pub pub_connections: usize,
}

/// How the subscriptions opened.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectReport {
    /// Subscribers asked for.
    pub requested: u64,
    /// Subscriptions that opened (status 200, `text/event-stream`).
    pub connected: u64,
    /// Subscriptions that did not.
    pub failed: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// From the first attempt to the last attempt's end, seconds.
    pub duration_s: f64,
    /// Opened subscriptions per second over that time.
    pub rate_per_s: f64,
    /// Time to open one subscription (TCP connect and response head), ms.
    pub time_ms: Summary,
}

/// How publishing went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublishReport {
    /// Events to publish.
    pub requested: u64,
    /// Publishes answered with a 2xx.
    pub ok: u64,
    /// Publishes that failed.
    pub failed: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Publishing connections: publishes in flight at most.
    pub connections: usize,
    /// From the first publish to the last answer, seconds.
    pub duration_s: f64,
    /// Events published per second over that time.
    pub rate_per_s: f64,
    /// The furthest a publish started behind its schedule, ms (the server
    /// answered slower than the rate allows).
    pub max_lag_ms: f64,
    /// Time from sending a publish to its answer, ms.
    pub response_ms: Summary,
}

/// What reached the subscribers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Subscriptions open when publishing started.
    pub subscribers: u64,
    /// subscribers × events published: what a perfect server delivers.
    pub expected: u64,
    /// Distinct (subscriber, event) pairs received.
    pub delivered: u64,
    /// expected − delivered (0 when more arrived than expected).
    pub missing: u64,
    /// delivered / expected.
    pub delivered_ratio: f64,
    /// Subscribers that received every event.
    pub subscribers_complete: u64,
    /// Events a subscriber received more than once (extra copies).
    pub duplicates: u64,
    /// Events a subscriber received after a later event.
    pub out_of_order: u64,
    /// Events of another run (another publisher, replayed history).
    pub foreign: u64,
    /// Events whose data was not one of ours.
    pub unrecognized: u64,
    /// Our run's events with a number never published.
    pub out_of_range: u64,
    /// Subscriptions that ended while publishing or draining.
    pub dropped: u64,
    /// Why they ended, by kind.
    pub drop_reasons: BTreeMap<String, u64>,
    /// From the first publish to the last event received, seconds.
    pub duration_s: f64,
    /// delivered / duration: the fan-out throughput.
    pub delivered_per_s: f64,
    /// subscribers × rate: what the publisher offered per second.
    pub offered_per_s: f64,
}

/// The server under test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerReport {
    /// The process (and its descendants) measured.
    pub pid: u32,
    /// Before any subscriber connected.
    pub before: ProcSample,
    /// After every subscriber connected and the warm-up, before publishing.
    pub idle: ProcSample,
    /// After the last event was delivered (or the drain timed out).
    pub end: ProcSample,
    /// (idle − before) RSS / subscriptions open: memory per idle
    /// subscriber, bytes.
    pub rss_per_subscriber_bytes: f64,
    /// The same with PSS (shared pages split between processes), bytes.
    pub pss_per_subscriber_bytes: f64,
    /// (end − before) RSS / subscriptions open: memory per subscriber after
    /// the load, bytes.
    pub rss_per_subscriber_end_bytes: f64,
    /// The server's CPU time from the first publish to the end, as a share
    /// of one core (1.0 = one core busy).
    pub cpu_cores_during_run: f64,
    /// Delivered events per second of server CPU time over the same span:
    /// the server's efficiency, which holds when other work on the machine
    /// took part of its core (the throughput does not).
    pub delivered_per_cpu_s: f64,
    /// One sample per second over the run.
    pub timeline: Vec<TimelineSample>,
}

/// One point of a run's timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineSample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// What the run was doing.
    pub phase: String,
    /// Subscriptions open (fan-out) or opened in the last second (churn).
    pub connected: u64,
    /// Events delivered so far (fan-out) or subscriptions closed in the last
    /// second (churn).
    pub delivered: u64,
    /// The server's RSS, bytes.
    pub rss_bytes: u64,
    /// The server's open descriptors.
    pub fds: u64,
    /// The server's CPU over the last interval, in cores.
    pub cpu_cores: f64,
}

/// The tool's own cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ToolReport {
    /// Processes that held subscribers.
    pub processes: usize,
    /// The tool's CPU time (all processes) from the first publish to the
    /// end, seconds.
    pub cpu_s: f64,
    /// That CPU time per delivered event, nanoseconds.
    pub cpu_ns_per_event: f64,
    /// That CPU time as a share of one core over the same span.
    pub cpu_cores: f64,
    /// Open-file limit of each process.
    pub fd_limit: u64,
    /// Resident memory of all the tool's processes at the end, bytes.
    pub rss_bytes: u64,
    /// That memory per subscriber, bytes (including each process's fixed
    /// part: a few MiB).
    pub rss_per_subscriber_bytes: f64,
}

/// The result of `tidings-bench churn`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnReport {
    /// Always `churn`.
    pub kind: String,
    /// A name for this run.
    pub label: String,
    /// The tool's version.
    pub tool_version: String,
    /// When the run started, Unix seconds.
    pub started_unix_s: u64,
    /// Subscribe URL.
    pub sub_url: String,
    /// Connect-and-disconnect cycles per second asked for.
    pub target_cycles_per_s: f64,
    /// Cycles allowed in flight at once.
    pub max_in_flight: u64,
    /// How long each connection stays open after its first bytes, ms.
    pub hold_ms: u64,
    /// Seconds of churn.
    pub duration_s: f64,
    /// Source addresses used.
    pub source_ips: String,
    /// Cycles started.
    pub started: u64,
    /// Cycles that got their first bytes and disconnected.
    pub completed: u64,
    /// Cycles that failed.
    pub failed: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Cycles not started because `max_in_flight` were already running.
    pub skipped: u64,
    /// completed / duration.
    pub cycles_per_s: f64,
    /// Connects plus disconnects per second: 2 × cycles per second.
    pub connects_and_disconnects_per_s: f64,
    /// Connect to first bytes, ms.
    pub time_to_first_bytes_ms: Summary,
    /// The server, when `--server-pid` was given.
    pub server: Option<ChurnServer>,
    /// The tool's CPU time, seconds.
    pub tool_cpu_s: f64,
    /// The machine: what else was running.
    pub host: HostReport,
}

/// The server's memory over a churn run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnServer {
    /// The process measured.
    pub pid: u32,
    /// Before the churn.
    pub before: ProcSample,
    /// When the churn stopped.
    pub end: ProcSample,
    /// After the settle time: connections closed, memory given back.
    pub settled: ProcSample,
    /// The largest RSS seen.
    pub max_rss_bytes: u64,
    /// settled − before RSS: what the churn left behind, bytes.
    pub growth_bytes: i64,
    /// RSS growth per second over the second half of the churn (a leak
    /// shows as a steady positive slope), bytes per second.
    pub second_half_slope_bytes_per_s: f64,
    /// One sample per second.
    pub timeline: Vec<TimelineSample>,
}

fn kib(bytes: f64) -> f64 {
    bytes / 1024.0
}

impl FanoutReport {
    /// One line for humans.
    pub fn summary(&self) -> String {
        let d = &self.delivery;
        let l = &self.latency_ms;
        let mut line = format!(
            "{}: {}/{} subscribers, {} events at {:.0}/s: delivered {}/{} ({:.2}%), {:.0} events/s, \
             latency ms p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}, dup {}, ooo {}",
            self.label,
            self.connect.connected,
            self.connect.requested,
            self.publish.ok,
            self.publish.rate_per_s,
            d.delivered,
            d.expected,
            d.delivered_ratio * 100.0,
            d.delivered_per_s,
            l.p50,
            l.p99,
            l.p999,
            l.max,
            d.duplicates,
            d.out_of_order,
        );
        if let Some(server) = &self.server {
            let _ = write!(
                line,
                ", server {:.1} KiB/subscriber, {:.0}% cpu, {:.0} events per cpu-second",
                kib(server.rss_per_subscriber_bytes),
                server.cpu_cores_during_run * 100.0,
                server.delivered_per_cpu_s,
            );
        }
        let _ = write!(
            line,
            ", tool {:.0} ns/event, load average {:.1}",
            self.tool.cpu_ns_per_event, self.host.load_average_end
        );
        if let Some(churn) = &self.churn {
            let (b, c) = (&churn.baseline.latency_ms, &churn.churn.latency_ms);
            let _ = write!(
                line,
                "; churn {:.0}/s ({:.0} cycles/s done, {} failed, {} skipped): \
                 p50 {:.1} → {:.1} ms (×{:.2}), p99 {:.1} → {:.1} ms (×{:.2})",
                churn.rate,
                churn.cycles.cycles_per_s,
                churn.cycles.failed,
                churn.cycles.skipped,
                b.p50,
                c.p50,
                churn.p50_ratio,
                b.p99,
                c.p99,
                churn.p99_ratio,
            );
        }
        line
    }
}

impl ChurnReport {
    /// One line for humans.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{}: {:.0} connects+disconnects/s ({:.0} cycles/s of {:.0} asked), {} ok, {} failed, {} skipped, \
             first bytes p99 {:.1} ms",
            self.label,
            self.connects_and_disconnects_per_s,
            self.cycles_per_s,
            self.target_cycles_per_s,
            self.completed,
            self.failed,
            self.skipped,
            self.time_to_first_bytes_ms.p99,
        );
        if let Some(server) = &self.server {
            let _ = write!(
                line,
                ", server RSS {:.1} → {:.1} MiB (max {:.1}, growth {:+.1} KiB, slope {:+.0} B/s)",
                server.before.rss_bytes as f64 / 1048576.0,
                server.settled.rss_bytes as f64 / 1048576.0,
                server.max_rss_bytes as f64 / 1048576.0,
                server.growth_bytes as f64 / 1024.0,
                server.second_half_slope_bytes_per_s,
            );
        }
        line
    }
}

/// Any result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnyReport {
    /// A fan-out run.
    Fanout(Box<FanoutReport>),
    /// A churn run.
    Churn(Box<ChurnReport>),
}

impl AnyReport {
    /// One line for humans.
    pub fn summary(&self) -> String {
        match self {
            Self::Fanout(r) => r.summary(),
            Self::Churn(r) => r.summary(),
        }
    }
}

/// Lines comparing fan-out runs: each run's summary, then each run against
/// every run before it (with a floor, a peer and Tidings in that order: the
/// peer and Tidings against the floor, then Tidings against the peer), as
/// ratios of throughput, p50 and p99 latency, and, when the server was
/// sampled, events per server CPU-second and memory per subscriber.
pub fn compare(reports: &[AnyReport]) -> Vec<String> {
    let mut lines: Vec<String> = reports.iter().map(AnyReport::summary).collect();
    let fanouts: Vec<&FanoutReport> = reports
        .iter()
        .filter_map(|r| match r {
            AnyReport::Fanout(f) => Some(&**f),
            AnyReport::Churn(_) => None,
        })
        .collect();
    for (at, base) in fanouts.iter().enumerate() {
        for other in fanouts.iter().skip(at + 1) {
            lines.push(compare_two(other, base));
        }
    }
    lines
}

/// `other` against `base`, as ratios.
fn compare_two(other: &FanoutReport, base: &FanoutReport) -> String {
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mut line = format!(
        "{} vs {}: delivered/s ×{:.2}, p50 latency ×{:.2}, p99 latency ×{:.2}",
        other.label,
        base.label,
        ratio(
            other.delivery.delivered_per_s,
            base.delivery.delivered_per_s
        ),
        ratio(other.latency_ms.p50, base.latency_ms.p50),
        ratio(other.latency_ms.p99, base.latency_ms.p99),
    );
    if let (Some(a), Some(b)) = (&other.server, &base.server) {
        let _ = write!(
            line,
            ", events per server cpu-second ×{:.2}, memory/subscriber ×{:.2}",
            ratio(a.delivered_per_cpu_s, b.delivered_per_cpu_s),
            ratio(a.rss_per_subscriber_bytes, b.rss_per_subscriber_bytes),
        );
    }
    line
}
