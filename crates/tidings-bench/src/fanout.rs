//! `fanout`: open N subscribers, publish M stamped events at E per second,
//! and report what arrived, how fast, how late, and what it cost the
//! server.
//!
//! The steps: sample the server; open the subscribers (here or in shard
//! processes) at the connect rate; wait the warm-up; sample the server
//! (idle memory); publish on schedule; tell the shards how many events were
//! published; each waits until its subscribers have them all (or nothing
//! arrived for the drain time) and reports; sample the server; add up.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cli::FanoutArgs;
use crate::procfs::{self, ProcError};
use crate::progress::Display;
use crate::publisher::{self, Outcome, Plan, PlanError};
use crate::report::{
    ConnectReport, DeliveryReport, FanoutReport, FanoutSettings, HostReport, PublishReport,
    ServerReport, TimelineSample, ToolReport,
};
use crate::shard::{CountsView, Shard, ShardError};
use crate::sources::{self, SourceError};
use crate::stats::{self, Summary, new_histogram};
use crate::swarm::{Counts, Swarm, SwarmConfig, SwarmError, SwarmResult};
use crate::sys::{self, LimitError};
use crate::target::{Target, TargetError};

/// How often the progress display and the server sampling run.
const TICK: Duration = Duration::from_millis(250);

/// A fan-out run that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// A parameter is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The open-file limit could not be raised.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// A URL or header is unusable.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// `--source-ips` is unusable.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Setting up the subscribers failed.
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    /// A shard failed.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// The server process cannot be sampled.
    #[error(transparent)]
    Server(#[from] ProcError),
    /// Publishing could not start.
    #[error(transparent)]
    Publish(#[from] PlanError),
}

/// What the run is doing, for the display and the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Opening subscriptions.
    Connecting,
    /// Waiting before publishing.
    Warmup,
    /// Publishing.
    Publishing,
    /// Waiting for the last deliveries.
    Draining,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Connecting => "connect",
            Self::Warmup => "warmup",
            Self::Publishing => "publish",
            Self::Draining => "drain",
        }
    }
}

/// What the monitor task shares with the run.
#[derive(Debug)]
struct Monitor {
    /// The progress display.
    display: Display,
    /// Every shard's counters.
    views: Vec<CountsView>,
    /// Subscribers asked for.
    subscribers: u64,
    /// Events to publish.
    events: u64,
    /// The current phase.
    phase: Cell<Phase>,
    /// Events published so far (written by the publishing thread).
    published: Arc<AtomicU64>,
    /// Deliveries expected once draining (for the display).
    expected: Cell<u64>,
    /// The server to sample.
    server_pid: Option<u32>,
    /// When the run started.
    t0: Instant,
    /// One sample per second.
    timeline: RefCell<Vec<TimelineSample>>,
    /// Set to end the monitor task.
    stop: Cell<bool>,
}

impl Monitor {
    fn counts(&self) -> Counts {
        let mut total = Counts::default();
        for view in &self.views {
            total.add(view.counts());
        }
        total
    }

    fn show(&self) {
        let c = self.counts();
        match self.phase.get() {
            Phase::Connecting => self.display.update(
                c.connected + c.failed,
                &format!("open {} failed {}", c.connected - c.dropped, c.failed),
            ),
            Phase::Warmup => self.display.update(
                0,
                &format!("open {} dropped {}", c.connected - c.dropped, c.dropped),
            ),
            Phase::Publishing => self.display.update(
                self.published.load(Ordering::Relaxed),
                &format!("delivered {} dropped {}", c.delivered, c.dropped),
            ),
            Phase::Draining => self.display.update(
                c.delivered.min(self.expected.get()),
                &format!("dropped {}", c.dropped),
            ),
        }
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.set(phase);
        let len = match phase {
            Phase::Connecting => self.subscribers,
            Phase::Warmup => 0,
            Phase::Publishing => self.events,
            Phase::Draining => self.expected.get(),
        };
        self.display.phase(phase.name(), len);
        self.show();
    }

