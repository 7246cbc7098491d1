//! The URI template grammar, as `github.com/yosida95/uritemplate/v3`
//! accepts it (RFC 6570 with the differences listed in the crate
//! documentation).

use crate::chars::{is_hex, is_literal_char, is_varchar};
use crate::expression::{Operator, Rule};

/// A byte range of the selector's source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    /// Offset of the first byte.
    pub(crate) start: u32,
    /// Offset just past the last byte.
    pub(crate) end: u32,
}

impl Span {
    /// The bytes of `source` this span covers (empty if it lies outside).
    #[inline]
    pub(crate) fn of(self, source: &[u8]) -> &[u8] {
        source
            .get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// A part of a parsed template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Literal text, never empty, matched byte for byte.
    Literal(Span),
    /// A `{…}` expression.
    Expression(Rule),
}

/// Parses `source` as a URI template, or returns `None` when it is not one
/// (the selector is then an exact topic).
pub(crate) fn parse(source: &str) -> Option<Vec<Part>> {
    // Spans are 32-bit to keep compiled templates small.
    u32::try_from(source.len()).ok()?;
    let bytes = source.as_bytes();
    let mut parts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes.get(at) == Some(&b'{') {
            let (rule, next) = expression(bytes, at + 1)?;
            parts.push(Part::Expression(rule));
            at = next;
        } else {
            let end = literal(source, at)?;
            parts.push(Part::Literal(span(at, end)?));
            at = end;
        }
    }
    Some(parts)
}

fn span(start: usize, end: usize) -> Option<Span> {
    Some(Span {
        start: u32::try_from(start).ok()?,
        end: u32::try_from(end).ok()?,
    })
}

/// Reads literal text from `start` up to the next `{` or the end; returns
/// where it stops, or `None` on a character templates may not contain.
fn literal(source: &str, start: usize) -> Option<usize> {
    let rest = source.get(start..)?;
    let bytes = rest.as_bytes();
    let mut chars = rest.char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '{' => return Some(start + offset),
            '%' => {
                // pct-encoded: exactly two hexadecimal digits follow.
                match bytes.get(offset + 1..offset + 3) {
                    Some([a, b]) if is_hex(*a) && is_hex(*b) => {
                        chars.next();
                        chars.next();
                    }
                    _ => return None,
                }
            }
            c if is_literal_char(c) => {}
            _ => return None,
        }
    }
    Some(source.len())
}

/// Reads an expression whose `{` is just before `start`; returns its rule
/// and the offset after its `}`.
fn expression(bytes: &[u8], start: usize) -> Option<(Rule, usize)> {
    let (op, consumed) = Operator::from_byte(*bytes.get(start)?)?;
    let mut at = start + usize::from(consumed);
    let mut variables = 0_u32;
    let mut exploded = false;
    loop {
        // One varspec: a name (possibly empty, as the Go library allows),
        // then an optional modifier.
        loop {
            match *bytes.get(at)? {
                byte if is_varchar(byte) => at += 1,
                b'*' => {
                    exploded = true;
                    at += 1;
                    break;
                }
                b':' => {
                    at = max_length(bytes, at + 1)?;
                    break;
                }
                b',' | b'}' => break,
                _ => return None,
            }
        }
        variables = variables.saturating_add(1);
        match *bytes.get(at)? {
            b',' => at += 1,
            b'}' => return Some((Rule::new(op, variables, exploded), at + 1)),
            _ => return None,
        }
    }
}

/// Reads a prefix modifier's length (1 to 9999, no leading zero) starting at
/// `start`; returns the offset after it.
fn max_length(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'1'..=b'9' => {}
        _ => return None,
    }
    let mut end = start + 1;
    while end - start < 4 && bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_template(source: &str) -> bool {
        parse(source).is_some()
    }

    #[test]
    fn accepts_what_the_go_library_accepts() {
        for source in [
            "https://example.com/books/{id}",
            "{+path}/here",
            "{#x,y}",
            "{.a}{/b,c*}{;d:3}{?e,f}{&g}",
            "{x:9999}",
            "{x:1}",
            "{}",
            "{x,}",
            "{*}",
            "{:5}",
            "a%2Fb{x}",
            "plain",
            "日本/{x}",
            "",
        ] {
            assert!(is_template(source), "{source:?}");
        }
    }

    #[test]
    fn rejects_what_the_go_library_rejects() {
        for source in [
            "{",
            "{x",
            "{x,",
            "{+",
            "{x:",
            "{x:5",
            "{x:12",
            "{x:0}",
            "{x:01}",
            "{x:10000}",
            "{x*:3}",
            "{x:3*}",
            "{a.b}",
            "{%41}",
            "{x y}",
            "{=x}",
            "{,x}",
            "{,}",
            "{!x}",
            "{@x}",
            "{|x}",
            "{++x}",
            "a}b",
            "a b{x}",
            "a%2{x}",
            "a%zz{x}",
            "a'{x}",
            "{x}\u{FFFD}",
            "{x}{",
            "a\"{x}",
        ] {
            assert!(!is_template(source), "{source:?}");
        }
    }

    #[test]
    fn counts_variables_and_explode() {
        let rule = |source: &str| match parse(source).unwrap().as_slice() {
            [Part::Expression(rule)] => *rule,
            other => panic!("{other:?}"),
        };
        assert_eq!(rule("{/a,b,c}"), Rule::new(Operator::Path, 3, false));
        assert_eq!(rule("{/a,b*,c}"), Rule::new(Operator::Path, 3, true));
        assert_eq!(rule("{?a:10,b}"), Rule::new(Operator::Query, 2, false));
    }

    #[test]
    fn literal_spans() {
        let parts = parse("a%2F{x}é").unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Literal(Span { start: 0, end: 4 }),
                Part::Expression(Rule::new(Operator::Simple, 1, false)),
                Part::Literal(Span { start: 7, end: 9 }),
            ]
        );
    }
}
