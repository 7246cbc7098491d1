//! What one subscriber received: which sequence numbers, how many twice,
//! how many late.
//!
//! In the normal case (every event once, in order) this is one counter; a
//! bit set of all sequence numbers is allocated only for a subscriber whose
//! stream first goes out of sequence, so that 100,000 well-behaved
//! subscribers cost a few bytes each.

/// What an arriving event was, for this subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Its first arrival, after every lower number that arrived.
    InOrder,
    /// Its first arrival, after an event sent once this one had been
    /// answered (see [`crate::payload`]): the server reordered it.
    OutOfOrder,
    /// It had arrived before.
    Duplicate,
    /// Its number is not one the publisher uses in this run.
    OutOfRange,
}

/// The delivery record of one subscriber.
#[derive(Debug, Clone, Default)]
pub struct Track {
    /// Events `0..contiguous` arrived once each, in order, and nothing else
    /// did (while `seen` is `None`).
    contiguous: u32,
    /// Which numbers arrived, once anything arrived out of sequence.
    seen: Option<Box<[u64]>>,
    /// The highest `acked` of the events that arrived: a first arrival
    /// below it is out of order.
    floor: u32,
    /// Distinct numbers that arrived.
    delivered: u32,
    /// Arrivals of a number that had arrived before.
    duplicates: u32,
    /// First arrivals below the floor.
    out_of_order: u32,
}

impl Track {
    /// Records the arrival of number `n`, whose stamp says that events
    /// below `acked` had been answered when it was sent, in a run that
    /// numbers its events `0..events`.
    pub fn record(&mut self, n: u64, acked: u64, events: u32) -> Arrival {
        let Some(n) = u32::try_from(n).ok().filter(|&n| n < events) else {
            return Arrival::OutOfRange;
        };
        let acked = u32::try_from(acked).unwrap_or(u32::MAX).min(n);
        if self.seen.is_none() && n == self.contiguous {
            // Every earlier arrival is below `n`, and so is every `acked`.
            self.contiguous += 1;
            self.floor = self.floor.max(acked);
            self.delivered += 1;
            return Arrival::InOrder;
        }
        let seen = self.seen.get_or_insert_with(|| {
            let mut bits = vec![0u64; (events as usize).div_ceil(64)].into_boxed_slice();
            for i in 0..self.contiguous {
                set_bit(&mut bits, i);
            }
            bits
        });
        if get_bit(seen, n) {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        set_bit(seen, n);
        self.delivered += 1;
        let late = n < self.floor;
        self.floor = self.floor.max(acked);
        if late {
            self.out_of_order += 1;
            Arrival::OutOfOrder
        } else {
            Arrival::InOrder
        }
    }

    /// Distinct events received.
    pub fn delivered(&self) -> u32 {
        self.delivered
    }

    /// Repeated arrivals.
    pub fn duplicates(&self) -> u32 {
        self.duplicates
    }

    /// Late first arrivals.
    pub fn out_of_order(&self) -> u32 {
        self.out_of_order
    }
}

fn set_bit(bits: &mut [u64], n: u32) {
    if let Some(word) = bits.get_mut((n / 64) as usize) {
        *word |= 1 << (n % 64);
    }
}

fn get_bit(bits: &[u64], n: u32) -> bool {
    bits.get((n / 64) as usize)
        .is_some_and(|word| word & (1 << (n % 64)) != 0)
}

#[cfg(test)]
mod tests {
    use super::{Arrival, Track};

    #[test]
    fn in_order_stays_small() {
        let mut track = Track::default();
        for n in 0..1000 {
            assert_eq!(track.record(n, n, 1000), Arrival::InOrder);
        }
        assert!(track.seen.is_none());
        assert_eq!(track.delivered(), 1000);
        assert_eq!(track.record(1000, 0, 1000), Arrival::OutOfRange);
        assert_eq!(track.record(u64::MAX, 0, 1000), Arrival::OutOfRange);
    }

    #[test]
    fn duplicates_gaps_and_late_arrivals() {
        let mut track = Track::default();
        // One publish in flight at a time: `acked` is `n`.
        let arrivals: Vec<Arrival> = [0, 1, 1, 3, 2, 4, 0, 130, 64]
            .into_iter()
            .map(|n| track.record(n, n, 200))
            .collect();
        assert_eq!(
            arrivals,
            [
                Arrival::InOrder,
                Arrival::InOrder,
                Arrival::Duplicate,
                Arrival::InOrder,
                Arrival::OutOfOrder,
                Arrival::InOrder,
                Arrival::Duplicate,
                Arrival::InOrder,
                Arrival::OutOfOrder,
            ]
        );
        assert_eq!(track.delivered(), 7);
        assert_eq!(track.duplicates(), 2);
        assert_eq!(track.out_of_order(), 2);
    }

    #[test]
    fn a_stream_that_starts_late_counts_the_rest() {
        let mut track = Track::default();
        assert_eq!(track.record(5, 5, 10), Arrival::InOrder);
        assert_eq!(track.record(6, 6, 10), Arrival::InOrder);
        assert_eq!(track.record(0, 0, 10), Arrival::OutOfOrder);
        assert_eq!(track.delivered(), 3);
    }

    #[test]
    fn overlapping_publishes_may_swap_but_not_acknowledged_ones() {
        let mut track = Track::default();
        // 1 and 2 were in flight together (both sent when only 0 had been
        // answered): either order is fine.
        assert_eq!(track.record(0, 0, 10), Arrival::InOrder);
        assert_eq!(track.record(2, 1, 10), Arrival::InOrder);
        assert_eq!(track.record(1, 1, 10), Arrival::InOrder);
        // 4 was sent after 3 had been answered: 3 arriving after 4 is late.
        assert_eq!(track.record(4, 4, 10), Arrival::InOrder);
        assert_eq!(track.record(3, 1, 10), Arrival::OutOfOrder);
        assert_eq!(track.out_of_order(), 1);
        assert_eq!(track.delivered(), 5);
    }
}
