//! One `{…}` expression: its operator, and the rule that says which texts it
//! may expand to.
//!
//! The rule is the language of the regular expression that
//! `github.com/yosida95/uritemplate/v3` builds for the expression
//! (`Template.Regexp`, which Mercure matches topics with), widened once so
//! that it holds every RFC 6570 expansion (see the crate documentation):
//!
//! ```text
//! nothing | first value (sep value){0,max_seps}
//! ```
//!
//! where `first` is the operator's leading character (absent for `{x}` and
//! `{+x}`), every `value` is made of the rule's [`Class`] bytes and
//! pct-encoded triplets, and `max_seps` is the number of variables minus
//! one, unbounded when a variable is exploded.

use crate::chars::{ByteClass, RESERVED, UNRESERVED, unit_len};

/// The operator of an expression (RFC 6570 section 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operator {
    /// `{x}`: simple string expansion.
    Simple,
    /// `{+x}`: reserved expansion.
    Reserved,
    /// `{#x}`: fragment expansion.
    Fragment,
    /// `{.x}`: label expansion with a dot prefix.
    Label,
    /// `{/x}`: path segments.
    Path,
    /// `{;x}`: path-style parameters.
    PathParameter,
    /// `{?x}`: form-style query.
    Query,
    /// `{&x}`: form-style query continuation.
    QueryContinuation,
}

impl Operator {
    /// The operator that `byte` (the character after `{`) stands for, with
    /// whether it is consumed (`Simple` is the absence of an operator), or
    /// `None` for the operators RFC 6570 reserves for future use.
    pub(crate) const fn from_byte(byte: u8) -> Option<(Self, bool)> {
        Some(match byte {
            b'+' => (Self::Reserved, true),
            b'#' => (Self::Fragment, true),
            b'.' => (Self::Label, true),
            b'/' => (Self::Path, true),
            b';' => (Self::PathParameter, true),
            b'?' => (Self::Query, true),
            b'&' => (Self::QueryContinuation, true),
            b'=' | b',' | b'!' | b'@' | b'|' => return None,
            _ => (Self::Simple, false),
        })
    }

    /// The character written before the first defined variable.
    const fn first(self) -> Option<u8> {
        match self {
            Self::Simple | Self::Reserved => None,
            Self::Fragment => Some(b'#'),
            Self::Label => Some(b'.'),
            Self::Path => Some(b'/'),
            Self::PathParameter => Some(b';'),
            Self::Query => Some(b'?'),
            Self::QueryContinuation => Some(b'&'),
        }
    }

    /// The character written between defined variables.
    const fn separator(self) -> u8 {
        match self {
            Self::Simple | Self::Reserved | Self::Fragment => b',',
            Self::Label => b'.',
            Self::Path => b'/',
            Self::PathParameter => b';',
            Self::Query | Self::QueryContinuation => b'&',
        }
    }

    /// Whether values are written as `name=value`.
    const fn named(self) -> bool {
        matches!(
            self,
            Self::PathParameter | Self::Query | Self::QueryContinuation
        )
    }
}

/// The bytes a value may be made of, besides pct-encoded triplets (which
/// every class accepts). A class is one byte in [`Rule`] rather than a
/// [`ByteClass`], to keep compiled templates small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// `unreserved` and `,` (which joins list items and pairs).
    Unreserved,
    /// `unreserved`, `,` and `=` (which joins names or keys to values).
    UnreservedNamed,
    /// `unreserved` and `reserved`: `{+x}` and `{#x}`.
    Reserved,
}

impl Class {
    /// The member bytes.
    #[inline]
    const fn bytes(self) -> ByteClass {
        const UNRESERVED_LIST: ByteClass = UNRESERVED.with(b',');
        const UNRESERVED_NAMED: ByteClass = UNRESERVED_LIST.with(b'=');
        const RESERVED_ALL: ByteClass = UNRESERVED.union(RESERVED);
        match self {
            Self::Unreserved => UNRESERVED_LIST,
            Self::UnreservedNamed => UNRESERVED_NAMED,
            Self::Reserved => RESERVED_ALL,
        }
    }
}

/// What one expression may expand to, in the form the matchers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The bytes values are made of.
    class: Class,
    /// The operator's leading character; `None` for `{x}` and `{+x}`, whose
    /// expansions start with a value.
    first: Option<u8>,
    /// The separator between values when it is not a member of `class`
    /// (`/`, `;`, `&`); `None` when the class already holds it, so that it
    /// needs no counting.
    separator: Option<u8>,
    /// How many separators an expansion may hold: the number of variables
    /// minus one, or `u32::MAX` when a variable is exploded.
    max_separators: u32,
}

