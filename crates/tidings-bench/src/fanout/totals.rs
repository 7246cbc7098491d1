//! Adding up what the shards saw, and the report's parts that are computed
//! from those totals.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::procfs::ProcSample;
use crate::publisher::Outcome;
use crate::report::{ConnectReport, DeliveryReport, PublishReport, ServerReport, ToolReport};
use crate::stats::{self, Summary, new_histogram};
use crate::swarm::SwarmResult;
use crate::sys;

use super::config::FanoutConfig;

/// Every shard's result, added up.
#[derive(Debug)]
pub(super) struct Totals {
    /// Opening the subscriptions.
    pub(super) connect: ConnectReport,
    /// What reached the subscribers.
    pub(super) delivery: DeliveryReport,
    /// Publish-to-receive latency over every delivered event, µs.
    pub(super) latency: Histogram<u64>,
    /// The same over the events published without churn (`--churn-rate`).
    pub(super) latency_baseline: Histogram<u64>,
    /// The same over the events published with churn alongside.
    pub(super) latency_churn: Histogram<u64>,
    /// The tool's CPU from the first publish to the end, all processes,
    /// seconds.
    pub(super) tool_cpu_s: f64,
    /// The tool's resident memory at the end, all processes, bytes.
    pub(super) tool_rss: u64,
    /// The subscribers' processes' open-file limit.
    pub(super) fd_limit: u64,
}

impl Totals {
    /// Adds up `results` of a run that published `ok` events from
    /// `publish_start_ns` (Unix ns); `parent_cpu` is this process's CPU
    /// over the run, counted when it held no subscribers itself.
    pub(super) fn add_up(
        config: &FanoutConfig,
        results: &[SwarmResult],
        ok: u64,
        publish_start_ns: u64,
        parent_cpu: Duration,
    ) -> Self {
        let local = config.shards == 1;
        let mut connect_hist = new_histogram();
        let mut latency = new_histogram();
        let mut latency_baseline = new_histogram();
        let mut latency_churn = new_histogram();
        let mut connect = ConnectReport {
            requested: config.subscribers as u64,
            ..ConnectReport::default()
        };
        let mut delivery = DeliveryReport::default();
        let mut tool_cpu_s = if local { 0.0 } else { parent_cpu.as_secs_f64() };
        let mut last_rx = 0;
        for r in results {
            connect.connected += r.connected;
            connect.failed += r.failed;
            merge_counts(&mut connect.errors, &r.connect_errors);
            connect.duration_s = connect.duration_s.max(r.connect_duration_s);
            stats::merge_pairs(&mut connect_hist, &r.connect_us);
            stats::merge_pairs(&mut latency, &r.latency_us);
            stats::merge_pairs(&mut latency_baseline, &r.latency_baseline_us);
            stats::merge_pairs(&mut latency_churn, &r.latency_churn_us);
            delivery.subscribers += r.open_at_start;
            delivery.delivered += r.delivered;
            delivery.subscribers_complete += r.complete;
            delivery.duplicates += r.duplicates;
            delivery.out_of_order += r.out_of_order;
            delivery.foreign += r.foreign;
            delivery.unrecognized += r.unrecognized;
            delivery.out_of_range += r.out_of_range;
            delivery.dropped += r.dropped_during_run;
            merge_counts(&mut delivery.drop_reasons, &r.drop_reasons);
            last_rx = last_rx.max(r.last_rx_ns);
            tool_cpu_s += r.cpu_run_s;
        }
        connect.rate_per_s = ratio(connect.connected as f64, connect.duration_s);
        connect.time_ms = Summary::of(&connect_hist);
        delivery.expected = delivery.subscribers * ok;
        delivery.missing = delivery.expected.saturating_sub(delivery.delivered);
        delivery.delivered_ratio = ratio(delivery.delivered as f64, delivery.expected as f64);
        delivery.duration_s = if last_rx > publish_start_ns {
            (last_rx - publish_start_ns) as f64 / 1e9
        } else {
            0.0
        };
        delivery.delivered_per_s = ratio(delivery.delivered as f64, delivery.duration_s).round();
        delivery.offered_per_s = (delivery.subscribers as f64 * config.rate).round();
        let tool_rss = results.iter().map(|r| r.rss_bytes).sum::<u64>()
            + if local { 0 } else { sys::own_rss() };
        Self {
            connect,
            delivery,
            latency,
            latency_baseline,
            latency_churn,
            tool_cpu_s,
            tool_rss,
            fd_limit: results.first().map_or(config.fd_limit, |r| r.fd_limit),
        }
    }

    /// The tool's cost over `run_wall` (first publish to the end).
    pub(super) fn tool(&self, config: &FanoutConfig, run_wall: Duration) -> ToolReport {
        ToolReport {
            processes: config.shards,
            cpu_s: stats::round3(self.tool_cpu_s),
            cpu_ns_per_event: ratio(self.tool_cpu_s * 1e9, self.delivery.delivered as f64).round(),
            cpu_cores: stats::round3(ratio(self.tool_cpu_s, run_wall.as_secs_f64())),
            fd_limit: self.fd_limit,
            rss_bytes: self.tool_rss,
            rss_per_subscriber_bytes: stats::round3(ratio(
                self.tool_rss as f64,
                self.connect.connected as f64,
            )),
        }
    }

    /// The server's memory and CPU, when all three samples were taken.
    pub(super) fn server(
        &self,
        pid: Option<u32>,
        samples: [Option<ProcSample>; 3],
        run_wall: Duration,
        timeline: Vec<crate::report::TimelineSample>,
    ) -> Option<ServerReport> {
        let (Some(pid), [Some(before), Some(idle), Some(end)]) = (pid, samples) else {
            return None;
        };
        let open = self.delivery.subscribers.max(1) as f64;
        let per = |a: u64, b: u64| stats::round3((a as f64 - b as f64) / open);
        Some(ServerReport {
            pid,
            before,
            idle,
            end,
            rss_per_subscriber_bytes: per(idle.rss_bytes, before.rss_bytes),
            pss_per_subscriber_bytes: per(idle.pss_bytes, before.pss_bytes),
            rss_per_subscriber_end_bytes: per(end.rss_bytes, before.rss_bytes),
            cpu_cores_during_run: stats::round3(ratio(
                end.cpu_s - idle.cpu_s,
                run_wall.as_secs_f64(),
            )),
            delivered_per_cpu_s: ratio(self.delivery.delivered as f64, end.cpu_s - idle.cpu_s)
                .round(),
            timeline,
        })
    }
}

/// How publishing went, from the publisher's outcome.
pub(super) fn publish_report(config: &FanoutConfig, outcome: &Outcome) -> PublishReport {
    let publish_s = outcome.duration.as_secs_f64();
    PublishReport {
        requested: u64::from(config.events),
        ok: outcome.ok,
        failed: outcome.failed,
        errors: outcome.errors.clone(),
        connections: config.pub_connections,
        duration_s: stats::round3(publish_s),
        rate_per_s: stats::round3(ratio(outcome.ok as f64, publish_s)),
        max_lag_ms: stats::round3(outcome.max_lag.as_secs_f64() * 1000.0),
        response_ms: Summary::of(&outcome.response),
    }
}

/// `a / b`, or 0 when `b` is not positive.
pub(super) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn merge_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (kind, count) in from {
        *into.entry(kind.clone()).or_default() += count;
    }
}
