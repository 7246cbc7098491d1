//! An `EventSource` for async Rust: consume Server-Sent Events from any
//! server with the semantics of the WHATWG HTML standard, and publish to a
//! Mercure hub.
//!
//! - [`EventSource`] is a [`Stream`](futures_core::Stream) of [`Sse`] items.
//!   It sends `Accept: text/event-stream` and `Cache-Control: no-cache`,
//!   follows redirects, fails for good on any status but `200` or any
//!   content type but `text/event-stream` (204 included), reconnects after a
//!   network error or a clean end of stream once the reconnection time has
//!   passed (the server's `retry:` honoured, exponential backoff with jitter
//!   on repeated failures, see [`backoff`]), and sends `Last-Event-ID`
//!   whenever the last event id is not empty. Parsing is
//!   [`tidings_codec::Decoder`], exact to the standard in any chunking.
//! - Beyond a browser's `EventSource`: a read timeout that notices a dead
//!   stream, custom headers, any method with a body, an initial last event
//!   id, access to every response's status and headers, connection-state
//!   notifications, and restarting or closing from another task
//!   ([`Handle`]).
//! - [`Publisher`] posts an [`Update`] to a Mercure hub.
//!
//! # Why reqwest
//!
//! The HTTP client underneath is reqwest (rustls with the *ring* provider,
//! no native-tls) rather than hyper-util's client driven by hand: it already
//! does what an event source needs around the request (redirects with the
//! fetch rules for method and body, credentials dropped on cross-host
//! redirects, proxies from the environment, HTTP/2 through ALPN, connection
//! pooling) and hands the body over as a stream of `Bytes` without copying.
//! What EventSource needs and reqwest does not do its way (reconnection, a
//! read timeout that also covers the response head, the status and
//! content-type rules) is built on top, here.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use futures_util::StreamExt as _;
//! use tidings_client::{EventSource, Sse};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut events = EventSource::builder("http://127.0.0.1:8080/.well-known/mercure?topic=*")
//!     .header("Authorization", "Bearer eyJ…")
//!     .read_timeout(Duration::from_secs(45))
//!     .build()?;
//! while let Some(item) = events.next().await {
//!     match item? {
//!         Sse::Open(head) => println!("connected: {}", head.status),
//!         Sse::Event(event) => println!("{}: {}", event.event_type, event.data),
//!         Sse::Comment(_) => {}
//!         Sse::Reconnecting(r) => println!("reconnecting in {:?}: {:?}", r.delay, r.error),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `item?` ends the loop only on a permanent failure: transient trouble comes
//! as [`Sse::Reconnecting`], and the stream goes on.

pub mod backoff;
mod builder;
mod error;
mod event_source;
mod http;
mod publish;
mod response;

pub use backoff::Jitter;
pub use builder::{
    Builder, DEFAULT_BACKOFF_CEILING, DEFAULT_MAX_REDIRECTS, DEFAULT_RECONNECTION_TIME,
};
pub use error::{ConfigError, Error};
pub use event_source::{EventSource, Handle, ReadyState, Reconnect, Sse};
pub use http::http_client;
pub use publish::{PublishError, Publisher, Update};
pub use response::{ResponseHead, is_event_stream};
pub use tidings_codec::{DecodeError, Limits, MessageEvent};

/// The HTTP client underneath, for [`Builder::client`] and [`http_client`].
pub use reqwest;
/// The HTTP types that appear in this crate's API.
pub use reqwest::{Method, StatusCode, Url, header};
