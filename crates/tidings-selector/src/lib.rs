//! Mercure topic selectors: `*`, exact topics and RFC 6570 URI templates,
//! matched against topics the way the Mercure hub (0.x) does, without
//! allocating and in time linear in the topic for common templates.
//!
//! ```
//! use tidings_selector::{Selector, SelectorKind};
//!
//! let books = Selector::parse("https://example.com/books/{id}");
//! assert_eq!(books.kind(), SelectorKind::Template);
//! assert!(books.matches("https://example.com/books/1"));
//! assert!(!books.matches("https://example.com/books/1/reviews"));
//! assert!(books.matches("https://example.com/books/{id}"));
//! // Every topic it matches starts with this:
//! assert_eq!(books.literal_prefix(), "https://example.com/books/");
//! ```
//!
//! # Semantics
//!
//! - `*` matches every topic.
//! - Every selector matches the topic equal to its source text.
//! - A source that contains `{` and is a URI template with at least one
//!   expression (grammar below) is a template: it also matches every topic
//!   that is one of its expansions. Any other source is an exact selector.
//!
//! The Mercure hub decides this with the regular expression that
//! `github.com/yosida95/uritemplate/v3` derives from a template
//! (`Template.Regexp`). This crate matches the same language, with one
//! widening (below), by its own means: a compiled template is a list of
//! literal pieces and expression rules a few hundred bytes long, matched in
//! one pass when literals anchor the expressions, and otherwise by a
//! simulation of the template's automaton that never backtracks (at worst
//! `O(topic length × template length)` time, for any input).
//!
//! ## Expansions
//!
//! Literal text matches itself byte for byte (a pct-encoded triplet in a
//! literal is compared as written). An expression expands either to
//! nothing (all its variables undefined) or to its operator's leading
//! character followed by values joined by its separator:
//!
//! | expression | leading | separator | values are made of |
//! |---|---|---|---|
//! | `{x}` | | `,` | unreserved, `,` |
//! | `{+x}` | | `,` | unreserved, reserved |
//! | `{#x}` | `#` | `,` | unreserved, reserved |
//! | `{.x}` | `.` | `.` | unreserved, `,` |
//! | `{/x}` | `/` | `/` | unreserved, `,` |
//! | `{;x}` | `;` | `;` | unreserved, `,`, `=` |
//! | `{?x}` | `?` | `&` | unreserved, `,`, `=` |
//! | `{&x}` | `&` | `&` | unreserved, `,`, `=` |
//!
//! - "unreserved" is `A-Z a-z 0-9 - . _ ~`; "reserved" is
//!   `: / ? # [ ] @ ! $ & ' ( ) * + , ; =` (RFC 3986). Values may also hold
//!   pct-encoded triplets (`%` and two hexadecimal digits of either case),
//!   each counting as one character; a `%` that starts no triplet matches
//!   nothing. Other characters (spaces, non-ASCII text) only match where
//!   the template has them literally.
//! - An expression with an exploded variable (`{x*}`, `{/x*}`, …) may also
//!   hold `=` (exploded associative arrays expand to `key=value`) and any
//!   number of separators. Without one, it holds at most one separator
//!   fewer than it has variables: `{/a,b}` matches `/1/2` but not `/1/2/3`.
//!   (This only restricts `/`, `;` and `&`: the other separators are
//!   themselves allowed inside values.)
//! - A lone `{x}` never matches a `/`, so `…/books/{id}` does not match
//!   `…/books/1/reviews`; `{+x}` and `{#x}` do (`{+path}/here` matches
//!   `/foo/bar/here`).
//!
//! ## Where this differs from RFC 6570
//!
//! Every RFC 6570 expansion of a template matches it, but, as in Mercure,
//! some texts that are no expansion match too:
//! - Variable names of `{;x}`, `{?x}` and `{&x}` are not checked: `{?x,y}`
//!   matches `?y=1&x=2` and `?page=3`.
//! - Prefix modifiers do not limit the length: `{x:3}` matches `abcdef`
//!   (RFC 6570 leaves prefixes of list values undefined, and such a value
//!   can expand to that).
//!
//! And the template grammar is the Go library's: variable names may be
//! empty (`{}`, `{x,}`, `{:3}` are templates) and may not hold `.` or
//! pct-encoded triplets (`{a.b}` and `{%41}` are exact selectors); a prefix
//! is 1 to 9999 without leading zeros.
//!
//! ## Where this differs from the Go library
//!
//! - `Template.Regexp` lets `=` into the part of `{x,y*}`, `{.x,y*}` and
//!   `{/x,y*}` before the first separator only when the first variable is
//!   exploded, so it misses the expansions where the first variable is
//!   undefined and a later exploded one is an associative array (`{/a,b*}`
//!   with `b = {k: "v"}` expands to `/k=v`). Here `=` may appear anywhere in
//!   an expression that has an exploded variable.
//! - Sources on which the library's parser panics (`{x:`, `{x:5`) are exact
//!   selectors.
//! - `Template.Match`, which Mercure does not use, checks names and prefix
//!   lengths but misses some expansions (`?{undef,y}` against `?768`): this
//!   crate follows `Template.Regexp`, as Mercure does.

mod chars;
mod expression;
mod nfa;
mod parse;
mod selector;
mod template;

pub use selector::{Selector, SelectorKind};

/// Whether any of `selectors` matches any of `topics`: the check of a
/// subscription (its selectors against an update's topics) and of a
/// token's `mercure.subscribe` claim.
pub fn matches_any(selectors: &[Selector], topics: &[impl AsRef<str>]) -> bool {
    selectors
        .iter()
        .any(|selector| topics.iter().any(|topic| selector.matches(topic.as_ref())))
}
