//! A coarse clock in whole seconds since the hub started.
//!
//! Timeouts here (heartbeats, stalled writers, token expiry) need second
//! precision at most, so the sweeper ticks this clock and everybody else
//! reads an atomic instead of asking the OS for the time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Clock {
    /// When the hub started: second zero.
    start: Instant,
    /// Seconds since `start`, as of the last tick.
    now: AtomicU32,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            now: AtomicU32::new(0),
        }
    }

    /// Seconds since the hub started, as of the last tick.
    pub(crate) fn now(&self) -> u32 {
        self.now.load(Ordering::Relaxed)
    }

    /// Reads the OS clock; returns the new value of [`Clock::now`].
    pub(crate) fn tick(&self) -> u32 {
        let secs = u32::try_from(self.start.elapsed().as_secs()).unwrap_or(u32::MAX);
        self.now.store(secs, Ordering::Relaxed);
        secs
    }

    /// The hub second at which `at` falls (rounded up), for deadlines given
    /// as wall-clock times such as a token's `exp`.
    pub(crate) fn second_of(&self, at: SystemTime) -> u32 {
        let left = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let secs = self
            .start
            .elapsed()
            .saturating_add(left)
            .as_secs_f64()
            .ceil();
        // Saturating float-to-int conversion is what we want here.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let secs = secs as u32;
        secs
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// Microseconds since the Unix epoch: the first sequence number of a
/// history that starts empty, so that ids keep growing even when history
/// is lost (a volatile hub restarting, a data directory wiped) and an old
/// id can never name a new event.
pub(crate) fn unix_us() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}
