//! A compiled template and its matcher for the common case: literals
//! anchor the topic, and each run of expressions between two literals
//! covers a stretch of the topic that can be found in one pass.
//!
//! The leading literal must be a prefix of the topic and the trailing one a
//! suffix, so both are compared directly. Between them, a literal whose
//! first byte no expression just before it can expand to ends that run of
//! expressions exactly where the run's bytes stop, scanning forward; and a
//! literal whose last byte no expression just after it can expand to starts
//! that run where the run's bytes stop, scanning backward. Either way no
//! backtracking is needed. Literals anchor that way from both ends inward;
//! only when one is left that anchors neither way (`{+a}/x/{+b}`: `/` may
//! belong to either path) does the rest of the topic go to the general
//! matcher of [`crate::nfa`].

use crate::chars::{ByteClass, unit_len};
use crate::expression::Rule;
use crate::nfa;
use crate::parse::{Part, Span};

/// A template with at least one expression, compiled for matching.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    /// The literal text before the first expression (possibly empty).
    head: Span,
    /// The literal text after the last expression (possibly empty).
    tail: Span,
    /// What lies between: expressions and literals, starting and ending
    /// with an expression.
    pieces: Box<[Piece]>,
    /// How many state bits the general matcher needs for `pieces`.
    bits: u32,
}

/// A piece of a template's middle part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Literal text between two expressions.
    Literal {
        /// The text, in the selector's source.
        text: Span,
        /// First state bit of the general matcher: one per byte of text.
        bit: u32,
        /// Whether the expressions just before can never produce the
        /// text's first byte, so that their expansion ends where the bytes
        /// they can produce stop.
        ends_run_before: bool,
        /// Whether the expressions just after can never produce the text's
        /// last byte, so that their expansion starts where the bytes they
        /// can produce stop, looking backward.
        starts_run_after: bool,
    },
    /// An expression.
    Expression {
        /// What it may expand to.
        rule: Rule,
        /// The general matcher's state bit for "the leading character may
        /// come next" (unused by rules without one).
        bit: u32,
    },
}

impl Template {
    /// Compiles parsed parts; `None` when there is no expression (the
    /// selector is then an exact topic).
    pub(crate) fn compile(source: &str, parts: &[Part]) -> Option<Self> {
        let first = parts
            .iter()
            .position(|part| matches!(part, Part::Expression(_)))?;
        let last = parts
            .iter()
            .rposition(|part| matches!(part, Part::Expression(_)))?;
        let literal_at = |index: Option<usize>| match index.and_then(|i| parts.get(i)) {
            Some(Part::Literal(span)) => *span,
            _ => Span { start: 0, end: 0 },
        };
        let head = literal_at(first.checked_sub(1));
        let tail = literal_at(last.checked_add(1));
        let middle = parts.get(first..=last)?;

        let source = source.as_bytes();
        let mut pieces = Vec::with_capacity(middle.len());
        let mut bits = 0_u32;
        // Every byte the expressions since the last literal may produce.
        let mut run_alphabet = ByteClass::EMPTY;
        for part in middle {
            match *part {
                Part::Literal(text) => {
                    let ends_run_before = match text.of(source).first() {
                        Some(b'%') | None => false,
                        Some(byte) => !run_alphabet.contains(*byte),
                    };
                    pieces.push(Piece::Literal {
                        text,
                        bit: bits,
                        ends_run_before,
                        starts_run_after: false,
                    });
                    bits = bits.checked_add(text.end.checked_sub(text.start)?)?;
                    run_alphabet = ByteClass::EMPTY;
                }
                Part::Expression(rule) => {
                    pieces.push(Piece::Expression { rule, bit: bits });
                    if rule.first().is_some() {
                        bits = bits.checked_add(1)?;
                    }
                    run_alphabet = run_alphabet.union(rule.alphabet());
                }
            }
        }
        // The same, backward: every byte the expressions up to the next
        // literal may produce. (A literal never ends with `%`, and a last
        // byte that is a hexadecimal digit is in every alphabet.)
        run_alphabet = ByteClass::EMPTY;
        for piece in pieces.iter_mut().rev() {
            match piece {
                Piece::Literal {
                    text,
                    starts_run_after,
                    ..
                } => {
                    *starts_run_after = text
                        .of(source)
                        .last()
                        .is_some_and(|byte| !run_alphabet.contains(*byte));
                    run_alphabet = ByteClass::EMPTY;
                }
                Piece::Expression { rule, .. } => {
                    run_alphabet = run_alphabet.union(rule.alphabet());
                }
            }
        }
        Some(Self {
            head,
            tail,
            pieces: pieces.into_boxed_slice(),
            bits,
        })
    }

