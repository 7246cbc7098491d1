//! The on-disk form of one event: a small versioned binary record, the
//! value stored under the event's sequence number.
//!
//! Hand-written rather than serde: it is on the hot path of every append
//! and every replayed event, it must stay readable by later versions
//! forever (hence the version byte), and it drops what can be rebuilt:
//!
//! ```text
//! version   u8       RECORD_V1
//! flags     u8       PRIVATE | HUB_ID | FRAME_ID_LINE | RETAIN | CLEAR
//! time_ms   varint
//! topics    varint count, then per topic: varint length, UTF-8 bytes
//! id        varint length, UTF-8 bytes   (absent with HUB_ID)
//! frame     the rest                     (without its `id: …` line with FRAME_ID_LINE)
//! ```
//!
//! `HUB_ID`: the id is the hub's own `urn:tidings:<seq>`, rebuilt from the
//! key. `FRAME_ID_LINE`: the frame started with exactly `id: <id>\n`, the
//! encoder's first line, rebuilt on reading. `RETAIN`: published with
//! `retain` (with `CLEAR` too when its data was empty: it cleared the
//! retained updates of its topics). Varints are unsigned LEB128.
//!
//! `RETAIN` and `CLEAR` came with history format 2; format-1 files have no
//! such records, and a build that reads only format 1 refuses format-2
//! files by their format number before it reads a record.

use std::sync::Arc;

use bytes::{BufMut as _, Bytes, BytesMut};
use tidings_core::{Event, EventId, EventIdKind, Retain};

/// The only record version so far.
pub(crate) const RECORD_V1: u8 = 1;

const PRIVATE: u8 = 1;
const HUB_ID: u8 = 1 << 1;
const FRAME_ID_LINE: u8 = 1 << 2;
const RETAIN: u8 = 1 << 3;
const CLEAR: u8 = 1 << 4;
const KNOWN_FLAGS: u8 = PRIVATE | HUB_ID | FRAME_ID_LINE | RETAIN | CLEAR;

/// A record that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The first byte is not a version this build reads.
    #[error("unknown record version {0}")]
    Version(u8),
    /// Flags this build does not know.
    #[error("unknown record flags {0:#04x}")]
    Flags(u8),
    /// The record ends in the middle of a field.
    #[error("record truncated")]
    Truncated,
    /// A varint longer than 64 bits.
    #[error("record has an overlong number")]
    Overlong,
    /// A topic or the id is not UTF-8.
    #[error("record has a text field that is not UTF-8")]
    Utf8,
}

/// Appends the record of `event` to `out`.
pub(crate) fn encode(event: &Event, out: &mut Vec<u8>) {
    let hub_id = EventIdKind::of(event) == EventIdKind::Hub;
    let frame_rest = strip_id_line(&event.frame, &event.id);
    let mut flags = 0;
    if event.private {
        flags |= PRIVATE;
    }
    if hub_id {
        flags |= HUB_ID;
    }
    if frame_rest.is_some() {
        flags |= FRAME_ID_LINE;
    }
    match event.retain {
        Retain::No => {}
        Retain::Keep => flags |= RETAIN,
        Retain::Clear => flags |= RETAIN | CLEAR,
    }
    out.push(RECORD_V1);
    out.push(flags);
    put_varint(out, event.time_ms);
    put_varint(out, event.topics.len() as u64);
    for topic in &event.topics {
        put_bytes(out, topic.as_bytes());
    }
    if !hub_id {
        put_bytes(out, event.id.as_bytes());
    }
    out.extend_from_slice(frame_rest.unwrap_or(&event.frame));
}

/// The rest of `frame` after its first line when that line is exactly
/// `id: <id>\n`.
fn strip_id_line<'a>(frame: &'a [u8], id: &str) -> Option<&'a [u8]> {
    let rest = frame.strip_prefix(b"id: ")?;
    let rest = rest.strip_prefix(id.as_bytes())?;
    rest.strip_prefix(b"\n")
}

