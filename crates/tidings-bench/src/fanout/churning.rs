//! Churn alongside a fan-out (`--churn-rate`): connections that subscribe
//! to the same URL, read the response head and close, at a steady rate,
//! while the measured subscribers receive the events.
//!
//! The run publishes its events in two phases: the first half without
//! churn, the second half with it, so that one run shows the latency the
//! same subscribers see with and without subscribers coming and going
//! beside them. The churn starts when event `switch` (the middle one) is
//! sent and stops when publishing ends; events sent less than the guard
//! time before it starts or after it started belong to neither phase
//! ([`PhaseSplit`]), each phase's events get a latency histogram of their
//! own in the subscribers ([`crate::swarm`]).
//!
//! The churn runs on a thread of its own (its own current-thread runtime),
//! so that its rate does not wait for the subscribers' reading on the main
//! thread; the thread's CPU time is reported, since on a pinned run it
//! shares the tool's core with the subscribers.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::churn::cycles::Cycles;
use crate::cli::FanoutArgs;
use crate::procfs::{self, ProcSample};
use crate::report::{ChurnCyclesReport, ChurnPhasesReport, PhaseReport};
use crate::sources;
use crate::stats::{self, Summary};
use crate::swarm::PhaseSplit;
use crate::sys;
use crate::target::Target;

use super::FanoutError;
use super::totals::ratio;

/// How often the churn loop launches the cycles that are due.
const STEP: Duration = Duration::from_millis(1);

/// The churn of a run, validated.
#[derive(Debug, Clone)]
pub(super) struct ChurnPlan {
    /// Where the churn's connections go: the subscribe URL's address.
    addr: SocketAddr,
    /// The subscription request they send.
    request: Vec<u8>,
    /// How long one opening may take.
    timeout: Duration,
    /// Cycles per second.
    pub(super) rate: f64,
    /// Cycles in flight at most: descriptors of this process.
    pub(super) max_in_flight: u64,
    /// Source addresses of the churn's connections.
    pub(super) sources: Vec<IpAddr>,
    /// Events to publish.
    events: u64,
    /// The churn starts when this event is sent.
    switch: u64,
    /// Which events make which phase.
    pub(super) split: PhaseSplit,
    /// Seconds either side of the switch whose events are in neither phase.
    guard_s: f64,
    /// The server, sampled when the churn starts and stops.
    server_pid: Option<u32>,
}

impl ChurnPlan {
    /// Checks the churn flags; `None` without `--churn-rate`.
    /// `subscriber_sources` are the measured subscribers' addresses, which
    /// the default churn addresses follow.
    pub(super) fn from_args(
        args: &FanoutArgs,
        target: &Target,
        request: Vec<u8>,
        subscriber_sources: &[IpAddr],
    ) -> Result<Option<Self>, FanoutError> {
        if args.churn_rate.is_nan() || args.churn_rate < 0.0 {
            return Err(FanoutError::Invalid(
                "--churn-rate must be 0 (no churn) or above".to_owned(),
            ));
        }
        if args.churn_guard.is_nan() || args.churn_guard < 0.0 {
            return Err(FanoutError::Invalid(
                "--churn-guard must be 0 or above".to_owned(),
            ));
        }
        if args.churn_rate <= 0.0 {
            return Ok(None);
        }
        let events = u64::from(args.events);
        let guard_events = (args.churn_guard * args.rate).ceil() as u64;
        let switch = events / 2;
        let split = PhaseSplit {
            baseline_until: switch.saturating_sub(guard_events),
            churn_from: switch + guard_events,
        };
        if split.baseline_until == 0 || split.churn_from >= events {
            return Err(FanoutError::Invalid(format!(
                "--churn-rate needs events before and after the churn starts, beyond the \
                 --churn-guard of {} s ({guard_events} events each side at --rate {}): use \
                 --events {} or more",
                args.churn_guard,
                args.rate,
                2 * guard_events + 2
            )));
        }
        let per_minute = (args.churn_rate * 60.0).ceil() as u64;
        let sources = match &args.churn_source_ips {
            Some(spec) => sources::parse(spec)?,
            None => sources::default_after(target.addr.ip(), subscriber_sources, per_minute),
        };
        let ports = sources::ephemeral_ports();
        let per_source = per_minute.div_ceil(sources.len().max(1) as u64);
        if per_source > ports {
            return Err(FanoutError::Invalid(format!(
                "{per_source} churn connections a minute per source address exceed the {ports} \
                 ephemeral ports (each stays in TIME_WAIT for a minute): spread them with \
                 --churn-source-ips"
            )));
        }
        Ok(Some(Self {
            addr: target.addr,
            request,
            timeout: Duration::from_secs_f64(args.common.connect_timeout.max(0.001)),
            rate: args.churn_rate,
            max_in_flight: args.churn_in_flight.max(1) as u64,
            sources,
            events,
            switch,
            split,
            guard_s: args.churn_guard,
            server_pid: args.common.server_pid,
        }))
    }
}

