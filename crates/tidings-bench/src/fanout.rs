//! `fanout`: open N subscribers, publish M stamped events at E per second,
//! and report what arrived, how fast, how late, and what it cost the
//! server.
//!
//! [`run`] goes through the phases in order, one function each: check the
//! flags into a `FanoutConfig` (`config`); sample the server; open the
//! subscribers (here or in shard processes) at the connect rate; wait the
//! warm-up and sample the server (idle memory); publish on schedule (with
//! `--churn-rate`, churn alongside the second half: `churning`); tell
//! the shards how many events were published, each waits until its
//! subscribers have them all (or nothing arrived for the drain time) and
//! reports; sample the server; add up (`totals`); write the report.

mod churning;
mod config;
mod monitor;
mod totals;

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::cli::FanoutArgs;
use crate::procfs::{self, ProcError, ProcSample};
use crate::progress::Display;
use crate::publisher::{self, Outcome, PlanError};
use crate::report::{FanoutReport, HostReport};
use crate::shard::{Shard, ShardError};
use crate::sources::{self, SourceError};
use crate::stats::Summary;
use crate::swarm::{Swarm, SwarmError, SwarmResult};
use crate::sys::{self, LimitError, RunClock};
use crate::target::TargetError;

use churning::{ChurnOutcome, Churning, PublishStart};
use config::FanoutConfig;
use monitor::{Monitor, Phase};
use totals::Totals;

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
    /// The churn alongside could not run.
    #[error("{0}")]
    Churn(String),
}

/// Runs a fan-out measurement.
pub async fn run(args: &FanoutArgs) -> Result<FanoutReport, FanoutError> {
    let clock = RunClock::start();
    let config = FanoutConfig::from_args(args).await?;
    let display = Display::new(config.progress);
    let before = sample_server(&config)?;
    let connected = connect_phase(&config, display, clock.t0).await?;
    let idle = warmup_phase(&config, &connected.monitor).await?;
    let mut shards = connected.shards;
    let published = publish_phase(&config, &mut shards, &connected.monitor).await?;
    let drained = drain_phase(
        &config,
        shards,
        &connected.monitor,
        connected.monitor_task,
        &published,
    )
    .await?;
    let totals = Totals::add_up(
        &config,
        &drained.results,
        published.outcome.ok,
        published.outcome.start_ns,
        drained.parent_cpu,
    );
    let timeline = connected.monitor.timeline.borrow().clone();
    Ok(report(
        &config,
        &clock,
        &published,
        totals,
        [before, idle, drained.end],
        drained.run_wall,
        timeline,
    ))
}

/// Samples the server, if there is one to sample.
fn sample_server(config: &FanoutConfig) -> Result<Option<ProcSample>, ProcError> {
    config.server_pid.map(procfs::sample).transpose()
}

/// The subscribers, open, and the task watching them.
#[derive(Debug)]
struct Connected {
    /// Every process holding subscribers.
    shards: Vec<Shard>,
    /// What the display and the timeline read.
    monitor: Rc<Monitor>,
    /// The monitor's task, ended by its `stop` flag.
    monitor_task: JoinHandle<()>,
}

/// The connect phase: starts the shards (or the local subscribers) and the
/// monitor, and returns when every connection attempt has ended.
async fn connect_phase(
    config: &FanoutConfig,
    display: Display,
    t0: Instant,
) -> Result<Connected, FanoutError> {
    let mut shards = Vec::with_capacity(config.shards);
    for index in 0..config.shards {
        let swarm = config.swarm_config(index);
        shards.push(if config.shards == 1 {
            Shard::local(Swarm::new(swarm, config.fd_limit).await?)
        } else {
            Shard::spawn(index, &swarm).await?
        });
    }
    let monitor = Rc::new(Monitor::new(
        display,
        shards.iter().map(Shard::view).collect(),
        config.subscribers as u64,
        u64::from(config.events),
        config.server_pid,
        t0,
    ));
    monitor.set_phase(Phase::Connecting);
    let monitor_task = tokio::task::spawn_local(Rc::clone(&monitor).run());
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
        config.subscribers,
        t0.elapsed().as_secs_f64(),
        c.failed,
        if config.shards == 1 { 0 } else { config.shards },
        sources::describe(&config.sources),
    ));
    Ok(Connected {
        shards,
        monitor,
        monitor_task,
    })
}