    /// Runs until `stop`: the display four times a second, the server once
    /// a second.
    async fn run(self: Rc<Self>) {
        let mut last_cpu: Option<(Instant, f64)> = None;
        let mut tick = 0u64;
        while !self.stop.get() {
            self.show();
            if tick.is_multiple_of(4)
                && let Some(sample) = self.server_pid.and_then(|pid| procfs::sample(pid).ok())
            {
                let now = Instant::now();
                let cpu_cores = match last_cpu {
                    Some((at, cpu)) => (sample.cpu_s - cpu) / now.duration_since(at).as_secs_f64(),
                    None => 0.0,
                };
                last_cpu = Some((now, sample.cpu_s));
                let c = self.counts();
                self.timeline.borrow_mut().push(TimelineSample {
                    t_s: stats::round3(self.t0.elapsed().as_secs_f64()),
                    phase: self.phase.get().name().to_owned(),
                    connected: c.connected - c.dropped,
                    delivered: c.delivered,
                    rss_bytes: sample.rss_bytes,
                    fds: sample.fds,
                    cpu_cores: stats::round3(cpu_cores),
                });
            }
            tick += 1;
            tokio::time::sleep(TICK).await;
        }
    }
}

/// How many processes hold the subscribers, checked against the open-file
/// limit.
fn plan_shards(subscribers: usize, asked: usize, fd_limit: u64) -> Result<usize, FanoutError> {
    let room = fd_limit.saturating_sub(sys::RESERVED_FDS).max(1) as usize;
    let shards = if asked == 0 {
        subscribers.div_ceil(room).max(1)
    } else {
        asked
    };
    let per_process = subscribers.div_ceil(shards);
    if per_process > room {
        return Err(FanoutError::Invalid(format!(
            "{per_process} subscribers per process exceed the open-file limit ({fd_limit}, of which \
             {} are kept for the tool): use --shards {} or more",
            sys::RESERVED_FDS,
            subscribers.div_ceil(room)
        )));
    }
    Ok(shards)
}

