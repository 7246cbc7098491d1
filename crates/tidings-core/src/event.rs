//! Updates as publishers send them, and events as the hub keeps them.

use std::fmt;

use bytes::Bytes;
use tidings_codec::EncodeError;

/// An update as a publisher sent it, before it has a place in the order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// The topics: the first is canonical, the others are alternates. A
    /// subscriber matching any of them receives the update.
    pub topics: Vec<String>,
    /// The data, any text; line breaks are kept (as LF) for the subscriber.
    pub data: String,
    /// The SSE event type; `None` is `message`.
    pub event_type: Option<String>,
    /// The publisher's own id for the update; the hub makes one when `None`.
    pub id: Option<String>,
    /// A reconnection time to send with the event, in milliseconds.
    pub retry: Option<u64>,
    /// Only subscribers authorized for one of the topics receive it.
    pub private: bool,
    /// The hub keeps it as the retained update of each of its topics (what
    /// a new subscriber gets first); with empty data it clears theirs.
    pub retain: bool,
}

/// What an event does to the retained updates of its topics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Retain {
    /// Nothing: an ordinary event.
    #[default]
    No,
    /// It becomes the retained update of each of its topics.
    Keep,
    /// It clears the retained update of each of its topics (an update with
    /// `retain` and empty data); it is delivered as an ordinary event.
    Clear,
}

impl Retain {
    /// What an update with these fields does.
    pub fn of(update: &Update) -> Self {
        match (update.retain, update.data.is_empty()) {
            (false, _) => Self::No,
            (true, false) => Self::Keep,
            (true, true) => Self::Clear,
        }
    }
}

/// Why an update was refused before it got a place in the order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// No topic was given.
    #[error("an update needs at least one topic")]
    NoTopic,
    /// A topic was the empty string.
    #[error("a topic must not be empty")]
    EmptyTopic,
    /// The id or type would inject fields into the event stream.
    #[error("{0}")]
    Field(#[from] EncodeError),
    /// The id starts with `#` (reserved by the Mercure protocol) or with the
    /// prefix of the hub's own ids.
    #[error("an update id must not start with '#' or '{}'", EventId::PREFIX)]
    ReservedId,
}

impl Update {
    /// Checks everything that does not need the history.
    pub fn validate(&self) -> Result<(), UpdateError> {
        if self.topics.is_empty() {
            return Err(UpdateError::NoTopic);
        }
        if self.topics.iter().any(String::is_empty) {
            return Err(UpdateError::EmptyTopic);
        }
        if let Some(id) = &self.id
            && (id.starts_with('#') || id.starts_with(EventId::PREFIX))
        {
            return Err(UpdateError::ReservedId);
        }
        self.codec_event(self.id.as_deref()).validate()?;
        Ok(())
    }

    fn codec_event<'a>(&'a self, id: Option<&'a str>) -> tidings_codec::Event<'a> {
        tidings_codec::Event {
            id,
            event_type: self.event_type.as_deref(),
            data: &self.data,
            retry: self.retry,
        }
    }
}

/// The hub's own event ids: `urn:tidings:<seq>`, a URN as the Mercure
/// protocol asks, from which the position in the order can be read back
/// without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId;

impl EventId {
    /// What every hub-made id starts with.
    pub const PREFIX: &'static str = "urn:tidings:";

    /// The hub-made id of sequence number `seq`.
    pub fn format(seq: u64) -> String {
        let mut id = String::with_capacity(Self::PREFIX.len() + 20);
        id.push_str(Self::PREFIX);
        id.push_str(itoa::Buffer::new().format(seq));
        id
    }

    /// The sequence number of a hub-made id.
    pub fn parse(id: &str) -> Option<u64> {
        let digits = id.strip_prefix(Self::PREFIX)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// An event with its place in the total order, encoded once and shared.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    /// Its position in the hub's total order; ids may be anything, this is
    /// what orders, resumes and deduplicates.
    pub seq: u64,
    /// The SSE id: the publisher's, or [`EventId::format`] of `seq`.
    pub id: Box<str>,
    /// The topics, canonical first; what subscriptions match against.
    pub topics: Box<[Box<str>]>,
    /// Only authorized subscribers may see it.
    pub private: bool,
    /// What it does to the retained updates of its topics: a flag, so that
    /// ordinary events cost the retained-update bookkeeping one comparison.
    pub retain: Retain,
    /// When the hub accepted it, in milliseconds since the Unix epoch; what
    /// retention by age compares.
    pub time_ms: u64,
    /// The whole `text/event-stream` frame (id, event, retry, data lines and
    /// the blank line): written as is to every subscriber and kept in
    /// history.
    pub frame: Bytes,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("seq", &self.seq)
            .field("id", &self.id)
            .field("topics", &self.topics)
            .field("private", &self.private)
            .field("retain", &self.retain)
            .field("frame_len", &self.frame.len())
            .finish_non_exhaustive()
    }
}