/// A record parsed in place, without allocating: enough for retention to
/// weigh an event, and for [`Parsed::to_event`] to rebuild it.
#[derive(Debug, Clone)]
pub(crate) struct Parsed<'a> {
    /// The record's flags.
    flags: u8,
    /// When the hub accepted the event.
    pub(crate) time_ms: u64,
    /// How many topics follow in `topics`.
    topic_count: u64,
    /// The encoded topics (lengths and bytes), checked.
    topics: &'a [u8],
    /// The publisher's id; `None` for a hub-made one.
    pub(crate) publisher_id: Option<&'a str>,
    /// The stored part of the frame.
    frame_rest: &'a [u8],
}

impl<'a> Parsed<'a> {
    /// Parses and checks `record`.
    pub(crate) fn new(record: &'a [u8]) -> Result<Self, RecordError> {
        let mut reader = Reader(record);
        let version = reader.byte()?;
        if version != RECORD_V1 {
            return Err(RecordError::Version(version));
        }
        let flags = reader.byte()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(RecordError::Flags(flags));
        }
        let time_ms = reader.varint()?;
        let topic_count = reader.varint()?;
        let topics_start = reader.0;
        for _ in 0..topic_count {
            reader.text()?;
        }
        let topics_len = topics_start.len() - reader.0.len();
        let topics = topics_start
            .get(..topics_len)
            .ok_or(RecordError::Truncated)?;
        let publisher_id = if flags & HUB_ID == 0 {
            Some(reader.text()?)
        } else {
            None
        };
        Ok(Self {
            flags,
            time_ms,
            topic_count,
            topics,
            publisher_id,
            frame_rest: reader.0,
        })
    }

    /// The length of the event's whole frame: what retention by bytes
    /// counts.
    pub(crate) fn frame_len(&self, seq: u64) -> u64 {
        let rest = self.frame_rest.len() as u64;
        if self.flags & FRAME_ID_LINE == 0 {
            return rest;
        }
        let id_len = match self.publisher_id {
            Some(id) => id.len(),
            None => EventId::PREFIX.len() + decimal_digits(seq),
        };
        // `id: ` + id + `\n`.
        rest + 4 + id_len as u64 + 1
    }

    /// The event, rebuilt.
    pub(crate) fn to_event(&self, seq: u64) -> Result<Arc<Event>, RecordError> {
        let id: Box<str> = match self.publisher_id {
            Some(id) => id.into(),
            None => EventId::format(seq).into_boxed_str(),
        };
        let mut topics = Vec::with_capacity(usize::try_from(self.topic_count).unwrap_or(0));
        let mut reader = Reader(self.topics);
        for _ in 0..self.topic_count {
            topics.push(Box::<str>::from(reader.text()?));
        }
        let frame = if self.flags & FRAME_ID_LINE == 0 {
            Bytes::copy_from_slice(self.frame_rest)
        } else {
            let mut frame = BytesMut::with_capacity(id.len() + 5 + self.frame_rest.len());
            frame.put_slice(b"id: ");
            frame.put_slice(id.as_bytes());
            frame.put_u8(b'\n');
            frame.put_slice(self.frame_rest);
            frame.freeze()
        };
        Ok(Arc::new(Event {
            seq,
            id,
            topics: topics.into_boxed_slice(),
            private: self.flags & PRIVATE != 0,
            retain: match (self.flags & RETAIN != 0, self.flags & CLEAR != 0) {
                (false, _) => Retain::No,
                (true, false) => Retain::Keep,
                (true, true) => Retain::Clear,
            },
            time_ms: self.time_ms,
            frame,
        }))
    }
}

