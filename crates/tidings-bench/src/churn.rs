//! `churn`: subscribers that connect, read the first bytes of the response
//! and disconnect, at a steady rate, while the server's memory is sampled
//! every second so that growth (a leak per connection) shows.
//!
//! [`run`] goes through the phases in order, one function each: check the
//! flags into a `ChurnConfig`; sample the server; churn for the duration
//! (`cycles` launches the cycles); let the cycles in flight end; keep
//! sampling while the server settles; write the report.

pub(crate) mod cycles;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::cli::ChurnArgs;
use crate::procfs::{self, ProcError, ProcSample};
use crate::progress::Display;
use crate::report::{ChurnReport, ChurnServer, HostReport, TimelineSample};
use crate::sources::{self, SourceError};
use crate::stats::{self, Summary};
use crate::sys::{self, LimitError, RunClock};
use crate::target::{Target, TargetError};

use cycles::Cycles;

/// A churn run that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ChurnError {
    /// A parameter is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The open-file limit could not be raised.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The URL or a header is unusable.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// `--source-ips` is unusable.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The server process cannot be sampled.
    #[error(transparent)]
    Server(#[from] ProcError),
}

/// A churn run, validated: the later phases read this, never the flags.
#[derive(Debug)]
struct ChurnConfig {
    /// Names the run in the summary and the JSON.
    label: String,
    /// The subscribe URL, for the report.
    sub_url: String,
    /// Draw the progress bar even when stderr is not a terminal.
    progress: bool,
    /// The server to sample, if any.
    server_pid: Option<u32>,
    /// Cycles per second.
    rate: f64,
    /// How long to churn.
    duration: Duration,
    /// Cycles in the whole run: rate × duration.
    total: u64,
    /// How long each connection stays after its first bytes, ms.
    hold_ms: u64,
    /// How long to keep sampling after the churn.
    settle: Duration,
    /// Source addresses, round-robin.
    sources: Vec<IpAddr>,
}

impl ChurnConfig {
    /// Checks the flags, raises the open-file limit, resolves the URL, and
    /// returns the config with the cycles ready to launch.
    async fn from_args(args: &ChurnArgs) -> Result<(Self, Cycles), ChurnError> {
        let common = &args.common;
        if args.rate.is_nan() || args.rate <= 0.0 || args.duration.is_nan() || args.duration <= 0.0
        {
            return Err(ChurnError::Invalid(
                "--rate and --duration must be above 0".to_owned(),
            ));
        }
        let fd_limit = sys::raise_fd_limit()?;
        let max_in_flight = args.subscribers.max(1) as u64;
        if max_in_flight + sys::RESERVED_FDS > fd_limit {
            return Err(ChurnError::Invalid(format!(
                "--subscribers {max_in_flight} exceeds the open-file limit {fd_limit}"
            )));
        }
        let target = Target::resolve(&common.sub_url).await?;
        let request = target.subscribe_request(&common.headers)?;
        let total = (args.rate * args.duration).ceil() as u64;
        let sources = match &common.source_ips {
            Some(spec) => sources::parse(spec)?,
            // Closed connections linger in TIME_WAIT for a minute: plan for all
            // of the run's connections at once.
            None => sources::default_for(target.addr.ip(), total),
        };
        let cycles = Cycles::new(
            target.addr,
            request,
            Duration::from_secs_f64(common.connect_timeout.max(0.001)),
            Duration::from_millis(args.hold_ms),
            sources.clone(),
            max_in_flight,
        );
        let config = Self {
            label: common.label.clone(),
            sub_url: common.sub_url.clone(),
            progress: common.progress,
            server_pid: common.server_pid,
            rate: args.rate,
            duration: Duration::from_secs_f64(args.duration),
            total,
            hold_ms: args.hold_ms,
            settle: Duration::from_secs_f64(args.settle.max(0.0)),
            sources,
        };
        Ok((config, cycles))
    }
}