impl Event {
    /// Gives `update` its place `seq` and encodes it.
    pub fn encode(seq: u64, update: &Update, time_ms: u64) -> Result<Self, UpdateError> {
        update.validate()?;
        let id = match &update.id {
            Some(id) => id.clone(),
            None => EventId::format(seq),
        };
        let frame = tidings_codec::encode(&update.codec_event(Some(&id)))?;
        Ok(Self {
            seq,
            id: id.into_boxed_str(),
            topics: update.topics.iter().map(|t| t.as_str().into()).collect(),
            private: update.private,
            retain: Retain::of(update),
            time_ms,
            frame,
        })
    }

    /// Whether `other` carries the same update (all but its place in the
    /// order): what makes a publish with a known id a harmless retry.
    pub fn same_update(&self, other: &Self) -> bool {
        self.id == other.id
            && self.topics == other.topics
            && self.private == other.private
            && self.retain == other.retain
            && self.frame == other.frame
    }

    /// Whether `topic` is one of the event's topics.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| &**t == topic)
    }
}

/// What a publish of one update came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's SSE id.
    pub id: String,
    /// Its place in the order.
    pub seq: u64,
    /// It was already in the history (a retry): nothing was delivered again.
    pub duplicate: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(data: &str) -> Update {
        Update {
            topics: vec!["t".into()],
            data: data.into(),
            ..Update::default()
        }
    }

    #[test]
    fn hub_ids_round_trip() {
        assert_eq!(EventId::format(42), "urn:tidings:42");
        assert_eq!(EventId::parse("urn:tidings:42"), Some(42));
        assert_eq!(EventId::parse("urn:tidings:"), None);
        assert_eq!(EventId::parse("urn:tidings:+4"), None);
        assert_eq!(EventId::parse("urn:tidings:99999999999999999999999"), None);
        assert_eq!(EventId::parse("42"), None);
    }

    #[test]
    fn encoded_with_hub_id() {
        let e = Event::encode(7, &update("x"), 0).unwrap();
        assert_eq!(&*e.id, "urn:tidings:7");
        assert_eq!(&e.frame[..], b"id: urn:tidings:7\ndata: x\n\n");
    }

    #[test]
    fn refusals() {
        let mut u = update("x");
        u.topics.clear();
        assert_eq!(u.validate(), Err(UpdateError::NoTopic));
        let mut u = update("x");
        u.topics.push(String::new());
        assert_eq!(u.validate(), Err(UpdateError::EmptyTopic));
        let mut u = update("x");
        u.id = Some("#1".into());
        assert_eq!(u.validate(), Err(UpdateError::ReservedId));
        u.id = Some("urn:tidings:1".into());
        assert_eq!(u.validate(), Err(UpdateError::ReservedId));
        u.id = Some("a\nb".into());
        assert_eq!(
            u.validate(),
            Err(UpdateError::Field(EncodeError::IdLineBreak))
        );
        let mut u = update("x");
        u.event_type = Some("a\rb".into());
        assert_eq!(
            u.validate(),
            Err(UpdateError::Field(EncodeError::TypeLineBreak))
        );
    }

    #[test]
    fn same_update_ignores_only_the_place() {
        let mut u = update("x");
        u.id = Some("mine".into());
        let a = Event::encode(1, &u, 10).unwrap();
        let b = Event::encode(2, &u, 20).unwrap();
        assert!(a.same_update(&b));
        u.data = "y".into();
        let c = Event::encode(3, &u, 20).unwrap();
        assert!(!a.same_update(&c));
        u.data = "x".into();
        u.retain = true;
        let d = Event::encode(4, &u, 20).unwrap();
        assert!(!a.same_update(&d), "retaining changes the update");
    }

    #[test]
    fn retain_keeps_or_clears() {
        let mut u = update("x");
        assert_eq!(Event::encode(1, &u, 0).unwrap().retain, Retain::No);
        u.retain = true;
        assert_eq!(Event::encode(1, &u, 0).unwrap().retain, Retain::Keep);
        u.data.clear();
        let clear = Event::encode(1, &u, 0).unwrap();
        assert_eq!(clear.retain, Retain::Clear);
        assert_eq!(
            &clear.frame[..],
            b"id: urn:tidings:1\ndata:\n\n",
            "a clear is delivered as an event with empty data"
        );
    }
}
