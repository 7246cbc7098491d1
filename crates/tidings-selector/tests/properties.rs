//! Properties over random templates and topics:
//! - every RFC 6570 expansion of a template (by the small expander below)
//!   matches it;
//! - matching decides exactly as the regular expression the Go library
//!   `github.com/yosida95/uritemplate/v3` builds for the template (which
//!   Mercure uses), with the one widening the crate documents, and never
//!   refuses a topic that regular expression accepts;
//! - nothing panics, whatever the selector and the topic;
//! - templates built to make a backtracking matcher blow up are matched in
//!   bounded time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tidings_selector::{Selector, SelectorKind};

// ---------------------------------------------------------------------------
// Templates, as structures rendered to text.

#[derive(Clone, Debug)]
enum Part {
    Literal(String),
    Expression(Expression),
}

#[derive(Clone, Debug)]
struct Expression {
    /// The operator character, or `None` for `{x}`.
    op: Option<char>,
    vars: Vec<VarSpec>,
}

#[derive(Clone, Debug)]
struct VarSpec {
    name: &'static str,
    explode: bool,
    prefix: Option<u16>,
}

/// An operator's expansion rules (RFC 6570 appendix A).
struct OpInfo {
    first: &'static str,
    sep: &'static str,
    named: bool,
    ifemp: &'static str,
    reserved: bool,
}

fn op_info(op: Option<char>) -> OpInfo {
    let (first, sep, named, ifemp, reserved) = match op {
        None => ("", ",", false, "", false),
        Some('+') => ("", ",", false, "", true),
        Some('#') => ("#", ",", false, "", true),
        Some('.') => (".", ".", false, "", false),
        Some('/') => ("/", "/", false, "", false),
        Some(';') => (";", ";", true, "", false),
        Some('?') => ("?", "&", true, "=", false),
        Some('&') => ("&", "&", true, "=", false),
        Some(other) => panic!("no operator {other:?}"),
    };
    OpInfo {
        first,
        sep,
        named,
        ifemp,
        reserved,
    }
}

fn render(parts: &[Part]) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Literal(text) => out.push_str(text),
            Part::Expression(expression) => {
                out.push('{');
                if let Some(op) = expression.op {
                    out.push(op);
                }
                let specs: Vec<String> = expression
                    .vars
                    .iter()
                    .map(|spec| {
                        let mut text = spec.name.to_owned();
                        if spec.explode {
                            text.push('*');
                        } else if let Some(prefix) = spec.prefix {
                            write!(text, ":{prefix}").unwrap();
                        }
                        text
                    })
                    .collect();
                out.push_str(&specs.join(","));
                out.push('}');
            }
        }
    }
    out
}

const NAMES: [&str; 5] = ["a", "b", "list", "keys", "x_1"];

fn var_spec() -> impl Strategy<Value = VarSpec> {
    (
        prop::sample::select(NAMES.to_vec()),
        any::<bool>(),
        prop::option::of(1..12_u16),
    )
        .prop_map(|(name, explode, prefix)| VarSpec {
            name,
            explode,
            prefix: if explode { None } else { prefix },
        })
}

fn expression() -> impl Strategy<Value = Expression> {
    (
        prop::sample::select(vec![
            None,
            Some('+'),
            Some('#'),
            Some('.'),
            Some('/'),
            Some(';'),
            Some('?'),
            Some('&'),
        ]),
        prop::collection::vec(var_spec(), 1..4),
    )
        .prop_map(|(op, vars)| Expression { op, vars })
}

/// Literal text: reserved characters, pct-encoded triplets and non-ASCII
/// characters included.
fn literal() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "a", "Z", "0", "/", "-", ".", ":", "?", "=", "&", "#", "[", "]", "!", "$", "(", ")",
            "*", "+", ",", ";", "@", "~", "_", "%2F", "%41", "%e9", "é", "日",
        ]),
        1..5,
    )
    .prop_map(|chunks| chunks.concat())
}

/// Up to six parts, at least one of them an expression.
fn template() -> impl Strategy<Value = Vec<Part>> {
    (
        prop::collection::vec(
            prop_oneof![
                2 => expression().prop_map(Part::Expression),
                1 => literal().prop_map(Part::Literal),
            ],
            0..6,
        ),
        expression(),
        any::<usize>(),
    )
        .prop_map(|(mut parts, expression, at)| {
            let at = at % (parts.len() + 1);
            parts.insert(at, Part::Expression(expression));
            parts
        })
}

// ---------------------------------------------------------------------------
// Values and the RFC 6570 expander.

