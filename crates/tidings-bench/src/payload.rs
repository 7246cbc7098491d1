//! What each published event carries:
//! `{"n":SEQ,"t":UNIX_NANOS,"r":RUN,"a":ACKED}`, padded with a `"p"` string
//! to the requested size.
//!
//! - `n` is the sequence number (0, 1, 2, … in publishing order);
//! - `t` the wall-clock time the publisher sent it;
//! - `r` the run id, so that events of another run (a replayed history, a
//!   stray publisher) are told apart;
//! - `a` says that every event numbered below it had been answered by the
//!   server before this one was sent. Publishes overlap when the server
//!   answers slower than the rate (several publishing connections), and the
//!   server may then order overlapping events either way; but an event that
//!   arrives after one whose `a` is above its number was reordered by the
//!   server. With one publish in flight at a time, `a` is `n`, and this is
//!   the plain "arrived after a later event".
//!
//! The four fields come first and in this order, so that a receiver parses
//! them from the first bytes of the data line and skips the padding with one
//! search.

use std::io::Write as _;

/// The text before each of the three numbers, in order.
pub const FIELD_PREFIXES: [&[u8]; 4] = [b"{\"n\":", b",\"t\":", b",\"r\":", b",\"a\":"];

/// The padding field's opening and closing text.
const PAD_OPEN: &[u8] = b",\"p\":\"";
/// Closes the padding string and the object.
const PAD_CLOSE: &[u8] = b"\"}";

/// One event as sent: what a receiver must find in the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sequence number.
    pub n: u64,
    /// When it was sent, in nanoseconds since the Unix epoch.
    pub t: u64,
    /// The run it belongs to.
    pub run: u64,
    /// Every event numbered below this had been answered when this one was
    /// sent.
    pub acked: u64,
}

impl Stamp {
    /// The stamp of the four numbers, in payload order.
    pub fn from_values([n, t, run, acked]: [u64; 4]) -> Self {
        Self { n, t, run, acked }
    }
}

/// Writes the data of `stamp` into `out` (cleared first), padded to `size`
/// bytes when `size` is larger than the unpadded text.
pub fn write(out: &mut Vec<u8>, stamp: Stamp, size: usize) {
    out.clear();
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "{{\"n\":{},\"t\":{},\"r\":{},\"a\":{}",
        stamp.n, stamp.t, stamp.run, stamp.acked
    );
    if size >= out.len() + PAD_OPEN.len() + PAD_CLOSE.len() {
        out.extend_from_slice(PAD_OPEN);
        let pad = size - out.len() - PAD_CLOSE.len();
        out.resize(out.len() + pad, b'x');
        out.extend_from_slice(PAD_CLOSE);
    } else {
        out.push(b'}');
    }
}

/// Parses a stamp at the start of `line` (a whole data value): the fast
/// path of [`crate::scan::Scanner`] when a data line arrives in one piece.
pub fn parse(line: &[u8]) -> Option<Stamp> {
    let mut values = [0u64; 4];
    let mut rest = line;
    for (prefix, value) in FIELD_PREFIXES.iter().zip(values.iter_mut()) {
        rest = rest.strip_prefix(*prefix)?;
        let mut digits = 0;
        let mut number = 0u64;
        for &byte in rest {
            if !byte.is_ascii_digit() {
                break;
            }
            number = number
                .checked_mul(10)?
                .checked_add(u64::from(byte - b'0'))?;
            digits += 1;
        }
        if digits == 0 {
            return None;
        }
        *value = number;
        rest = rest.get(digits..)?;
    }
    matches!(rest.first(), Some(b',' | b'}')).then(|| Stamp::from_values(values))
}

#[cfg(test)]
mod tests {
    use super::{Stamp, parse, write};

    const STAMP: Stamp = Stamp {
        n: 42,
        t: 1_700_000_000_123_456_789,
        run: 987_654_321,
        acked: 40,
    };

    #[test]
    fn padded_to_the_exact_size_and_valid_json() {
        let mut out = Vec::new();
        for size in [0, 10, 60, 61, 62, 100, 1000, 10_000] {
            write(&mut out, STAMP, size);
            let bare = b"{\"n\":42,\"t\":1700000000123456789,\"r\":987654321,\"a\":40}".len();
            if size >= bare + 7 {
                assert_eq!(out.len(), size);
            } else {
                assert_eq!(out.len(), bare);
            }
            let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(json["n"], 42);
            assert_eq!(parse(&out), Some(STAMP));
        }
        assert_eq!(parse(b"{\"n\":1,\"t\":2,\"r\":3,\"a\":4"), None);
        assert_eq!(parse(b"{\"n\":1,\"t\":2,\"r\":3,\"a\":}"), None);
        assert_eq!(
            parse(b"{\"n\":99999999999999999999,\"t\":2,\"r\":3,\"a\":4}"),
            None
        );
    }
}
