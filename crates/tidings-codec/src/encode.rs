//! Server side: one event to the bytes every subscriber shares.
//!
//! Hand-written rather than taken from a web framework because the common
//! encoders get the edge cases wrong (CRLF in data turning into an extra
//! blank line, a lone CR injecting fields, panics on CR/LF in ids) and
//! because this runs once per published event on the hub's hot path.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use memchr::{memchr, memchr2};

use crate::lines::Lines;

/// One event to encode: what a publisher gave, borrowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `id` field; `None` writes no `id:` line.
    pub id: Option<&'a str>,
    /// The `event` field (the event type); `None` writes no `event:` line,
    /// which clients read as `message`.
    pub event_type: Option<&'a str>,
    /// The data. Any line break in it (LF, CRLF or a lone CR) starts a new
    /// `data:` line, so a client gets the same text back with every line
    /// break as LF. Empty data still makes an event.
    pub data: &'a str,
    /// The `retry` field: the reconnection time in milliseconds.
    pub retry: Option<u64>,
}

impl<'a> Event<'a> {
    /// An event of type `message` carrying `data`.
    pub fn new(data: &'a str) -> Self {
        Self {
            data,
            ..Self::default()
        }
    }

    /// Sets the `id` field.
    #[must_use]
    pub fn id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the `event` field.
    #[must_use]
    pub fn event_type(mut self, event_type: &'a str) -> Self {
        self.event_type = Some(event_type);
        self
    }

    /// Sets the `retry` field.
    #[must_use]
    pub fn retry(mut self, ms: u64) -> Self {
        self.retry = Some(ms);
        self
    }

    /// Checks that the event can be written without changing its meaning.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if let Some(id) = self.id {
            if memchr2(b'\r', b'\n', id.as_bytes()).is_some() {
                return Err(EncodeError::IdLineBreak);
            }
            if memchr(0, id.as_bytes()).is_some() {
                return Err(EncodeError::IdNul);
            }
        }
        if let Some(ty) = self.event_type
            && memchr2(b'\r', b'\n', ty.as_bytes()).is_some()
        {
            return Err(EncodeError::TypeLineBreak);
        }
        Ok(())
    }

    /// An upper bound of the encoded size when the data has no line break,
    /// and a good first guess otherwise.
    fn size_hint(&self) -> usize {
        const ID: usize = "id: \n".len();
        const TYPE: usize = "event: \n".len();
        const RETRY: usize = "retry: 18446744073709551615\n".len();
        const DATA: usize = "data: \n\n".len();
        self.id.map_or(0, |id| ID + id.len())
            + self.event_type.map_or(0, |ty| TYPE + ty.len())
            + self.retry.map_or(0, |_| RETRY)
            + DATA
            + self.data.len()
    }
}

/// Why an event cannot be encoded. Coming from a publisher, each of these is
/// an attempt to inject fields into other subscribers' streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The id contains CR or LF.
    IdLineBreak,
    /// The id contains NUL, which clients are required to ignore.
    IdNul,
    /// The event type contains CR or LF.
    TypeLineBreak,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IdLineBreak => "the id must not contain CR or LF",
            Self::IdNul => "the id must not contain NUL",
            Self::TypeLineBreak => "the event type must not contain CR or LF",
        })
    }
}

impl std::error::Error for EncodeError {}

/// Encodes one event, ending with the blank line that dispatches it.
pub fn encode(event: &Event<'_>) -> Result<Bytes, EncodeError> {
    let mut buf = BytesMut::with_capacity(event.size_hint());
    encode_into(event, &mut buf)?;
    Ok(buf.freeze())
}

/// Appends one encoded event to `buf`; on error `buf` is left unchanged.
pub fn encode_into(event: &Event<'_>, buf: &mut BytesMut) -> Result<(), EncodeError> {
    event.validate()?;
    buf.reserve(event.size_hint());
    if let Some(id) = event.id {
        put_field(buf, b"id", id.as_bytes());
    }
    if let Some(ty) = event.event_type {
        put_field(buf, b"event", ty.as_bytes());
    }
    if let Some(ms) = event.retry {
        put_retry(buf, ms);
    }
    for line in Lines::new(event.data.as_bytes()) {
        put_field(buf, b"data", line);
    }
    buf.put_u8(b'\n');
    Ok(())
}

/// A comment: clients ignore it, proxies see traffic. Each line of `text`
/// becomes one comment line, so no text can inject a field.
pub fn comment(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(text.len() + 3);
    for line in Lines::new(text.as_bytes()) {
        put_field(&mut buf, b"", line);
    }
    buf.freeze()
}

