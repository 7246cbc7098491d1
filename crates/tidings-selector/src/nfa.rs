//! The general matcher: a Thompson simulation of the template read as an
//! automaton, one topic unit (a byte or a pct-encoded triplet) at a time.
//!
//! It runs in `O(topic units × template pieces)` time whatever the input,
//! because it tracks the set of places the template can be at rather than
//! trying one way after another: a template such as `{+a}/{+b}/{+c}/…`,
//! where every `/` of the topic could end any of the paths, costs one sweep
//! of its pieces per unit of the topic, not a number of attempts that grows
//! exponentially with the topic.
//!
//! The states are:
//! - one per byte of each literal: "the literal continues at this byte";
//! - one per expression with a leading character (`{#x}`, `{/x}`, …):
//!   "the leading character may come next";
//! - one per expression: "inside the expansion, after this many
//!   separators". Of several such states for one expression only the one
//!   with the fewest separators matters (it can go on wherever the others
//!   can), so one counter per expression holds it.
//!
//! Moving on without reading (an expression that expands to nothing, the
//! end of a literal or of an expansion) only ever goes forward through the
//! pieces, so the closure is a forward walk.

use crate::chars::unit_len;
use crate::template::Piece;

/// State bits kept on the stack; larger templates use the heap.
const STACK_WORDS: usize = 8;
/// Expressions' counters kept on the stack; larger templates use the heap.
const STACK_PIECES: usize = 32;
/// Counter value of an expression whose expansion is not under way.
const IDLE: u32 = u32::MAX;

/// Whether `topic` is an expansion of `pieces` (a stretch of a template's
/// middle whose state bits are below `bits`); `source` is the template text.
pub(crate) fn matches(source: &[u8], pieces: &[Piece], bits: u32, topic: &[u8]) -> bool {
    let words = (bits as usize).div_ceil(64);
    let count = pieces.len();
    if words <= STACK_WORDS && count <= STACK_PIECES {
        let mut bits = [[0_u64; STACK_WORDS]; 2];
        let mut counters = [[IDLE; STACK_PIECES]; 2];
        let [bits_a, bits_b] = &mut bits;
        let [counters_a, counters_b] = &mut counters;
        let (Some(bits_a), Some(bits_b)) = (bits_a.get_mut(..words), bits_b.get_mut(..words))
        else {
            return false;
        };
        let (Some(counters_a), Some(counters_b)) =
            (counters_a.get_mut(..count), counters_b.get_mut(..count))
        else {
            return false;
        };
        simulate(
            source,
            pieces,
            topic,
            States::new(bits_a, counters_a),
            States::new(bits_b, counters_b),
        )
    } else {
        // Templates this large are rare: a few hundred literal bytes between
        // expressions, or dozens of expressions.
        let (mut bits_a, mut bits_b) = (vec![0; words], vec![0; words]);
        let (mut counters_a, mut counters_b) = (vec![IDLE; count], vec![IDLE; count]);
        simulate(
            source,
            pieces,
            topic,
            States::new(&mut bits_a, &mut counters_a),
            States::new(&mut bits_b, &mut counters_b),
        )
    }
}

/// Runs the simulation from `current` (empty) using `next` (empty) as the
/// other half of the double buffer.
fn simulate<'a>(
    source: &[u8],
    pieces: &[Piece],
    topic: &[u8],
    mut current: States<'a>,
    mut next: States<'a>,
) -> bool {
    current.enter(pieces, 0);
    let mut at = 0;
    while at < topic.len() {
        let Some(len) = unit_len(topic, at) else {
            return false;
        };
        let Some(unit) = topic.get(at..at + len) else {
            return false;
        };
        next.clear();
        step(source, pieces, &current, &mut next, unit);
        if !next.live {
            return false;
        }
        std::mem::swap(&mut current, &mut next);
        at += len;
    }
    current.accept
}