#[derive(Clone, Debug)]
enum Value {
    Undefined,
    String(String),
    List(Vec<String>),
    Assoc(Vec<(String, String)>),
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "a", "B", "7", "-", ".", "_", "~", "/", "?", "#", "&", "=", ",", ";", ":", "+", "!",
            "'", "[", "]", "@", " ", "%", "%41", "%zz", "é", "日", "😀", "\"", "<", "{", "}",
        ]),
        0..6,
    )
    .prop_map(|chunks| chunks.concat())
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Undefined),
        3 => text().prop_map(Value::String),
        2 => prop::collection::vec(text(), 0..4).prop_map(Value::List),
        2 => prop::collection::vec((text(), text()), 0..4).prop_map(Value::Assoc),
    ]
}

fn values() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(value(), NAMES.len())
}

fn lookup<'a>(values: &'a [Value], name: &str) -> &'a Value {
    let index = NAMES.iter().position(|n| *n == name).unwrap();
    &values[index]
}

/// Pct-encodes `text` as RFC 6570 section 3.2.1 says: unreserved
/// characters stay; with `reserved`, reserved characters and pct-encoded
/// triplets stay too; everything else becomes triplets of its UTF-8 bytes.
fn encode(text: &str, reserved: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        let is_reserved = b":/?#[]@!$&'()*+,;=".contains(&b);
        if unreserved || (reserved && is_reserved) {
            out.push(b as char);
        } else if reserved
            && b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            out.push_str(&text[i..i + 3]);
            i += 3;
            continue;
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
        i += 1;
    }
    out
}

