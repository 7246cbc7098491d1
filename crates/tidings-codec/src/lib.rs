//! The `text/event-stream` format, both ways, with no I/O.
//!
//! - [`encode`] turns one event into the bytes a server writes, once, as a
//!   [`bytes::Bytes`] that every subscriber can share. It refuses ids and
//!   types that would inject fields ([`EncodeError`]).
//! - [`Decoder`] is the incremental parser of the WHATWG HTML standard's
//!   "Parsing an event stream" and "Interpreting an event stream" sections:
//!   feed it bytes in any chunking and it yields [`Item`]s.
//!
//! **Invariant**: nothing in this crate does I/O, and no input makes it
//! panic. Memory use of the decoder is bounded by [`Limits`].

mod decode;
mod encode;
mod lines;

pub use decode::{DecodeError, Decoder, Item, Limits, MessageEvent};
pub use encode::{EncodeError, Event, comment, encode, encode_into, last_event_id, retry};
pub use lines::Lines;
