//! `churn`: subscribers that connect, read the first bytes of the response
//! and disconnect, at a steady rate, while the server's memory is sampled
//! every second so that growth (a leak per connection) shows.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::cli::ChurnArgs;
use crate::head::{self, OpenError};
use crate::procfs::{self, ProcError, ProcSample};
use crate::progress::Display;
use crate::report::{ChurnReport, ChurnServer, HostReport, TimelineSample};
use crate::sources::{self, SourceError};
use crate::stats::{self, Summary, new_histogram};
use crate::sys::{self, LimitError};
use crate::target::{Target, TargetError};

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

/// What the cycles share with the run.
#[derive(Debug)]
struct State {
    /// Where to connect.
    addr: SocketAddr,
    /// The subscription request.
    request: Vec<u8>,
    /// How long one cycle's opening may take.
    timeout: Duration,
    /// How long to stay connected after the first bytes.
    hold: Duration,
    /// Cycles running.
    in_flight: Cell<u64>,
    /// Cycles that completed.
    completed: Cell<u64>,
    /// Cycles that failed.
    failed: Cell<u64>,
    /// Failures by kind.
    errors: RefCell<BTreeMap<String, u64>>,
    /// Connect to first bytes, µs.
    first_bytes: RefCell<Histogram<u64>>,
}

/// One subscriber's short life.
async fn cycle(state: Rc<State>, source: Option<std::net::IpAddr>) {
    let started = Instant::now();
    let opened = tokio::time::timeout(state.timeout, async {
        let mut stream = head::connect(state.addr, source).await?;
        head::open(&mut stream, &state.request).await?;
        Ok::<_, OpenError>(stream)
    })
    .await
    .unwrap_or(Err(OpenError::Timeout));
    match opened {
        Ok(stream) => {
            stats::record(
                &mut state.first_bytes.borrow_mut(),
                u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            );
            if !state.hold.is_zero() {
                tokio::time::sleep(state.hold).await;
            }
            drop(stream);
            state.completed.set(state.completed.get() + 1);
        }
        Err(err) => {
            state.failed.set(state.failed.get() + 1);
            *state.errors.borrow_mut().entry(err.kind()).or_default() += 1;
        }
    }
    state.in_flight.set(state.in_flight.get().saturating_sub(1));
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

/// Runs a churn measurement. Must run inside a `LocalSet`.
pub async fn run(args: &ChurnArgs) -> Result<ChurnReport, ChurnError> {
    let started_unix_s = sys::now_ns() / 1_000_000_000;
    let load_average_start = sys::load_average();
    let common = &args.common;
    if args.rate.is_nan() || args.rate <= 0.0 || args.duration.is_nan() || args.duration <= 0.0 {
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
    let state = Rc::new(State {
        addr: target.addr,
        request,
        timeout: Duration::from_secs_f64(common.connect_timeout.max(0.001)),
        hold: Duration::from_millis(args.hold_ms),
        in_flight: Cell::new(0),
        completed: Cell::new(0),
        failed: Cell::new(0),
        errors: RefCell::default(),
        first_bytes: RefCell::new(new_histogram()),
    });
    let display = Display::new(common.progress);
    let t0 = Instant::now();
    let mut sampler = common.server_pid.map(|pid| Sampler {
        pid,
        t0,
        last_cpu: None,
        last_completed: 0,
        last_started: 0,
        timeline: Vec::new(),
        max_rss: 0,
    });
    let before = common.server_pid.map(procfs::sample).transpose()?;
    if let Some(s) = &mut sampler {
        s.sample("before", 0, 0);
    }
    let cpu_before = sys::cpu_time();

    display.phase("churn", args.duration.ceil() as u64);
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let mut launched = 0u64;
    let mut started = 0u64;
    let mut skipped = 0u64;
    let mut next_sample = start + Duration::from_secs(1);
    let mut churn_samples: Vec<(f64, u64)> = Vec::new();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        let due = ((elapsed.as_secs_f64() * args.rate) as u64).min(total);
        while launched < due {
            if state.in_flight.get() < max_in_flight {
                let source = sources::pick(&sources, started as usize);
                state.in_flight.set(state.in_flight.get() + 1);
                tokio::task::spawn_local(cycle(Rc::clone(&state), source));
                started += 1;
            } else {
                skipped += 1;
            }
            launched += 1;
        }
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(1);
            if let Some(s) = &mut sampler
                && let Some(sample) = s.sample("churn", started, state.completed.get())
            {
                churn_samples.push((start.elapsed().as_secs_f64(), sample.rss_bytes));
            }
            display.update(
                elapsed.as_secs(),
                &format!(
                    "ok {} failed {} in flight {} skipped {skipped}",
                    state.completed.get(),
                    state.failed.get(),
                    state.in_flight.get()
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let churn_time = start.elapsed();
    // Let the cycles in flight end.
    let deadline = Instant::now() + state.timeout + state.hold + Duration::from_secs(1);
    while state.in_flight.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end = common.server_pid.map(procfs::sample).transpose()?;
    let completed = state.completed.get();

    display.phase("settle", 0);
    let settle_until = Instant::now() + Duration::from_secs_f64(args.settle.max(0.0));
    while Instant::now() < settle_until {
        let left = settle_until - Instant::now();
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        if let Some(s) = &mut sampler {
            s.sample("settle", started, completed);
        }
    }
    let settled = common.server_pid.map(procfs::sample).transpose()?;
    display.finish();

    let cycles_per_s = completed as f64 / churn_time.as_secs_f64();
    let server = match (sampler, before, end, settled) {
        (Some(s), Some(before), Some(end), Some(settled)) => Some(ChurnServer {
            pid: s.pid,
            before,
            end,
            settled,
            max_rss_bytes: s.max_rss.max(end.rss_bytes).max(settled.rss_bytes),
            growth_bytes: settled.rss_bytes as i64 - before.rss_bytes as i64,
            second_half_slope_bytes_per_s: stats::round3(second_half_slope(&churn_samples)),
            timeline: s.timeline,
        }),
        _ => None,
    };
    Ok(ChurnReport {
        kind: "churn".to_owned(),
        label: common.label.clone(),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix_s,
        sub_url: common.sub_url.clone(),
        target_cycles_per_s: args.rate,
        max_in_flight,
        hold_ms: args.hold_ms,
        duration_s: stats::round3(churn_time.as_secs_f64()),
        source_ips: sources::describe(&sources),
        started,
        completed,
        failed: state.failed.get(),
        errors: state.errors.borrow().clone(),
        skipped,
        cycles_per_s: stats::round3(cycles_per_s),
        connects_and_disconnects_per_s: stats::round3(2.0 * cycles_per_s),
        time_to_first_bytes_ms: Summary::of(&state.first_bytes.borrow()),
        server,
        tool_cpu_s: stats::round3(sys::cpu_time().saturating_sub(cpu_before).as_secs_f64()),
        host: HostReport {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            load_average_start,
            load_average_end: sys::load_average(),
        },
    })
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