/// The warm-up: waits, then samples the server (its idle memory).
async fn warmup_phase(
    config: &FanoutConfig,
    monitor: &Monitor,
) -> Result<Option<ProcSample>, FanoutError> {
    monitor.set_phase(Phase::Warmup);
    tokio::time::sleep(config.warmup).await;
    Ok(sample_server(config)?)
}

/// What the publish phase leaves for the later ones.
#[derive(Debug)]
struct Published {
    /// How publishing went.
    outcome: Outcome,
    /// When the shards were told publishing starts.
    start: Instant,
    /// This process's CPU time then.
    parent_cpu_at_start: Duration,
    /// What the churn alongside did (`--churn-rate`).
    churn: Option<ChurnOutcome>,
}

/// The publish phase: tells the shards that publishing starts, publishes
/// every event on schedule from a thread of its own (with `--churn-rate`,
/// churn from another thread during the second half), and says what
/// failed.
async fn publish_phase(
    config: &FanoutConfig,
    shards: &mut [Shard],
    monitor: &Monitor,
) -> Result<Published, FanoutError> {
    let c = monitor.counts();
    monitor
        .expected
        .set((c.connected - c.dropped) * u64::from(config.events));
    let parent_cpu_at_start = sys::cpu_time();
    for shard in shards.iter_mut() {
        shard.start().await?;
    }
    monitor.set_phase(Phase::Publishing);
    let churning = match &config.churn {
        Some(plan) => Some(Churning::start(
            plan.clone(),
            Arc::clone(&monitor.published),
            Arc::clone(&monitor.churning),
        )?),
        None => None,
    };
    let start = Instant::now();
    let outcome = if config.events == 0 {
        // A memory run: no publisher connection needed.
        Outcome::nothing()
    } else {
        publisher::publish_in_thread(config.plan.clone(), Arc::clone(&monitor.published)).await?
    };
    let churn = match churning {
        Some(churning) => Some(churning.stop().await?),
        None => None,
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
    Ok(Published {
        outcome,
        start,
        parent_cpu_at_start,
        churn,
    })
}

/// What the drain phase collected.
#[derive(Debug)]
struct Drained {
    /// Every shard's result.
    results: Vec<SwarmResult>,
    /// From the start of publishing to the last result.
    run_wall: Duration,
    /// The server at the end.
    end: Option<ProcSample>,
    /// This process's CPU time over the run.
    parent_cpu: Duration,
}

/// The drain phase: tells the shards how many events were published, waits
/// for every shard's result, samples the server, stops the monitor and the
/// shard processes.
async fn drain_phase(
    config: &FanoutConfig,
    mut shards: Vec<Shard>,
    monitor: &Monitor,
    monitor_task: JoinHandle<()>,
    published: &Published,
) -> Result<Drained, FanoutError> {
    for shard in &mut shards {
        shard.end(published.outcome.ok, config.drain).await?;
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
    let run_wall = published.start.elapsed();
    let end = sample_server(config)?;
    let parent_cpu = sys::cpu_time().saturating_sub(published.parent_cpu_at_start);
    monitor.stop.set(true);
    let _ = monitor_task.await;
    monitor.display.finish();
    for shard in shards {
        shard.reap().await;
    }
    Ok(Drained {
        results,
        run_wall,
        end,
        parent_cpu,
    })
}

/// The report: the totals, the server's samples and the settings.
fn report(
    config: &FanoutConfig,
    clock: &RunClock,
    published: &Published,
    totals: Totals,
    samples: [Option<ProcSample>; 3],
    run_wall: Duration,
    timeline: Vec<crate::report::TimelineSample>,
) -> FanoutReport {
    let churn = config
        .churn
        .as_ref()
        .zip(published.churn.as_ref())
        .map(|(plan, outcome)| {
            let start = PublishStart {
                at: published.start,
                server: samples[1],
                tool_cpu: published.parent_cpu_at_start,
            };
            churning::report(
                plan,
                outcome,
                start,
                &totals.latency_baseline,
                &totals.latency_churn,
            )
        });
    let server = totals.server(config.server_pid, samples, run_wall, timeline);
    let tool = totals.tool(config, run_wall);
    FanoutReport {
        kind: "fanout".to_owned(),
        label: config.label.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix_s: clock.started_unix_s,
        settings: config.settings.clone(),
        connect: totals.connect,
        publish: totals::publish_report(config, &published.outcome),
        delivery: totals.delivery,
        latency_ms: Summary::of(&totals.latency),
        server,
        tool,
        host: HostReport {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            load_average_start: clock.load_average_start,
            load_average_end: sys::load_average(),
        },
        churn,
    }
}