/// A moment of the run: when, and the CPU time used so far.
#[derive(Debug, Clone, Copy)]
struct Mark {
    /// When.
    at: Instant,
    /// The server's CPU seconds so far (with `--server-pid`).
    server_cpu_s: Option<f64>,
    /// This process's CPU time so far (every thread).
    tool_cpu: Duration,
}

impl Mark {
    fn now(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            server_cpu_s: server_pid
                .and_then(|pid| procfs::sample(pid).ok())
                .map(|s| s.cpu_s),
            tool_cpu: sys::cpu_time(),
        }
    }
}

/// What the churn did.
#[derive(Debug)]
pub(super) struct ChurnOutcome {
    /// When it started, if it did (publishing may end before the switch).
    started_at: Option<Mark>,
    /// When it stopped.
    stopped_at: Option<Mark>,
    /// The churn thread's own CPU time.
    thread_cpu: Duration,
    /// Cycles started.
    started: u64,
    /// Cycles that got their response head and closed.
    completed: u64,
    /// Cycles that failed.
    failed: u64,
    /// Failures by kind.
    errors: BTreeMap<String, u64>,
    /// Cycles not started because too many were in flight.
    skipped: u64,
    /// Connect to response head, µs.
    first_bytes: Option<Histogram<u64>>,
}

/// The churn, running on its thread until stopped (or dropped).
#[derive(Debug)]
pub(super) struct Churning {
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    /// The thread's outcome.
    outcome: tokio::sync::oneshot::Receiver<ChurnOutcome>,
}

impl Churning {
    /// Starts the churn thread: it waits until the publisher has sent the
    /// switch event (`published` counts the events sent), then churns;
    /// `churning` is set while it does (for the timeline).
    pub(super) fn start(
        plan: ChurnPlan,
        published: Arc<AtomicU64>,
        churning: Arc<AtomicBool>,
    ) -> Result<Self, FanoutError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("churn".to_owned())
            .spawn(move || {
                // Without a runtime the receiver sees the sender dropped.
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let outcome = tokio::task::LocalSet::new().block_on(
                    &runtime,
                    churn_loop(plan, &published, &churning, &thread_stop),
                );
                let _ = tx.send(outcome);
            })
            .map_err(|err| FanoutError::Churn(format!("cannot start the churn thread: {err}")))?;
        Ok(Self { stop, outcome: rx })
    }

    /// Stops the churn (publishing ended) and returns what it did, once the
    /// cycles in flight have ended.
    pub(super) async fn stop(mut self) -> Result<ChurnOutcome, FanoutError> {
        self.stop.store(true, Ordering::Relaxed);
        (&mut self.outcome)
            .await
            .map_err(|_| FanoutError::Churn("the churn thread ended without a result".to_owned()))
    }
}

