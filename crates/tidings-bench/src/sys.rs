//! What the tool asks of its own process: open files, CPU time, the clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};

/// When a run started, for its report.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    /// Unix seconds.
    pub started_unix_s: u64,
    /// The machine's one-minute load average then.
    pub load_average_start: f64,
    /// The monotonic start, for timelines.
    pub t0: Instant,
}

impl RunClock {
    /// Now.
    pub fn start() -> Self {
        Self {
            started_unix_s: now_ns() / 1_000_000_000,
            load_average_start: load_average(),
            t0: Instant::now(),
        }
    }
}

/// Descriptors a process keeps for itself besides subscriber sockets: the
/// runtime, stdio, pipes to shards, the publisher, `/proc` reads.
pub const RESERVED_FDS: u64 = 64;

/// The open-file limit could not be read or raised.
#[derive(Debug, thiserror::Error)]
#[error("open-file limit: {0}")]
pub struct LimitError(#[from] nix::Error);

/// Raises the soft open-file limit to the hard limit and returns the new
/// soft limit: how many descriptors this process may hold.
pub fn raise_fd_limit() -> Result<u64, LimitError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(soft)
}

/// The CPU time (user plus system) this process used so far.
pub fn cpu_time() -> Duration {
    usage(UsageWho::RUSAGE_SELF)
}

/// The CPU time (user plus system) the calling thread used so far.
pub fn thread_cpu_time() -> Duration {
    usage(UsageWho::RUSAGE_THREAD)
}

fn usage(who: UsageWho) -> Duration {
    getrusage(who).map_or(Duration::ZERO, |usage| {
        let micros = |tv: nix::sys::time::TimeVal| {
            Duration::from_secs(u64::try_from(tv.tv_sec()).unwrap_or(0))
                + Duration::from_micros(u64::try_from(tv.tv_usec()).unwrap_or(0))
        };
        micros(usage.user_time()) + micros(usage.system_time())
    })
}

/// This process's resident memory (VmRSS), bytes; 0 if unreadable.
pub fn own_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// The machine's one-minute load average (runnable tasks, all CPUs): what
/// else competed for the CPUs during a run. 0 if unreadable.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_ascii_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The wall clock in nanoseconds since the Unix epoch: the one clock that
/// publisher and receivers in different processes share.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A number unlikely to repeat between runs, to tell this run's events from
/// any other's.
pub fn run_id() -> u64 {
    let pid = u64::from(std::process::id());
    // SplitMix64 of the time and pid: fine spread, no dependency.
    let mut z = now_ns() ^ pid.rotate_left(32);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) >> 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fd_limit_is_raised_to_the_hard_limit() {
        let soft = super::raise_fd_limit().unwrap();
        let (_, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, hard);
    }

    #[test]
    fn own_rss_is_read() {
        assert!(super::own_rss() > 1024 * 1024);
    }

    #[test]
    fn cpu_time_moves() {
        let before = super::cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(super::cpu_time() > before, "{x}");
        assert!(super::thread_cpu_time() > std::time::Duration::ZERO);
    }
}