/// Reads `unit` from every state of `current` into `next`.
fn step(source: &[u8], pieces: &[Piece], current: &States<'_>, next: &mut States<'_>, unit: &[u8]) {
    for (index, piece) in pieces.iter().enumerate() {
        match *piece {
            Piece::Literal { text, bit, .. } => {
                let text = text.of(source);
                current.for_each_bit(bit, text.len(), |offset| {
                    if text
                        .get(offset..)
                        .is_some_and(|rest| rest.starts_with(unit))
                    {
                        let after = offset + unit.len();
                        if after >= text.len() {
                            next.enter(pieces, index + 1);
                        } else {
                            next.set(bit as usize + after);
                        }
                    }
                });
            }
            Piece::Expression { rule, bit } => {
                if let Some(first) = rule.first()
                    && unit == [first]
                    && current.test(bit as usize)
                {
                    next.expanding(pieces, index, 0);
                }
                let separators = current.counters.get(index).copied().unwrap_or(IDLE);
                if separators != IDLE
                    && let Some(separators) = rule.advance(separators, unit)
                {
                    next.expanding(pieces, index, separators);
                }
            }
        }
    }
}

/// A set of states of the simulation.
struct States<'a> {
    /// Literal-byte and leading-character states, by bit number.
    bits: &'a mut [u64],
    /// Per piece: the fewest separators of an expansion under way, or
    /// `IDLE`.
    counters: &'a mut [u32],
    /// Whether the end of the pieces is reached.
    accept: bool,
    /// Whether any state is set (otherwise nothing can match any more).
    live: bool,
}

impl<'a> States<'a> {
    /// States over `bits` (all zero) and `counters` (all `IDLE`).
    fn new(bits: &'a mut [u64], counters: &'a mut [u32]) -> Self {
        Self {
            bits,
            counters,
            accept: false,
            live: false,
        }
    }

    fn clear(&mut self) {
        self.bits.fill(0);
        self.counters.fill(IDLE);
        self.accept = false;
        self.live = false;
    }

    fn test(&self, bit: usize) -> bool {
        self.bits
            .get(bit / 64)
            .is_some_and(|word| word >> (bit % 64) & 1 == 1)
    }

    /// Sets `bit`; returns whether it was clear.
    fn set(&mut self, bit: usize) -> bool {
        self.live = true;
        match self.bits.get_mut(bit / 64) {
            Some(word) => {
                let mask = 1 << (bit % 64);
                let was_clear = *word & mask == 0;
                *word |= mask;
                was_clear
            }
            None => false,
        }
    }

    /// Calls `f` with the offset from `start` of every set bit among the
    /// `len` bits from `start`.
    fn for_each_bit(&self, start: u32, len: usize, mut f: impl FnMut(usize)) {
        let start = start as usize;
        let end = start + len;
        let mut word_index = start / 64;
        while word_index * 64 < end {
            let Some(&word) = self.bits.get(word_index) else {
                return;
            };
            let base = word_index * 64;
            let mut word = word;
            if start > base {
                word &= u64::MAX << (start - base);
            }
            if end < base + 64 {
                word &= (1 << (end - base)) - 1;
            }
            while word != 0 {
                f(base + word.trailing_zeros() as usize - start);
                word &= word - 1;
            }
            word_index += 1;
        }
    }

    /// Adds the state of piece `index`'s expansion under way after
    /// `separators` separators, and what follows from it without reading.
    fn expanding(&mut self, pieces: &[Piece], index: usize, separators: u32) {
        let Some(counter) = self.counters.get_mut(index) else {
            return;
        };
        let was = *counter;
        if separators < was {
            *counter = separators;
            self.live = true;
            if was == IDLE {
                // The expansion may end here.
                self.enter(pieces, index + 1);
            }
        }
    }

    /// Adds the states at the start of piece `index`, and what follows
    /// from them without reading.
    fn enter(&mut self, pieces: &[Piece], index: usize) {
        self.live = true;
        let mut index = index;
        loop {
            match pieces.get(index) {
                None => {
                    self.accept = true;
                    return;
                }
                Some(Piece::Literal { bit, .. }) => {
                    self.set(*bit as usize);
                    return;
                }
                Some(Piece::Expression { rule, bit }) => {
                    if rule.first().is_some() {
                        // The leading character may come next, or the
                        // expression may expand to nothing.
                        if !self.set(*bit as usize) {
                            return;
                        }
                    } else {
                        // The expansion starts at once (and may be empty).
                        let Some(counter) = self.counters.get_mut(index) else {
                            return;
                        };
                        let was = *counter;
                        *counter = 0;
                        if was != IDLE {
                            return;
                        }
                    }
                    index += 1;
                }
            }
        }
    }
}