/// A block that only sets the client's reconnection time.
pub fn retry(ms: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(32);
    put_retry(&mut buf, ms);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// A block that only sets the client's last event id, `id: ID` and the
/// blank line: by the WHATWG rules the client's last event id becomes `id`
/// and, the data being empty, nothing is dispatched. Refuses ids that
/// would inject fields, as [`encode`] does.
pub fn last_event_id(id: &str) -> Result<Bytes, EncodeError> {
    let check = Event {
        id: Some(id),
        ..Event::default()
    };
    check.validate()?;
    let mut buf = BytesMut::with_capacity(id.len() + 6);
    put_field(&mut buf, b"id", id.as_bytes());
    buf.put_u8(b'\n');
    Ok(buf.freeze())
}

/// Writes `name: value\n`, or `name:\n` for an empty value (a comment when
/// `name` is empty). The space keeps a value that starts with a space
/// intact, since a decoder removes exactly one.
fn put_field(buf: &mut BytesMut, name: &[u8], value: &[u8]) {
    buf.put_slice(name);
    if value.is_empty() {
        buf.put_slice(b":\n");
    } else {
        buf.put_slice(b": ");
        buf.put_slice(value);
        buf.put_u8(b'\n');
    }
}

fn put_retry(buf: &mut BytesMut, ms: u64) {
    buf.put_slice(b"retry: ");
    buf.put_slice(itoa::Buffer::new().format(ms).as_bytes());
    buf.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(event: Event<'_>) -> String {
        String::from_utf8(encode(&event).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn last_event_id_blocks_set_the_id_and_dispatch_nothing() {
        let block = last_event_id("urn:x:7").unwrap();
        assert_eq!(&block[..], b"id: urn:x:7\n\n");
        let mut decoder = crate::Decoder::new();
        let mut items = Vec::new();
        let mut stream = encode(&Event::new("a").id("1")).unwrap().to_vec();
        stream.extend_from_slice(&block);
        decoder.decode_to_vec(&stream, &mut items).unwrap();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(decoder.last_event_id(), "urn:x:7");
        assert_eq!(last_event_id("a\nb"), Err(EncodeError::IdLineBreak));
        assert_eq!(last_event_id("a\0b"), Err(EncodeError::IdNul));
    }

    #[test]
    fn plain_event() {
        assert_eq!(enc(Event::new("hello")), "data: hello\n\n");
    }

    #[test]
    fn all_fields_in_order() {
        let event = Event::new("x").id("7").event_type("price").retry(1500);
        assert_eq!(enc(event), "id: 7\nevent: price\nretry: 1500\ndata: x\n\n");
    }

    #[test]
    fn empty_data_still_makes_an_event() {
        assert_eq!(enc(Event::new("")), "data:\n\n");
    }

    #[test]
    fn every_line_break_becomes_a_data_line() {
        assert_eq!(
            enc(Event::new("a\nb\r\nc\rd\n")),
            "data: a\ndata: b\ndata: c\ndata: d\ndata:\n\n"
        );
    }

    #[test]
    fn leading_space_survives() {
        assert_eq!(enc(Event::new(" x")), "data:  x\n\n");
    }

    #[test]
    fn injection_is_refused() {
        assert_eq!(
            encode(&Event::new("x").id("1\nevent: evil")),
            Err(EncodeError::IdLineBreak)
        );
        assert_eq!(
            encode(&Event::new("x").id("1\r")),
            Err(EncodeError::IdLineBreak)
        );
        assert_eq!(encode(&Event::new("x").id("a\0")), Err(EncodeError::IdNul));
        assert_eq!(
            encode(&Event::new("x").event_type("a\rdata: evil")),
            Err(EncodeError::TypeLineBreak)
        );
    }

    #[test]
    fn refusal_leaves_the_buffer_alone() {
        let mut buf = BytesMut::from(&b"kept"[..]);
        assert!(encode_into(&Event::new("x").id("\n"), &mut buf).is_err());
        assert_eq!(&buf[..], b"kept");
    }

    #[test]
    fn comments_cannot_inject() {
        assert_eq!(&comment("")[..], b":\n");
        assert_eq!(&comment("hi")[..], b": hi\n");
        assert_eq!(&comment("a\ndata: x")[..], b": a\n: data: x\n");
    }

    #[test]
    fn retry_block() {
        assert_eq!(&retry(3000)[..], b"retry: 3000\n\n");
    }
}
