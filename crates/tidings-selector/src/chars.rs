//! Character rules: the byte sets of RFC 3986 that expansions are made of,
//! percent-encoded triplets, and which characters a template may contain.

/// A set of ASCII bytes, one bit per byte value. Bytes of 128 and above are
/// never members: expansions pct-encode everything that is not ASCII.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteClass {
    /// Members among bytes 0 to 63.
    low: u64,
    /// Members among bytes 64 to 127.
    high: u64,
}

impl ByteClass {
    /// The empty set.
    pub(crate) const EMPTY: Self = Self { low: 0, high: 0 };

    /// This set plus `byte` (ignored when it is not ASCII).
    pub(crate) const fn with(self, byte: u8) -> Self {
        match byte {
            0..=63 => Self {
                low: self.low | 1 << byte,
                high: self.high,
            },
            64..=127 => Self {
                low: self.low,
                high: self.high | 1 << (byte - 64),
            },
            _ => self,
        }
    }

    /// This set plus every byte of `bytes`.
    const fn with_all(self, bytes: &[u8]) -> Self {
        let mut out = self;
        let mut rest = bytes;
        while let [first, tail @ ..] = rest {
            out = out.with(*first);
            rest = tail;
        }
        out
    }

    /// This set plus the bytes from `lo` to `hi`, both included.
    const fn with_range(self, lo: u8, hi: u8) -> Self {
        let mut out = self;
        let mut byte = lo;
        while byte <= hi {
            out = out.with(byte);
            if byte == u8::MAX {
                break;
            }
            byte += 1;
        }
        out
    }

    /// The union of both sets.
    pub(crate) const fn union(self, other: Self) -> Self {
        Self {
            low: self.low | other.low,
            high: self.high | other.high,
        }
    }

    /// Whether `byte` is a member.
    #[inline]
    pub(crate) const fn contains(self, byte: u8) -> bool {
        match byte {
            0..=63 => self.low >> byte & 1 == 1,
            64..=127 => self.high >> (byte - 64) & 1 == 1,
            _ => false,
        }
    }
}

/// RFC 3986 `unreserved`: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
pub(crate) const UNRESERVED: ByteClass = ByteClass::EMPTY
    .with_range(b'A', b'Z')
    .with_range(b'a', b'z')
    .with_range(b'0', b'9')
    .with_all(b"-._~");

/// RFC 3986 `reserved`: `gen-delims / sub-delims`.
pub(crate) const RESERVED: ByteClass = ByteClass::EMPTY.with_all(b":/?#[]@!$&'()*+,;=");

/// Whether `byte` is an ASCII hexadecimal digit (either case, as RFC 3986
/// allows in `pct-encoded`).
#[inline]
pub(crate) const fn is_hex(byte: u8) -> bool {
    byte.is_ascii_hexdigit()
}

/// The length of the unit of `text` that starts at `at`: 3 for a
/// pct-encoded triplet (`%` and two hexadecimal digits), 1 for any other
/// byte, `None` for a `%` that starts no triplet or when `at` is past the end.
///
/// A template consumes every `%` of a topic together with the two digits
/// after it (a value's pct-encoded triplet or a literal's), so a topic with
/// a `%` that starts no triplet is the expansion of no template.
#[inline]
pub(crate) fn unit_len(text: &[u8], at: usize) -> Option<usize> {
    match text.get(at..)? {
        [b'%', a, b, ..] if is_hex(*a) && is_hex(*b) => Some(3),
        [b'%', ..] | [] => None,
        [_, ..] => Some(1),
    }
}

/// Whether `byte` may appear in a variable name (RFC 6570 `varchar`
/// without its `pct-encoded` alternative, which the Go library used by
/// Mercure rejects; see the crate documentation).
#[inline]
pub(crate) const fn is_varchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Whether `c` may appear as itself in a template's literal text (RFC 6570
/// `literals` without its `pct-encoded` alternative, which the parser
/// handles).
pub(crate) const fn is_literal_char(c: char) -> bool {
    let c = c as u32;
    match c {
        0x21 | 0x23..=0x24 | 0x26 | 0x28..=0x3B | 0x3D | 0x3F..=0x5B | 0x5D | 0x5F => true,
        0x61..=0x7A | 0x7E => true,
        // ucschar and iprivate of RFC 3987.
        0xA0..=0xD7FF | 0xE000..=0xF8FF | 0xF900..=0xFDCF | 0xFDF0..=0xFFEF => true,
        // Planes 1 to 16 except each plane's last two code points, and
        // except the start of plane 14 (0xE0000 to 0xE0FFF).
        0x1_0000..=0x10_FFFF => c & 0xFFFF <= 0xFFFD && !(c >= 0xE_0000 && c < 0xE_1000),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_hold_exactly_their_bytes() {
        let unreserved: Vec<u8> = (0..=255).filter(|b| UNRESERVED.contains(*b)).collect();
        assert_eq!(unreserved.len(), 66);
        assert!(
            unreserved
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b))
        );
        let reserved: Vec<u8> = (0..=255).filter(|b| RESERVED.contains(*b)).collect();
        assert_eq!(reserved, b"!#$&'()*+,/:;=?@[]".to_vec());
        assert!(!UNRESERVED.contains(0xC3));
    }

    #[test]
    fn units() {
        assert_eq!(unit_len(b"%2Fa", 0), Some(3));
        assert_eq!(unit_len(b"%2fa", 0), Some(3));
        assert_eq!(unit_len(b"%2", 0), None);
        assert_eq!(unit_len(b"%G0", 0), None);
        assert_eq!(unit_len(b"a%", 0), Some(1));
        assert_eq!(unit_len(b"a%", 1), None);
        assert_eq!(unit_len(b"a", 1), None);
    }

    #[test]
    fn literal_characters() {
        for c in [
            'a',
            '/',
            ':',
            '?',
            '#',
            '[',
            ']',
            '!',
            '=',
            '~',
            'é',
            '日',
            '\u{10000}',
        ] {
            assert!(is_literal_char(c), "{c:?}");
        }
        for c in [
            ' ',
            '"',
            '\'',
            '%',
            '<',
            '>',
            '\\',
            '^',
            '`',
            '{',
            '|',
            '}',
            '\n',
            '\u{7F}',
            '\u{9F}',
            '\u{FFFD}',
            '\u{1FFFE}',
            '\u{E0001}',
        ] {
            assert!(!is_literal_char(c), "{c:?}");
        }
    }
}