/// Runs a churn measurement. Must run inside a `LocalSet`.
pub async fn run(args: &ChurnArgs) -> Result<ChurnReport, ChurnError> {
    let mut clock = RunClock::start();
    let (config, mut cycles) = ChurnConfig::from_args(args).await?;
    let display = Display::new(config.progress);
    // The timeline counts from here, after the checks.
    clock.t0 = Instant::now();
    let mut sampler = config.server_pid.map(|pid| Sampler::new(pid, clock.t0));
    let before = sample_server(&config)?;
    if let Some(s) = &mut sampler {
        s.sample("before", 0, 0);
    }
    let cpu_before = sys::cpu_time();
    let churned = churn_phase(&config, &mut cycles, &mut sampler, &display).await;
    // Let the cycles in flight end.
    cycles.wait_in_flight().await;
    let end = sample_server(&config)?;
    let completed = cycles.completed();
    let settled = settle_phase(&config, &cycles, completed, &mut sampler, &display).await?;
    display.finish();
    let server = server_report(sampler, [before, end, settled], &churned);
    Ok(report(
        &config,
        &cycles,
        &churned,
        completed,
        server,
        &clock,
        sys::cpu_time().saturating_sub(cpu_before),
    ))
}

/// Samples the server, if there is one to sample.
fn sample_server(config: &ChurnConfig) -> Result<Option<ProcSample>, ProcError> {
    config.server_pid.map(procfs::sample).transpose()
}

/// What the churn phase measured.
#[derive(Debug)]
struct Churned {
    /// How long it lasted.
    time: Duration,
    /// (seconds since the churn started, server RSS) once a second.
    rss_samples: Vec<(f64, u64)>,
}