    /// The literal text before the first expression: every expansion, and
    /// the source itself, starts with it.
    pub(crate) fn head<'a>(&self, source: &'a str) -> &'a str {
        source
            .get(self.head.start as usize..self.head.end as usize)
            .unwrap_or_default()
    }

    /// Whether `topic` is one of the template's expansions; `source` is
    /// the template text the spans point into.
    pub(crate) fn matches(&self, source: &str, topic: &str) -> bool {
        let source = source.as_bytes();
        let Some(rest) = topic.as_bytes().strip_prefix(self.head.of(source)) else {
            return false;
        };
        let Some(middle) = rest.strip_suffix(self.tail.of(source)) else {
            return false;
        };
        self.matches_middle(source, middle)
    }

    /// Whether `topic` (without the head and tail literals) is an expansion
    /// of the middle pieces.
    fn matches_middle(&self, source: &[u8], topic: &[u8]) -> bool {
        let mut pieces: &[Piece] = &self.pieces;
        let mut topic = topic;
        // From the left, while literals end the runs before them.
        loop {
            let run_len = pieces
                .iter()
                .position(|piece| matches!(piece, Piece::Literal { .. }))
                .unwrap_or(pieces.len());
            let (run, after) = pieces.split_at(run_len);
            let Some((literal, rest)) = after.split_first() else {
                return self.run_accepts(source, run, topic);
            };
            let &Piece::Literal {
                text,
                ends_run_before: true,
                ..
            } = literal
            else {
                break;
            };
            let Some(end) = run_end(topic, alphabet(run)) else {
                return false;
            };
            let (expansion, after_run) = topic.split_at(end);
            if !self.run_accepts(source, run, expansion) {
                return false;
            }
            let Some(after_literal) = after_run.strip_prefix(text.of(source)) else {
                return false;
            };
            pieces = rest;
            topic = after_literal;
        }
        // From the right, while literals start the runs after them.
        loop {
            let run_start = pieces
                .iter()
                .rposition(|piece| matches!(piece, Piece::Literal { .. }))
                .map_or(0, |index| index + 1);
            let (before, run) = pieces.split_at(run_start);
            let Some((literal, rest)) = before.split_last() else {
                return self.run_accepts(source, run, topic);
            };
            let &Piece::Literal {
                text,
                starts_run_after: true,
                ..
            } = literal
            else {
                return nfa::matches(source, pieces, self.bits, topic);
            };
            let (before_run, expansion) = topic.split_at(run_begin(topic, alphabet(run)));
            if !self.run_accepts(source, run, expansion) {
                return false;
            }
            let Some(before_literal) = before_run.strip_suffix(text.of(source)) else {
                return false;
            };
            pieces = rest;
            topic = before_literal;
        }
    }

    /// Whether `text` is an expansion of the run of expressions `run`.
    fn run_accepts(&self, source: &[u8], run: &[Piece], text: &[u8]) -> bool {
        match run {
            [] => text.is_empty(),
            [Piece::Expression { rule, .. }] => rule.accepts(text),
            _ => nfa::matches(source, run, self.bits, text),
        }
    }

    /// The compiled pieces (for the tests that compare both matchers).
    #[cfg(test)]
    pub(crate) fn parts_for_tests(&self) -> (Span, Span, &[Piece], u32) {
        (self.head, self.tail, &self.pieces, self.bits)
    }
}

/// Every byte the expressions of `run` may produce.
fn alphabet(run: &[Piece]) -> ByteClass {
    run.iter().fold(ByteClass::EMPTY, |acc, piece| match piece {
        Piece::Expression { rule, .. } => acc.union(rule.alphabet()),
        Piece::Literal { .. } => acc,
    })
}

/// Where the trailing stretch of `topic` made of `alphabet` bytes and
/// pct-encoded triplets starts.
fn run_begin(topic: &[u8], alphabet: ByteClass) -> usize {
    let mut start = topic.len();
    while let Some(at) = start.checked_sub(1) {
        let byte = topic.get(at).copied().unwrap_or_default();
        if alphabet.contains(byte) || (byte == b'%' && unit_len(topic, at) == Some(3)) {
            start = at;
        } else {
            break;
        }
    }
    start
}

