//! How long to wait before the next connection attempt.
//!
//! The rule, with `base` the reconnection time (3 s unless configured, and
//! replaced by the server's `retry:` field as soon as one arrives) and `n`
//! the number of consecutive failed attempts:
//!
//! - `n = 0` (the first attempt, or a reconnect after a connection that
//!   was established and delivered at least one byte of body): wait exactly
//!   `base`, as browsers do.
//! - `n ≥ 1`: `cap = min(ceiling, max(base, 100 ms) · 2ⁿ)`, jittered (full:
//!   uniform in `[0, cap]`; equal: uniform in `[cap/2, cap]`; none: `cap`),
//!   and never less than `base`, so a server's `retry:` is always honoured.
//!
//! An attempt *fails* when it gets no response (refused, reset, DNS, TLS,
//! read timeout), when its stream ends before delivering a single byte, or
//! when its stream breaks the decoder's limits.
//! The 100 ms floor keeps a server that sent `retry: 0` and then went away
//! from turning its clients into a busy loop.

use std::time::Duration;

/// The smallest step that backoff doubles from (see the module docs).
const FLOOR: Duration = Duration::from_millis(100);

/// The longest any wait may be (about 136 years): a server may send
/// `retry: 99999999999999999999`, and a deadline that far in the future
/// would not fit in an `Instant`.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(u32::MAX as u64);

/// How the delay after a failed attempt is randomised, so that many clients
/// cut off at once do not come back in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Always the full backoff delay.
    None,
    /// Uniform between zero and the backoff delay (but never below the
    /// reconnection time).
    Full,
    /// Uniform between half the backoff delay and all of it.
    #[default]
    Equal,
}

/// Exponential backoff with a ceiling and jitter.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// The longest delay that doubling may reach (unless the reconnection
    /// time itself is longer).
    ceiling: Duration,
    /// How the delay is randomised.
    jitter: Jitter,
    /// The random source for jitter; seeded once per event source.
    rng: fastrand::Rng,
}

impl Backoff {
    pub(crate) fn new(ceiling: Duration, jitter: Jitter) -> Self {
        Self {
            ceiling,
            jitter,
            rng: fastrand::Rng::new(),
        }
    }

    /// The delay before the next attempt, after `failures` consecutive
    /// failed attempts, with reconnection time `base`.
    pub(crate) fn delay(&mut self, base: Duration, failures: u32) -> Duration {
        self.uncapped(base, failures).min(MAX_WAIT)
    }

    fn uncapped(&mut self, base: Duration, failures: u32) -> Duration {
        if failures == 0 {
            return base;
        }
        let step = base.max(FLOOR);
        let cap = step
            .checked_mul(1u32.checked_shl(failures).unwrap_or(u32::MAX))
            .unwrap_or(Duration::MAX)
            .min(self.ceiling);
        let jittered = match self.jitter {
            Jitter::None => cap,
            Jitter::Full => self.uniform(Duration::ZERO, cap),
            Jitter::Equal => self.uniform(cap / 2, cap),
        };
        jittered.max(base)
    }

    /// A uniform duration in `[low, high]`, at nanosecond resolution.
    fn uniform(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low);
        let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        low + Duration::from_nanos(self.rng.u64(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn no_failure_waits_exactly_the_reconnection_time() {
        let mut b = Backoff::new(Duration::from_secs(30), Jitter::Full);
        assert_eq!(b.delay(3000 * MS, 0), 3000 * MS);
        assert_eq!(b.delay(Duration::ZERO, 0), Duration::ZERO);
    }

    #[test]
    fn absurd_retry_is_capped() {
        let mut b = Backoff::new(Duration::from_secs(30), Jitter::Equal);
        let absurd = Duration::from_millis(u64::MAX);
        assert_eq!(b.delay(absurd, 0), MAX_WAIT);
        assert_eq!(b.delay(absurd, 7), MAX_WAIT);
    }

    #[test]
    fn doubles_up_to_the_ceiling() {
        let mut b = Backoff::new(Duration::from_secs(5), Jitter::None);
        let got: Vec<_> = (1..=8).map(|n| b.delay(300 * MS, n)).collect();
        let want = [600, 1200, 2400, 4800, 5000, 5000, 5000, 5000].map(|ms| ms * MS);
        assert_eq!(got, want);
        // Huge failure counts saturate instead of overflowing.
        assert_eq!(b.delay(300 * MS, u32::MAX), 5000 * MS);
    }

    #[test]
    fn zero_reconnection_time_still_backs_off_from_the_floor() {
        let mut b = Backoff::new(Duration::from_secs(30), Jitter::None);
        assert_eq!(b.delay(Duration::ZERO, 1), 200 * MS);
        assert_eq!(b.delay(Duration::ZERO, 3), 800 * MS);
    }

    #[test]
    fn a_long_retry_beats_the_ceiling() {
        let mut b = Backoff::new(Duration::from_secs(1), Jitter::Full);
        for n in 0..20 {
            assert_eq!(b.delay(Duration::from_secs(10), n), Duration::from_secs(10));
        }
    }

    #[test]
    fn jitter_stays_in_its_band() {
        let base = 100 * MS;
        let mut equal = Backoff::new(Duration::from_secs(30), Jitter::Equal);
        let mut full = Backoff::new(Duration::from_secs(30), Jitter::Full);
        let (mut equal_seen, mut full_seen) = (Vec::new(), Vec::new());
        for _ in 0..2000 {
            // cap = 100 ms * 2^4 = 1600 ms
            let e = equal.delay(base, 4);
            assert!((800 * MS..=1600 * MS).contains(&e), "{e:?}");
            equal_seen.push(e);
            let f = full.delay(base, 4);
            assert!((base..=1600 * MS).contains(&f), "{f:?}");
            full_seen.push(f);
        }
        // Randomised for real: both halves of each band are hit.
        assert!(equal_seen.iter().any(|d| *d < 1200 * MS));
        assert!(equal_seen.iter().any(|d| *d > 1200 * MS));
        assert!(full_seen.iter().any(|d| *d < 800 * MS));
        assert!(full_seen.iter().any(|d| *d > 800 * MS));
    }
}