fn decimal_digits(mut n: u64) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The unread rest of a record.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, RecordError> {
        let (&first, rest) = self.0.split_first().ok_or(RecordError::Truncated)?;
        self.0 = rest;
        Ok(first)
    }

    fn varint(&mut self) -> Result<u64, RecordError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(RecordError::Overlong);
            }
            n |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(RecordError::Overlong)
    }

    fn text(&mut self) -> Result<&'a str, RecordError> {
        let len = usize::try_from(self.varint()?).map_err(|_| RecordError::Truncated)?;
        if len > self.0.len() {
            return Err(RecordError::Truncated);
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(text).map_err(|_| RecordError::Utf8)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use tidings_core::Update;

    use super::*;

    fn event(seq: u64, update: &Update) -> Event {
        Event::encode(seq, update, 1_700_000_000_123).unwrap()
    }

    fn round_trip(event: &Event) -> Vec<u8> {
        let mut record = Vec::new();
        encode(event, &mut record);
        let parsed = Parsed::new(&record).unwrap();
        assert_eq!(parsed.frame_len(event.seq), event.frame.len() as u64);
        let back = parsed.to_event(event.seq).unwrap();
        assert_eq!(&*back, event);
        record
    }

    #[test]
    fn hub_ids_and_their_id_line_are_not_stored() {
        let update = Update {
            topics: vec!["https://example.com/books/1".into()],
            data: "x".repeat(100),
            ..Update::default()
        };
        let e = event(1_763_000_000_000_000, &update);
        let record = round_trip(&e);
        assert!(!record.windows(4).any(|w| w == b"urn:"), "{record:?}");
        // version, flags, time, count, topic, frame without its id line
        assert_eq!(
            record.len(),
            2 + 6 + 1 + 1 + 27 + (e.frame.len() - "id: urn:tidings:1763000000000000\n".len())
        );
    }

    #[test]
    fn publisher_ids_types_retry_private_and_many_topics() {
        let update = Update {
            topics: vec!["a".into(), "b/é".into(), "c".into()],
            data: "line 1\nline 2\r\nline 3".into(),
            event_type: Some("kind".into()),
            id: Some("my-id-7".into()),
            retry: Some(1500),
            private: true,
            retain: false,
        };
        round_trip(&event(42, &update));
        let kept = Update {
            retain: true,
            ..update.clone()
        };
        round_trip(&event(44, &kept));
        let cleared = Update {
            data: String::new(),
            retain: true,
            ..update.clone()
        };
        assert_eq!(event(45, &cleared).retain, Retain::Clear);
        round_trip(&event(45, &cleared));
        let update = Update {
            id: Some(String::new()),
            ..update
        };
        round_trip(&event(43, &update));
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let update = Update {
            topics: vec!["t".into()],
            data: "payload".into(),
            id: Some("pid".into()),
            ..Update::default()
        };
        let e = event(9, &update);
        let mut record = Vec::new();
        encode(&e, &mut record);
        let header_len = record.len() - (e.frame.len() - "id: pid\n".len());
        for len in 0..record.len() {
            let cut = &record[..len];
            // Every prefix either fails to parse or, if it happens to cut
            // only frame bytes, parses to a shorter frame: never panics.
            if let Ok(parsed) = Parsed::new(cut) {
                assert!(len >= header_len);
                parsed.to_event(9).unwrap();
            }
        }
        let mut bad = record.clone();
        bad[0] = 2;
        assert_eq!(Parsed::new(&bad).unwrap_err(), RecordError::Version(2));
        let mut bad = record.clone();
        bad[1] = 0x80;
        assert_eq!(Parsed::new(&bad).unwrap_err(), RecordError::Flags(0x80));
        bad[1] = 0x20;
        assert_eq!(Parsed::new(&bad).unwrap_err(), RecordError::Flags(0x20));
        bad[1] = 0x80;
        assert_eq!(Parsed::new(&bad).unwrap_err(), RecordError::Flags(0x80));
        let mut bad = vec![RECORD_V1, 0];
        bad.extend_from_slice(&[0xff; 11]);
        assert_eq!(Parsed::new(&bad).unwrap_err(), RecordError::Overlong);
        let bad = [RECORD_V1, 0, 0, 1, 2, 0xc3, 0x28];
        assert_eq!(Parsed::new(&bad).unwrap_err(), RecordError::Utf8);
    }

    #[test]
    fn varints() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            let mut reader = Reader(&out);
            assert_eq!(reader.varint().unwrap(), n);
            assert!(reader.0.is_empty());
        }
    }
}