/// Where the leading stretch of `topic` made of `alphabet` bytes and
/// pct-encoded triplets ends, or `None` if it meets a `%` that starts no
/// triplet (no expansion holds one).
fn run_end(topic: &[u8], alphabet: ByteClass) -> Option<usize> {
    let mut at = 0;
    while let Some(&byte) = topic.get(at) {
        if alphabet.contains(byte) {
            at += 1;
        } else if byte == b'%' {
            at += unit_len(topic, at)?;
        } else {
            break;
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use proptest::prelude::*;

    fn compile(source: &str) -> Template {
        Template::compile(source, &parse(source).unwrap()).unwrap()
    }

    #[test]
    fn head_and_tail() {
        let template = compile("https://example.com/books/{id}.json");
        let (head, tail, pieces, _) = template.parts_for_tests();
        assert_eq!(
            head.of(b"https://example.com/books/{id}.json"),
            b"https://example.com/books/"
        );
        assert_eq!(tail.of(b"https://example.com/books/{id}.json"), b".json");
        assert_eq!(pieces.len(), 1);
    }

    #[test]
    fn anchoring_literals() {
        // One flag of every literal piece, picked by `flag`.
        let flags = |source: &str, flag: fn(&Piece) -> Option<bool>| -> Vec<bool> {
            let template = compile(source);
            let (_, _, pieces, _) = template.parts_for_tests();
            pieces.iter().filter_map(flag).collect()
        };
        let anchors = |source: &str| {
            flags(source, |piece| match piece {
                Piece::Literal {
                    ends_run_before, ..
                } => Some(*ends_run_before),
                Piece::Expression { .. } => None,
            })
        };
        let anchors_backward = |source: &str| {
            flags(source, |piece| match piece {
                Piece::Literal {
                    starts_run_after, ..
                } => Some(*starts_run_after),
                Piece::Expression { .. } => None,
            })
        };
        assert_eq!(anchors_backward("{+a}/x/{b}"), [true]);
        assert_eq!(anchors_backward("{+a}/x/{+b}"), [false]);
        assert_eq!(anchors_backward("{a}/x{b}"), [false]);
        assert_eq!(anchors_backward("{a}%2F{b}"), [false]);
        assert_eq!(anchors_backward("{a}/{/b}"), [false]);
        assert_eq!(anchors_backward("{a}é{b}"), [true]);
        assert_eq!(anchors("{a}/x/{b}"), [true]);
        assert_eq!(anchors("{+a}/x/{b}"), [false]);
        assert_eq!(anchors("{/a}/{b}"), [false]);
        assert_eq!(anchors("{a}%2F{b}"), [false]);
        assert_eq!(anchors("{a}é{b}{c}=d{e}"), [true, true]);
        assert_eq!(anchors("{a}é{b}{c*}=d{e}"), [true, false]);
    }

    /// Template sources mixing every operator with literals that do and do
    /// not anchor.
    fn template_source() -> impl Strategy<Value = String> {
        let expression = (
            prop::sample::select(vec!["", "+", "#", ".", "/", ";", "?", "&"]),
            prop::collection::vec((any::<bool>(), 0..3_u8), 1..4),
        )
            .prop_map(|(op, vars)| {
                let specs: Vec<String> = vars
                    .iter()
                    .enumerate()
                    .map(|(i, (explode, prefix))| {
                        let modifier = if *explode {
                            "*".to_owned()
                        } else if *prefix > 0 {
                            format!(":{prefix}")
                        } else {
                            String::new()
                        };
                        format!("v{i}{modifier}")
                    })
                    .collect();
                format!("{{{op}{}}}", specs.join(","))
            });
        let literal = prop::sample::select(vec!["/", "a", "-", ",", "=", "?", "&", "%2F", "x/"]);
        prop::collection::vec((expression, prop::option::of(literal)), 1..5).prop_map(|parts| {
            parts
                .into_iter()
                .map(|(e, l)| format!("{e}{}", l.unwrap_or_default()))
                .collect()
        })
    }

    /// Topics made of the pieces templates are made of, so that many match.
    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", "/", "-", ",", "=", "?", "&", "#", ".", ";", "%2F", "x/", "%", "a=1",
            ]),
            0..8,
        )
        .prop_map(|chunks| chunks.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// The one-pass walk and the general matcher agree on every topic.
        #[test]
        fn walk_agrees_with_the_general_matcher(source in template_source(), topic in topic()) {
            let template = compile(&source);
            let (head, tail, pieces, bits) = template.parts_for_tests();
            let bytes = source.as_bytes();
            let general = topic
                .as_bytes()
                .strip_prefix(head.of(bytes))
                .and_then(|rest| rest.strip_suffix(tail.of(bytes)))
                .is_some_and(|middle| nfa::matches(bytes, pieces, bits, middle));
            prop_assert_eq!(template.matches(&source, &topic), general);
        }
    }
}