impl Rule {
    /// The rule of an expression with operator `op`, `variables` variables
    /// (at least one), `exploded` telling whether any of them has the `*`
    /// modifier. Prefix modifiers (`:N`) do not change the rule.
    pub(crate) const fn new(op: Operator, variables: u32, exploded: bool) -> Self {
        let class = match op {
            Operator::Reserved | Operator::Fragment => Class::Reserved,
            // Exploded associative arrays expand to `key=value` items.
            _ if op.named() || exploded => Class::UnreservedNamed,
            _ => Class::Unreserved,
        };
        let sep = op.separator();
        Self {
            class,
            first: op.first(),
            separator: if class.bytes().contains(sep) {
                None
            } else {
                Some(sep)
            },
            max_separators: if exploded {
                u32::MAX
            } else {
                variables.saturating_sub(1)
            },
        }
    }

    /// The leading character, if the operator has one.
    #[inline]
    pub(crate) const fn first(&self) -> Option<u8> {
        self.first
    }

    /// Every byte an expansion may hold: the class, the leading character
    /// and the separator.
    pub(crate) const fn alphabet(&self) -> ByteClass {
        let mut out = self.class.bytes();
        if let Some(first) = self.first {
            out = out.with(first);
        }
        if let Some(sep) = self.separator {
            out = out.with(sep);
        }
        out
    }

    /// After `separators` separators, reading the unit `unit` (one byte or
    /// a pct-encoded triplet) inside the expansion: the new separator count,
    /// or `None` when the expansion cannot go on with that unit.
    #[inline]
    pub(crate) fn advance(&self, separators: u32, unit: &[u8]) -> Option<u32> {
        match unit {
            [byte] if self.class.bytes().contains(*byte) => Some(separators),
            [byte] if Some(*byte) == self.separator && separators < self.max_separators => {
                Some(separators + 1)
            }
            [b'%', _, _] => Some(separators),
            _ => None,
        }
    }

    /// Whether `text` is one of this rule's expansions (the empty text
    /// always is: every variable may be undefined).
    pub(crate) fn accepts(&self, text: &[u8]) -> bool {
        let body = match (self.first, text) {
            (_, []) => return true,
            (Some(first), [lead, body @ ..]) if *lead == first => body,
            (Some(_), _) => return false,
            (None, body) => body,
        };
        // The hot path of most selectors: one pass, one table lookup per byte.
        let class = self.class.bytes();
        let mut separators = 0_u32;
        let mut at = 0;
        while let Some(&byte) = body.get(at) {
            if class.contains(byte) {
                at += 1;
            } else if Some(byte) == self.separator && separators < self.max_separators {
                separators += 1;
                at += 1;
            } else if byte == b'%' {
                match unit_len(body, at) {
                    Some(len) => at += len,
                    None => return false,
                }
            } else {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(op: u8, variables: u32, exploded: bool) -> Rule {
        let (op, _) = Operator::from_byte(op).unwrap();
        Rule::new(op, variables, exploded)
    }

    #[test]
    fn path_counts_separators() {
        let one = rule(b'/', 1, false);
        assert!(one.accepts(b"/a"));
        assert!(!one.accepts(b"/a/b"));
        let two = rule(b'/', 2, false);
        assert!(two.accepts(b"/a/b"));
        assert!(!two.accepts(b"/a/b/c"));
        let exploded = rule(b'/', 1, true);
        assert!(exploded.accepts(b"/a/b/c/d=e"));
    }

    #[test]
    fn leading_character_is_required_once_anything_is_there() {
        let fragment = rule(b'#', 1, false);
        assert!(fragment.accepts(b""));
        assert!(fragment.accepts(b"#"));
        assert!(fragment.accepts(b"#a/b#c"));
        assert!(!fragment.accepts(b"a"));
    }

    #[test]
    fn triplets() {
        let simple = rule(b'x', 1, false);
        assert!(simple.accepts(b"a%2Fb"));
        assert!(!simple.accepts(b"a%2"));
        assert!(!simple.accepts(b"a%zz"));
        assert!(!simple.accepts(b"a/b"));
        assert!(!simple.accepts(b"a=b"));
        assert!(rule(b'x', 1, true).accepts(b"a=b"));
    }

    #[test]
    fn separators_inside_the_class_are_not_counted() {
        assert!(rule(b'x', 1, false).accepts(b"a,b,c"));
        assert!(rule(b'.', 1, false).accepts(b".a.b.c"));
        assert!(rule(b'+', 1, false).accepts(b"a,b/c?d"));
    }
}