/// Runs a fan-out measurement.
pub async fn run(args: &FanoutArgs) -> Result<FanoutReport, FanoutError> {
    let started_unix_s = sys::now_ns() / 1_000_000_000;
    let load_average_start = sys::load_average();
    let t0 = Instant::now();
    let common = &args.common;
    if args.rate.is_nan() || args.rate <= 0.0 {
        return Err(FanoutError::Invalid("--rate must be above 0".to_owned()));
    }
    let fd_limit = sys::raise_fd_limit()?;
    let sub_target = Target::resolve(&common.sub_url).await?;
    sub_target.subscribe_request(&common.headers)?;
    let n = args.subscribers;
    let shard_count = plan_shards(n, args.shards, fd_limit)?;
    let sources = match &common.source_ips {
        Some(spec) => sources::parse(spec)?,
        None => sources::default_for(sub_target.addr.ip(), n as u64),
    };
    let ports = sources::ephemeral_ports();
    let per_source = (n as u64).div_ceil(sources.len().max(1) as u64);
    if per_source > ports {
        return Err(FanoutError::Invalid(format!(
            "{per_source} connections per source address exceed the {ports} ephemeral ports: \
             spread them with --source-ips (e.g. --source-ips {})",
            (n as u64).div_ceil(ports * 9 / 10)
        )));
    }
    let run = sys::run_id();
    let events = args.events;
    // Check the publish URL now rather than after connecting everyone.
    Target::resolve(&args.pub_url).await?;
    let plan = Plan {
        url: args.pub_url.clone(),
        format: args.pub_format,
        topic: args.topic.clone(),
        payload: args.payload,
        headers: args.pub_headers.clone(),
        timeout: Duration::from_secs_f64(args.pub_timeout.max(0.001)),
        events,
        rate: args.rate,
        connections: args.pub_connections.max(1),
        run,
    };

    let display = Display::new(common.progress);
    let before = common.server_pid.map(procfs::sample).transpose()?;

    let mut shards = Vec::with_capacity(shard_count);
    for index in 0..shard_count {
        let count = n / shard_count + usize::from(index < n % shard_count);
        let config = SwarmConfig {
            sub_url: common.sub_url.clone(),
            headers: common.headers.clone(),
            count,
            connect_rate: args.connect_rate / shard_count as f64,
            sources: sources.clone(),
            first_index: index,
            index_stride: shard_count,
            events,
            run,
            connect_timeout_ms: (common.connect_timeout * 1000.0) as u64,
            delayed_ack: args.delayed_ack,
        };
        shards.push(if shard_count == 1 {
            Shard::local(Swarm::new(config, fd_limit).await?)
        } else {
            Shard::spawn(index, &config).await?
        });
    }
    let monitor = Rc::new(Monitor {
        display,
        views: shards.iter().map(Shard::view).collect(),
        subscribers: n as u64,
        events: u64::from(events),
        phase: Cell::new(Phase::Connecting),
        published: Arc::new(AtomicU64::new(0)),
        expected: Cell::new(0),
        server_pid: common.server_pid,
        t0,
        timeline: RefCell::default(),
        stop: Cell::new(false),
    });
    monitor.set_phase(Phase::Connecting);
    let monitor_task = tokio::task::spawn_local(Rc::clone(&monitor).run());

    // Open.
    loop {
        let mut all = true;
        for shard in &shards {
            all &= shard.ready()?;
        }
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = monitor.counts();
    monitor.display.note(&format!(
        "opened {} of {} subscriptions in {:.1} s ({} failed), {} shard process(es), source addresses {}",
        c.connected,
        n,
        t0.elapsed().as_secs_f64(),
        c.failed,
        if shard_count == 1 { 0 } else { shard_count },
        sources::describe(&sources),
    ));

    // Warm up, then the idle sample.
    monitor.set_phase(Phase::Warmup);
    tokio::time::sleep(Duration::from_secs_f64(args.warmup.max(0.0))).await;
    let idle = common.server_pid.map(procfs::sample).transpose()?;

    // Publish.
    let c = monitor.counts();
    monitor
        .expected
        .set((c.connected - c.dropped) * u64::from(events));
    let parent_cpu_at_start = sys::cpu_time();
    for shard in &mut shards {
        shard.start().await?;
    }
    monitor.set_phase(Phase::Publishing);
    let publish_start = Instant::now();
    let outcome = if events == 0 {
        // A memory run: no publisher connection needed.
        Outcome::nothing()
    } else {
        publisher::publish_in_thread(plan, Arc::clone(&monitor.published)).await?
    };
    if let Some(first) = &outcome.first_error {
        monitor.display.note(&format!(
            "{} publish(es) failed, the first: {first}",
            outcome.failed
        ));
    }
    if outcome.stopped_early {
        monitor
            .display
            .note("publishing stopped: too many failures in a row");
    }
    let ok = outcome.ok;
    let publish_start_ns = outcome.start_ns;

    // Drain and collect.
    let drain = Duration::from_secs_f64(args.drain.max(0.0));
    for shard in &mut shards {
        shard.end(ok, drain).await?;
    }
    monitor.set_phase(Phase::Draining);
    let mut results: Vec<Option<SwarmResult>> = shards.iter().map(|_| None).collect();
    while results.iter().any(Option::is_none) {
        for (shard, slot) in shards.iter().zip(results.iter_mut()) {
            if slot.is_none() {
                *slot = shard.take_result()?;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let results: Vec<SwarmResult> = results.into_iter().flatten().collect();
    let run_wall = publish_start.elapsed();
    let end = common.server_pid.map(procfs::sample).transpose()?;
    let parent_cpu = sys::cpu_time().saturating_sub(parent_cpu_at_start);
    monitor.stop.set(true);
    let _ = monitor_task.await;
    monitor.display.finish();
    for shard in shards {
        shard.reap().await;
    }

    // Add up.
    let mut connect_hist = new_histogram();
    let mut latency = new_histogram();
    let mut connect = ConnectReport {
        requested: n as u64,
        ..ConnectReport::default()
    };
    let mut delivery = DeliveryReport::default();
    let mut tool_cpu = if shard_count == 1 {
        0.0
    } else {
        parent_cpu.as_secs_f64()
    };
    let mut first_rx = u64::MAX;
    let mut last_rx = 0;
    for r in &results {
        connect.connected += r.connected;
        connect.failed += r.failed;
        merge_counts(&mut connect.errors, &r.connect_errors);
        connect.duration_s = connect.duration_s.max(r.connect_duration_s);
        stats::merge_pairs(&mut connect_hist, &r.connect_us);
        stats::merge_pairs(&mut latency, &r.latency_us);
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
        if r.first_rx_ns != 0 {
            first_rx = first_rx.min(r.first_rx_ns);
        }
        last_rx = last_rx.max(r.last_rx_ns);
        tool_cpu += r.cpu_run_s;
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
    delivery.offered_per_s = (delivery.subscribers as f64 * args.rate).round();

    let publish_s = outcome.duration.as_secs_f64();
    let publish = PublishReport {
        requested: u64::from(events),
        ok,
        failed: outcome.failed,
        errors: outcome.errors,
        connections: args.pub_connections.max(1),
        duration_s: stats::round3(publish_s),
        rate_per_s: stats::round3(ratio(ok as f64, publish_s)),
        max_lag_ms: stats::round3(outcome.max_lag.as_secs_f64() * 1000.0),
        response_ms: Summary::of(&outcome.response),
    };
    let server = match (common.server_pid, before, idle, end) {
        (Some(pid), Some(before), Some(idle), Some(end)) => {
            let open = delivery.subscribers.max(1) as f64;
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
                delivered_per_cpu_s: ratio(delivery.delivered as f64, end.cpu_s - idle.cpu_s)
                    .round(),
                timeline: monitor.timeline.borrow().clone(),
            })
        }
        _ => None,
    };
    let tool_rss: u64 = results.iter().map(|r| r.rss_bytes).sum::<u64>()
        + if shard_count == 1 { 0 } else { sys::own_rss() };
    let tool = ToolReport {
        processes: shard_count,
        cpu_s: stats::round3(tool_cpu),
        cpu_ns_per_event: ratio(tool_cpu * 1e9, delivery.delivered as f64).round(),
        cpu_cores: stats::round3(ratio(tool_cpu, run_wall.as_secs_f64())),
        fd_limit: results.first().map_or(fd_limit, |r| r.fd_limit),
        rss_bytes: tool_rss,
        rss_per_subscriber_bytes: stats::round3(ratio(tool_rss as f64, connect.connected as f64)),
    };
    Ok(FanoutReport {
        kind: "fanout".to_owned(),
        label: common.label.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix_s,
        settings: FanoutSettings {
            sub_url: common.sub_url.clone(),
            pub_url: args.pub_url.clone(),
            pub_format: args.pub_format,
            topic: args.topic.clone(),
            subscribers: n as u64,
            connect_rate: args.connect_rate,
            events: u64::from(events),
            rate: args.rate,
            payload_bytes: args.payload,
            warmup_s: args.warmup,
            drain_s: args.drain,
            shards: shard_count,
            source_ips: sources::describe(&sources),
            server_pid: common.server_pid,
            delayed_ack: args.delayed_ack,
            pub_connections: args.pub_connections.max(1),
        },
        connect,
        publish,
        delivery,
        latency_ms: Summary::of(&latency),
        server,
        tool,
        host: HostReport {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            load_average_start,
            load_average_end: sys::load_average(),
        },
    })
}

/// `a / b`, or 0 when `b` is not positive.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn merge_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (kind, count) in from {
        *into.entry(kind.clone()).or_default() += count;
    }
}

#[cfg(test)]
mod tests {
    use super::plan_shards;

    #[test]
    fn shards_fit_the_fd_limit() {
        assert_eq!(plan_shards(10_000, 0, 20_000).unwrap(), 1);
        assert_eq!(plan_shards(100_000, 0, 20_000).unwrap(), 6);
        assert_eq!(plan_shards(100_000, 8, 20_000).unwrap(), 8);
        let err = plan_shards(100_000, 2, 20_000).unwrap_err().to_string();
        assert!(err.contains("--shards 6"), "{err}");
    }
}
