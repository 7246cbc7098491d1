//! The selector type: its source text and what it compiled to.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::parse::parse;
use crate::template::Template;

/// What kind of selector a source text is, which tells a hub how to index
/// it: `Exact` selectors can be looked up by topic in a map; only `Any` and
/// `Template` ones need evaluating per topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SelectorKind {
    /// `*`: every topic.
    Any,
    /// A topic compared as is: the source is not a URI template, or one
    /// without any expression.
    Exact,
    /// A URI template with at least one expression (it also matches its
    /// own source text).
    Template,
}

/// A Mercure topic selector: `*`, an exact topic, or an RFC 6570 URI
/// template. Equality, hashing and [`Display`](fmt::Display) go by the
/// source text alone. Cloning is cheap: the compiled form is shared.
#[derive(Clone)]
pub struct Selector(Arc<Inner>);

/// The shared part of a [`Selector`].
struct Inner {
    /// The text the selector was parsed from.
    source: Box<str>,
    /// What the text compiled to.
    compiled: Compiled,
}

/// The compiled form of a selector.
enum Compiled {
    /// `*`.
    Any,
    /// Not a template (or one without expressions): equality only.
    Exact,
    /// A template with expressions.
    Template(Template),
}

impl Selector {
    /// Reads a selector. Never fails: a text that is not a valid URI
    /// template (by the rules of the crate documentation) is an exact
    /// selector.
    pub fn parse(source: &str) -> Self {
        Self::from_boxed(source.into())
    }

    fn from_boxed(source: Box<str>) -> Self {
        let compiled = if &*source == "*" {
            Compiled::Any
        } else if !source.contains('{') {
            // The common exact topic: no parsing needed.
            Compiled::Exact
        } else {
            parse(&source)
                .and_then(|parts| Template::compile(&source, &parts))
                .map_or(Compiled::Exact, Compiled::Template)
        };
        Self(Arc::new(Inner { source, compiled }))
    }

    /// The source text.
    pub fn as_str(&self) -> &str {
        &self.0.source
    }

    /// The kind of selector.
    pub fn kind(&self) -> SelectorKind {
        match self.0.compiled {
            Compiled::Any => SelectorKind::Any,
            Compiled::Exact => SelectorKind::Exact,
            Compiled::Template(_) => SelectorKind::Template,
        }
    }

    /// A text every topic this selector matches starts with: empty for `*`,
    /// the whole source for an exact selector, the literal text before the
    /// first expression for a template. A hub that keeps topics sorted
    /// finds every candidate for a template in the range of this prefix,
    /// without looking at the others.
    pub fn literal_prefix(&self) -> &str {
        let inner = &*self.0;
        match &inner.compiled {
            Compiled::Any => "",
            Compiled::Exact => &inner.source,
            Compiled::Template(template) => template.head(&inner.source),
        }
    }

    /// Whether the selector matches `topic`: always for `*`; when `topic`
    /// is the source text; and, for a template, when `topic` is one of its
    /// expansions. Runs in time linear in the topic's length for common
    /// templates, and in `O(topic length × template length)` at worst;
    /// allocates nothing unless the template is unusually large.
    pub fn matches(&self, topic: &str) -> bool {
        let inner = &*self.0;
        match &inner.compiled {
            Compiled::Any => true,
            Compiled::Exact => *inner.source == *topic,
            Compiled::Template(template) => {
                *inner.source == *topic || template.matches(&inner.source, topic)
            }
        }
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.0.source == other.0.source
    }
}

impl Eq for Selector {}

impl Hash for Selector {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.source.hash(state);
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("source", &&*self.0.source)
            .field("kind", &self.kind())
            .finish()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.source)
    }
}

impl From<&str> for Selector {
    fn from(source: &str) -> Self {
        Self::parse(source)
    }
}

impl From<String> for Selector {
    fn from(source: String) -> Self {
        Self::from_boxed(source.into_boxed_str())
    }
}

impl AsRef<str> for Selector {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