/// RFC 6570 expansion (section 3.2.1). Prefixes apply to strings only: the
/// RFC leaves them undefined on lists and pairs, which are written whole.
fn expand(parts: &[Part], values: &[Value]) -> String {
    let mut out = String::new();
    for part in parts {
        let expression = match part {
            Part::Literal(text) => {
                out.push_str(text);
                continue;
            }
            Part::Expression(expression) => expression,
        };
        let info = op_info(expression.op);
        let enc = |text: &str| encode(text, info.reserved);
        let mut first = true;
        for spec in &expression.vars {
            let value = lookup(values, spec.name);
            match value {
                Value::Undefined => continue,
                Value::List(items) if items.is_empty() => continue,
                Value::Assoc(pairs) if pairs.is_empty() => continue,
                _ => {}
            }
            out.push_str(if first { info.first } else { info.sep });
            first = false;
            match value {
                Value::Undefined => unreachable!(),
                Value::String(text) => {
                    if info.named {
                        out.push_str(spec.name);
                        if text.is_empty() {
                            out.push_str(info.ifemp);
                            continue;
                        }
                        out.push('=');
                    }
                    let text: String = match spec.prefix {
                        Some(n) => text.chars().take(usize::from(n)).collect(),
                        None => text.clone(),
                    };
                    out.push_str(&enc(&text));
                }
                Value::List(items) if !spec.explode => {
                    if info.named {
                        out.push_str(spec.name);
                        out.push('=');
                    }
                    let items: Vec<String> = items.iter().map(|item| enc(item)).collect();
                    out.push_str(&items.join(","));
                }
                Value::Assoc(pairs) if !spec.explode => {
                    if info.named {
                        out.push_str(spec.name);
                        out.push('=');
                    }
                    let pairs: Vec<String> = pairs
                        .iter()
                        .map(|(k, v)| format!("{},{}", enc(k), enc(v)))
                        .collect();
                    out.push_str(&pairs.join(","));
                }
                Value::List(items) => {
                    let items: Vec<String> = items
                        .iter()
                        .map(|item| {
                            if !info.named {
                                enc(item)
                            } else if item.is_empty() {
                                format!("{}{}", spec.name, info.ifemp)
                            } else {
                                format!("{}={}", spec.name, enc(item))
                            }
                        })
                        .collect();
                    out.push_str(&items.join(info.sep));
                }
                Value::Assoc(pairs) => {
                    let pairs: Vec<String> = pairs
                        .iter()
                        .map(|(k, v)| {
                            if info.named && v.is_empty() {
                                format!("{}{}", enc(k), info.ifemp)
                            } else {
                                format!("{}={}", enc(k), enc(v))
                            }
                        })
                        .collect();
                    out.push_str(&pairs.join(info.sep));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The Go library's regular expression, rebuilt from the template structure
// following `expression.regexp` and `runeClassToRegexp` of
// yosida95/uritemplate v3. `widened` applies this crate's one documented
// difference: `=` allowed before the first separator of an expression with
// any exploded variable, not only when the first one is.

const RE_UNRESERVED: &str = r"\x2d\x2e\x30-\x39\x41-\x5a\x5f\x61-\x7a\x7e";
const RE_RESERVED: &str = r"\x21\x23\x24\x26-\x2c\x2f\x3a\x3b\x3d\x3f\x40\x5b\x5d";

fn re_class(out: &mut String, reserved: bool, named: bool) {
    out.push_str("(?:(?:[");
    if !reserved {
        out.push_str(r"\x2c");
        if named {
            out.push_str(r"\x3d");
        }
    }
    out.push_str(RE_UNRESERVED);
    if reserved {
        out.push_str(RE_RESERVED);
    }
    out.push_str("]|%[0-9A-Fa-f][0-9A-Fa-f])*)");
}

fn go_regexp(parts: &[Part], widened: bool) -> regex_lite::Regex {
    let mut re = String::from("^");
    for part in parts {
        match part {
            Part::Literal(text) => {
                re.push('(');
                re.push_str(&regex_lite::escape(text));
                re.push(')');
            }
            Part::Expression(expression) => {
                let info = op_info(expression.op);
                let vars = &expression.vars;
                let any_explode = vars.iter().any(|spec| spec.explode);
                if !info.first.is_empty() {
                    re.push_str("(?:");
                    re.push_str(&regex_lite::escape(info.first));
                }
                re.push('(');
                let first_named = info.named || vars[0].explode || (widened && any_explode);
                re_class(&mut re, info.reserved, first_named);
                if vars.len() > 1 || vars[0].explode {
                    re.push_str("(?:");
                    re.push_str(&regex_lite::escape(info.sep));
                    re_class(&mut re, info.reserved, info.named || any_explode);
                    re.push(')');
                    if any_explode {
                        re.push('*');
                    } else {
                        write!(re, "{{0,{}}}", vars.len() - 1).unwrap();
                    }
                }
                re.push(')');
                if !info.first.is_empty() {
                    re.push(')');
                }
                re.push('?');
            }
        }
    }
    re.push('$');
    regex_lite::Regex::new(&re).unwrap()
}

/// What Mercure decides: `*`, equality, then the regular expression for
/// sources with a `{` (all generated templates parse in the Go library).
fn mercure_matches(source: &str, parts: &[Part], topic: &str, widened: bool) -> bool {
    source == "*"
        || source == topic
        || (source.contains('{') && go_regexp(parts, widened).is_match(topic))
}

/// Edits of a topic: insert, replace or delete one character, many times.
fn edits() -> impl Strategy<Value = Vec<(u8, usize, &'static str)>> {
    prop::collection::vec(
        (
            0..3_u8,
            any::<usize>(),
            prop::sample::select(vec![
                "a", "/", "=", ",", "&", "?", "#", ".", ";", "%", "%2F", " ", "é", "x=1",
            ]),
        ),
        0..4,
    )
}

fn apply_edits(topic: &str, edits: &[(u8, usize, &str)]) -> String {
    let mut chars: Vec<String> = topic.chars().map(String::from).collect();
    for &(kind, at, text) in edits {
        let at = if chars.is_empty() {
            0
        } else {
            at % (chars.len() + 1)
        };
        match kind {
            0 => chars.insert(at, text.to_owned()),
            1 if at < chars.len() => chars[at] = text.to_owned(),
            _ if at < chars.len() => {
                chars.remove(at);
            }
            _ => chars.push(text.to_owned()),
        }
    }
    chars.concat()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Every RFC 6570 expansion of a template matches it.
    #[test]
    fn expansions_match(parts in template(), values in values()) {
        let source = render(&parts);
        let selector = Selector::parse(&source);
        prop_assert_eq!(selector.kind(), SelectorKind::Template, "{}", source);
        let topic = expand(&parts, &values);
        prop_assert!(selector.matches(&topic), "{:?} should match {:?}", source, topic);
        prop_assert!(topic.starts_with(selector.literal_prefix()), "{:?}: {:?}", source, topic);
    }

    /// On expansions and edited expansions, the selector decides as the Go
    /// library's regular expression widened as documented, and accepts
    /// whatever the unwidened one accepts.
    #[test]
    fn decides_as_the_go_library(
        parts in template(),
        values in values(),
        edits in edits(),
    ) {
        let source = render(&parts);
        let selector = Selector::parse(&source);
        let topic = apply_edits(&expand(&parts, &values), &edits);
        let ours = selector.matches(&topic);
        if ours {
            prop_assert!(topic.starts_with(selector.literal_prefix()), "{:?}: {:?}", source, topic);
        }
        prop_assert_eq!(
            ours,
            mercure_matches(&source, &parts, &topic, true),
            "{:?} against {:?}", source, topic
        );
        if mercure_matches(&source, &parts, &topic, false) {
            prop_assert!(ours, "{:?} against {:?}", source, topic);
        }
    }

    /// Arbitrary text never makes parsing or matching panic, and a selector
    /// always matches its own source.
    #[test]
    fn never_panics(source in any::<String>(), topic in any::<String>()) {
        let selector = Selector::parse(&source);
        let _ = selector.matches(&topic);
        prop_assert!(selector.matches(&source));
        prop_assert_eq!(selector.kind() == SelectorKind::Any, source == "*");
    }

    /// The same with text made of the characters templates are made of, so
    /// that most selectors are templates or nearly so.
    #[test]
    fn never_panics_on_template_like_text(
        source in "[{}+#./;?&=,!@|*:0-9a-z%]{0,24}",
        topic in "[{}+#./;?&=,a-z%0-9A-F]{0,40}",
    ) {
        let selector = Selector::parse(&source);
        if selector.matches(&topic) {
            prop_assert!(topic.starts_with(selector.literal_prefix()), "{:?}: {:?}", source, topic);
        }
        prop_assert!(source.starts_with(selector.literal_prefix()));
        prop_assert!(selector.matches(&source));
    }
}

/// Runs `selector` against `topic` and fails if it takes longer than
/// `limit` (a backtracking matcher would take years on these).
fn timed(selector: &str, topic: &str, expected: bool, limit: Duration) {
    let selector = Selector::parse(selector);
    assert_eq!(selector.kind(), SelectorKind::Template);
    let start = Instant::now();
    assert_eq!(selector.matches(topic), expected);
    let elapsed = start.elapsed();
    assert!(elapsed < limit, "took {elapsed:?}");
}

#[test]
fn adjacent_expressions_and_long_topics_take_bounded_time() {
    let limit = Duration::from_secs(5);
    // 64 reserved expressions, each followed by a `/` they may also hold:
    // every `/` of the topic could end any of them.
    let template = "{+a}/".repeat(64);
    let topic = "x/".repeat(20_000);
    timed(&template, &topic, true, limit);
    timed(&template, &format!("{topic} "), false, limit);
    // 200 adjacent expressions of every operator, against 50,000 bytes.
    let template = "{a}{+b}{#c}{.d}{/e}{;f}{?g}{&h}".repeat(25);
    let topic = "/a".repeat(25_000);
    timed(&template, &topic, true, limit);
    timed(&template, &format!("{topic} "), false, limit);
    timed(&template, &"a".repeat(50_000), true, limit);
    // Literals that overlap themselves, after expressions that hold them.
    let template = format!("{{+a}}{}{{+b}}", "ab".repeat(300));
    let topic = "ab".repeat(25_000);
    timed(&template, &topic, true, limit);
    timed(&template, &format!("{topic}%"), false, limit);
}

/// Templates too large for the matcher's stack space (long literals, many
/// expressions) match the same way.
#[test]
fn large_templates() {
    let literal = "/x".repeat(400);
    let template = format!("{{+a}}{literal}{{+b}}{literal}{{c}}");
    let selector = Selector::parse(&template);
    assert!(selector.matches(&format!("p{literal}/q{literal}r")));
    assert!(selector.matches(&format!("{literal}{literal}")));
    assert!(!selector.matches(&format!("p{literal}/q{literal}r/")));
    assert!(!selector.matches(&format!("p{literal}")));

    let template = "{+a}/".repeat(100);
    let selector = Selector::parse(&template);
    assert!(selector.matches(&"/".repeat(100)));
    assert!(selector.matches(&"a/b/".repeat(50)));
    assert!(!selector.matches(&"/".repeat(99)));
}

/// The random cases above are worth something only if they hit both
/// outcomes, and the cases where the widening matters: count them on a
/// fixed sample.
#[test]
fn random_cases_cover_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = (template(), values(), edits());
    let (mut matched, mut refused, mut widened_only, mut general) = (0, 0, 0, 0);
    for _ in 0..3000 {
        let (parts, values, edits) = strategy.new_tree(&mut runner).unwrap().current();
        let source = render(&parts);
        let topic = apply_edits(&expand(&parts, &values), &edits);
        if Selector::parse(&source).matches(&topic) {
            matched += 1;
        } else {
            refused += 1;
        }
        if mercure_matches(&source, &parts, &topic, true)
            != mercure_matches(&source, &parts, &topic, false)
        {
            widened_only += 1;
        }
        // Literals between expressions that may hold the literal's first
        // byte send the topic to the general matcher.
        if parts.windows(3).any(|w| {
            matches!(
                w,
                [Part::Expression(_), Part::Literal(_), Part::Expression(_)]
            )
        }) {
            general += 1;
        }
    }
    assert!(
        matched > 600 && refused > 600,
        "{matched} matched, {refused} refused"
    );
    assert!(widened_only > 0, "no case where the widening matters");
    assert!(general > 300, "{general} templates with inner literals");
}