impl Drop for Churning {
    fn drop(&mut self) {
        // A run that failed while churning: the thread stops by itself.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The churn thread's work.
async fn churn_loop(
    plan: ChurnPlan,
    published: &AtomicU64,
    churning: &AtomicBool,
    stop: &AtomicBool,
) -> ChurnOutcome {
    let thread_cpu_at_start = sys::thread_cpu_time();
    let mut outcome = ChurnOutcome {
        started_at: None,
        stopped_at: None,
        thread_cpu: Duration::ZERO,
        started: 0,
        completed: 0,
        failed: 0,
        errors: BTreeMap::new(),
        skipped: 0,
        first_bytes: None,
    };
    // Until the switch event has been sent.
    while published.load(Ordering::Relaxed) <= plan.switch {
        if stop.load(Ordering::Relaxed) {
            return outcome;
        }
        tokio::time::sleep(STEP).await;
    }
    let mut cycles = Cycles::new(
        plan.addr,
        plan.request,
        plan.timeout,
        Duration::ZERO,
        plan.sources,
        plan.max_in_flight,
    );
    outcome.started_at = Some(Mark::now(plan.server_pid));
    churning.store(true, Ordering::Relaxed);
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        cycles.launch_until((start.elapsed().as_secs_f64() * plan.rate) as u64);
        tokio::time::sleep(STEP).await;
    }
    outcome.stopped_at = Some(Mark::now(plan.server_pid));
    churning.store(false, Ordering::Relaxed);
    cycles.wait_in_flight().await;
    outcome.thread_cpu = sys::thread_cpu_time().saturating_sub(thread_cpu_at_start);
    outcome.started = cycles.started();
    outcome.completed = cycles.completed();
    outcome.failed = cycles.failed();
    outcome.errors = cycles.errors();
    outcome.skipped = cycles.skipped();
    outcome.first_bytes = Some(cycles.first_bytes());
    outcome
}

/// Where the publish phase began: the baseline phase's start.
#[derive(Debug, Clone, Copy)]
pub(super) struct PublishStart {
    /// When publishing started.
    pub(super) at: Instant,
    /// The server then (the idle sample).
    pub(super) server: Option<ProcSample>,
    /// This process's CPU time then.
    pub(super) tool_cpu: Duration,
}

/// The report's churn section: each phase's latency (`baseline` and
/// `churn`, µs histograms added up over the shards), the server's and this
/// process's CPU in each, and what the cycles did.
pub(super) fn report(
    plan: &ChurnPlan,
    outcome: &ChurnOutcome,
    publish: PublishStart,
    baseline: &Histogram<u64>,
    churn: &Histogram<u64>,
) -> ChurnPhasesReport {
    let start = Mark {
        at: publish.at,
        server_cpu_s: publish.server.map(|s| s.cpu_s),
        tool_cpu: publish.tool_cpu,
    };
    let phase = |from: u64, to: u64, marks: Option<(Mark, Mark)>, latency: &Histogram<u64>| {
        let (wall, server_cores, tool_cores) = match marks {
            Some((a, b)) => {
                let wall = b.at.saturating_duration_since(a.at).as_secs_f64();
                let server = match (a.server_cpu_s, b.server_cpu_s) {
                    (Some(x), Some(y)) => Some(stats::round3(ratio(y - x, wall))),
                    _ => None,
                };
                let tool = b.tool_cpu.saturating_sub(a.tool_cpu).as_secs_f64();
                (wall, server, stats::round3(ratio(tool, wall)))
            }
            None => (0.0, None, 0.0),
        };
        PhaseReport {
            events_from: from,
            events_to: to,
            duration_s: stats::round3(wall),
            latency_ms: Summary::of(latency),
            server_cpu_cores: server_cores,
            tool_cpu_cores: tool_cores,
        }
    };
    let baseline = phase(
        0,
        plan.split.baseline_until,
        outcome.started_at.map(|s| (start, s)),
        baseline,
    );
    let churn = phase(
        plan.split.churn_from,
        plan.events,
        outcome.started_at.zip(outcome.stopped_at),
        churn,
    );
    let churn_s = churn.duration_s;
    let cycles_per_s = ratio(outcome.completed as f64, churn_s);
    let thread_cpu_s = outcome.thread_cpu.as_secs_f64();
    ChurnPhasesReport {
        rate: plan.rate,
        max_in_flight: plan.max_in_flight,
        source_ips: sources::describe(&plan.sources),
        guard_s: plan.guard_s,
        p50_ratio: stats::round3(ratio(churn.latency_ms.p50, baseline.latency_ms.p50)),
        p99_ratio: stats::round3(ratio(churn.latency_ms.p99, baseline.latency_ms.p99)),
        baseline,
        churn,
        cycles: ChurnCyclesReport {
            started: outcome.started,
            completed: outcome.completed,
            failed: outcome.failed,
            errors: outcome.errors.clone(),
            skipped: outcome.skipped,
            cycles_per_s: stats::round3(cycles_per_s),
            connects_and_disconnects_per_s: stats::round3(2.0 * cycles_per_s),
            time_to_first_bytes_ms: outcome
                .first_bytes
                .as_ref()
                .map(Summary::of)
                .unwrap_or_default(),
            thread_cpu_s: stats::round3(thread_cpu_s),
            thread_cpu_cores: stats::round3(ratio(thread_cpu_s, churn_s)),
        },
    }
}
