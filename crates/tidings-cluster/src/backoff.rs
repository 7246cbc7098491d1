//! Waiting between attempts to reach an engine that is down: short at
//! first, so that a brief outage costs little, then capped, so that a hub
//! notices within a second or so that the engine is back.

use std::time::Duration;

/// The first wait after a failure.
const FIRST: Duration = Duration::from_millis(50);
/// The longest wait.
const MOST: Duration = Duration::from_secs(1);

/// Exponential backoff from [`FIRST`] to [`MOST`].
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// The wait the next failure gets.
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Backoff {
    /// The wait after one more failure.
    pub(crate) fn fail(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MOST);
        wait
    }

    /// A success: the next failure waits [`FIRST`] again.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn grows_to_a_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<_> = (0..7).map(|_| b.fail()).collect();
        assert_eq!(waits[..3], [FIRST, FIRST * 2, FIRST * 4]);
        assert_eq!(waits[6], MOST);
        b.reset();
        assert_eq!(b.fail(), FIRST);
    }
}