/// The churn phase: launches cycles at the rate for the duration, samples
/// the server and redraws the progress once a second.
async fn churn_phase(
    config: &ChurnConfig,
    cycles: &mut Cycles,
    sampler: &mut Option<Sampler>,
    display: &Display,
) -> Churned {
    display.phase("churn", config.duration.as_secs_f64().ceil() as u64);
    let start = Instant::now();
    let mut next_sample = start + Duration::from_secs(1);
    let mut rss_samples: Vec<(f64, u64)> = Vec::new();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= config.duration {
            break;
        }
        let due = ((elapsed.as_secs_f64() * config.rate) as u64).min(config.total);
        cycles.launch_until(due);
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(1);
            if let Some(s) = sampler
                && let Some(sample) = s.sample("churn", cycles.started(), cycles.completed())
            {
                rss_samples.push((start.elapsed().as_secs_f64(), sample.rss_bytes));
            }
            display.update(
                elapsed.as_secs(),
                &format!(
                    "ok {} failed {} in flight {} skipped {}",
                    cycles.completed(),
                    cycles.failed(),
                    cycles.in_flight(),
                    cycles.skipped(),
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Churned {
        time: start.elapsed(),
        rss_samples,
    }
}

/// The settle phase: samples the server once a second for the settle time
/// after the churn (`completed` cycles in all); returns the last sample.
async fn settle_phase(
    config: &ChurnConfig,
    cycles: &Cycles,
    completed: u64,
    sampler: &mut Option<Sampler>,
    display: &Display,
) -> Result<Option<ProcSample>, ChurnError> {
    display.phase("settle", 0);
    let settle_until = Instant::now() + config.settle;
    while Instant::now() < settle_until {
        let left = settle_until - Instant::now();
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        if let Some(s) = sampler {
            s.sample("settle", cycles.started(), completed);
        }
    }
    Ok(sample_server(config)?)
}

/// The server's memory over the run, when every sample was taken.
fn server_report(
    sampler: Option<Sampler>,
    samples: [Option<ProcSample>; 3],
    churned: &Churned,
) -> Option<ChurnServer> {
    let (Some(s), [Some(before), Some(end), Some(settled)]) = (sampler, samples) else {
        return None;
    };
    Some(ChurnServer {
        pid: s.pid,
        before,
        end,
        settled,
        max_rss_bytes: s.max_rss.max(end.rss_bytes).max(settled.rss_bytes),
        growth_bytes: settled.rss_bytes as i64 - before.rss_bytes as i64,
        second_half_slope_bytes_per_s: stats::round3(second_half_slope(&churned.rss_samples)),
        timeline: s.timeline,
    })
}

/// The report.
fn report(
    config: &ChurnConfig,
    cycles: &Cycles,
    churned: &Churned,
    completed: u64,
    server: Option<ChurnServer>,
    clock: &RunClock,
    tool_cpu: Duration,
) -> ChurnReport {
    let cycles_per_s = completed as f64 / churned.time.as_secs_f64();
    ChurnReport {
        kind: "churn".to_owned(),
        label: config.label.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix_s: clock.started_unix_s,
        sub_url: config.sub_url.clone(),
        target_cycles_per_s: config.rate,
        max_in_flight: cycles.max_in_flight(),
        hold_ms: config.hold_ms,
        duration_s: stats::round3(churned.time.as_secs_f64()),
        source_ips: sources::describe(&config.sources),
        started: cycles.started(),
        completed,
        failed: cycles.failed(),
        errors: cycles.errors(),
        skipped: cycles.skipped(),
        cycles_per_s: stats::round3(cycles_per_s),
        connects_and_disconnects_per_s: stats::round3(2.0 * cycles_per_s),
        time_to_first_bytes_ms: Summary::of(&cycles.first_bytes()),
        server,
        tool_cpu_s: stats::round3(tool_cpu.as_secs_f64()),
        host: HostReport {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            load_average_start: clock.load_average_start,
            load_average_end: sys::load_average(),
        },
    }
}

/// Samples the server into the timeline.
#[derive(Debug)]
struct Sampler {
    /// The server.
    pid: u32,
    /// When the run started.
    t0: Instant,
    /// The last CPU reading, for the per-interval CPU.
    last_cpu: Option<(Instant, f64)>,
    /// Completed cycles at the last sample.
    last_completed: u64,
    /// Started cycles at the last sample.
    last_started: u64,
    /// The samples.
    timeline: Vec<TimelineSample>,
    /// The largest RSS seen.
    max_rss: u64,
}

impl Sampler {
    fn new(pid: u32, t0: Instant) -> Self {
        Self {
            pid,
            t0,
            last_cpu: None,
            last_completed: 0,
            last_started: 0,
            timeline: Vec::new(),
            max_rss: 0,
        }
    }

    fn sample(&mut self, phase: &str, started: u64, completed: u64) -> Option<ProcSample> {
        let sample = procfs::sample(self.pid).ok()?;
        let now = Instant::now();
        let cpu_cores = match self.last_cpu {
            Some((at, cpu)) => (sample.cpu_s - cpu) / now.duration_since(at).as_secs_f64(),
            None => 0.0,
        };
        self.last_cpu = Some((now, sample.cpu_s));
        self.max_rss = self.max_rss.max(sample.rss_bytes);
        self.timeline.push(TimelineSample {
            t_s: stats::round3(self.t0.elapsed().as_secs_f64()),
            phase: phase.to_owned(),
            connected: started - self.last_started,
            delivered: completed - self.last_completed,
            rss_bytes: sample.rss_bytes,
            fds: sample.fds,
            cpu_cores: stats::round3(cpu_cores),
        });
        self.last_started = started;
        self.last_completed = completed;
        Some(sample)
    }
}

/// The least-squares slope of RSS over time in the second half of the
/// samples, bytes per second.
fn second_half_slope(samples: &[(f64, u64)]) -> f64 {
    let half = samples.get(samples.len() / 2..).unwrap_or_default();
    if half.len() < 2 {
        return 0.0;
    }
    let n = half.len() as f64;
    let mean_t = half.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_r = half.iter().map(|&(_, r)| r as f64).sum::<f64>() / n;
    let mut num = 0.0;
    let mut den = 0.0;
    for &(t, r) in half {
        num += (t - mean_t) * (r as f64 - mean_r);
        den += (t - mean_t) * (t - mean_t);
    }
    if den > 0.0 { num / den } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::second_half_slope;

    #[test]
    fn slope_of_a_steady_leak() {
        let samples: Vec<(f64, u64)> = (0..10)
            .map(|t| (f64::from(t), 1000 + 500 * t as u64))
            .collect();
        assert!((second_half_slope(&samples) - 500.0).abs() < 1e-6);
        let flat: Vec<(f64, u64)> = (0..10).map(|t| (f64::from(t), 7)).collect();
        assert_eq!(second_half_slope(&flat), 0.0);
        assert_eq!(second_half_slope(&[]), 0.0);
    }
}
