//! Everything an [`EventSource`] can be told before it starts.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use tidings_codec::{Decoder, Limits};

use crate::backoff::{Backoff, Jitter, MAX_WAIT};
use crate::event_source::Request;
use crate::{ConfigError, EventSource, http};

/// The default reconnection time: what Chromium and the npm `eventsource`
/// package use.
pub const DEFAULT_RECONNECTION_TIME: Duration = Duration::from_secs(3);

/// The default ceiling of the backoff after failed attempts.
pub const DEFAULT_BACKOFF_CEILING: Duration = Duration::from_secs(30);

/// The default number of redirects followed per attempt, as in reqwest.
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// Configures an [`EventSource`]. Made by [`EventSource::builder`].
///
/// Invalid input (URL, header) is remembered and reported by
/// [`Builder::build`], so calls chain.
#[derive(Debug)]
#[must_use]
pub struct Builder {
    /// The stream URL, as given.
    url: String,
    /// The request method.
    method: Method,
    /// The caller's headers.
    headers: HeaderMap,
    /// The request body, if any.
    body: Option<Bytes>,
    /// The last event id to start from.
    last_event_id: Option<String>,
    /// The reconnection time until the server sends `retry:`.
    reconnection_time: Duration,
    /// The longest backoff delay.
    backoff_ceiling: Duration,
    /// How backoff delays are randomised.
    jitter: Jitter,
    /// How long the response head or the next body bytes may take.
    read_timeout: Option<Duration>,
    /// Bounds on the decoder.
    limits: Limits,
    /// Redirects followed per attempt.
    max_redirects: usize,
    /// A client given by the caller, used as is.
    client: Option<reqwest::Client>,
    /// The first invalid input, reported by `build`.
    error: Option<ConfigError>,
}

impl Builder {
    /// A builder for `url`, with the defaults: `GET`, no extra headers, no
    /// body, reconnection time [`DEFAULT_RECONNECTION_TIME`], backoff up to
    /// [`DEFAULT_BACKOFF_CEILING`] with [`Jitter::Equal`], no read timeout,
    /// the codec's default [`Limits`], [`DEFAULT_MAX_REDIRECTS`].
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            method: Method::GET,
            headers: HeaderMap::new(),
            body: None,
            last_event_id: None,
            reconnection_time: DEFAULT_RECONNECTION_TIME,
            backoff_ceiling: DEFAULT_BACKOFF_CEILING,
            jitter: Jitter::default(),
            read_timeout: None,
            limits: Limits::default(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            client: None,
            error: None,
        }
    }

    /// Adds a request header, sent on every attempt. A name given more than
    /// once sends every value; a name the event source sets itself (`Accept`,
    /// `Cache-Control`) is replaced. A `Last-Event-ID` header here is taken
    /// as the initial last event id (see [`Builder::last_event_id`]).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            self.error
                .get_or_insert(ConfigError::HeaderName(name.to_owned()));
            return self;
        };
        let Ok(header_value) = HeaderValue::from_str(value) else {
            self.error
                .get_or_insert(ConfigError::HeaderValue(name.to_owned()));
            return self;
        };
        self.headers.append(header_name, header_value);
        self
    }

    /// Adds request headers, as [`Builder::header`] does for each.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        let mut last = None;
        for (name, value) in headers {
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                self.headers.append(name.clone(), value);
            }
        }
        self
    }

    /// Uses `method` instead of `GET` (`POST`, `REPORT`, …).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Sends `body` with every attempt. Without a `Content-Type` header,
    /// `text/plain;charset=UTF-8` is sent.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Starts from this last event id: the first request already sends it
    /// as `Last-Event-ID` (when not empty), and events without an `id` field
    /// report it, as if an earlier connection had set it.
    pub fn last_event_id(mut self, id: &str) -> Self {
        self.last_event_id = Some(id.to_owned());
        self
    }

    /// The reconnection time until the server sets one with `retry:`.
    pub fn reconnection_time(mut self, time: Duration) -> Self {
        self.reconnection_time = time;
        self
    }

    /// The longest delay backoff grows to after repeated failed attempts.
    /// A server's `retry:` longer than this is still honoured.
    pub fn backoff_ceiling(mut self, ceiling: Duration) -> Self {
        self.backoff_ceiling = ceiling;
        self
    }

    /// How backoff delays are randomised.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Treats a connection as dead when the response head, or the next body
    /// bytes, take longer than `timeout`: the event source reconnects. Any
    /// byte resets the clock, so a server's heartbeat comments keep a quiet
    /// stream alive. Off by default.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout.min(MAX_WAIT));
        self
    }

    /// Bounds on line and event size; a stream that breaks them is dropped
    /// and reconnected.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Redirects followed per attempt (0: none). Ignored with
    /// [`Builder::client`], whose own policy applies.
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Sends through this client (to share its connection pool, or for its
    /// TLS, proxy or redirect settings) instead of making one.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The event source. It connects when first polled.
    pub fn build(self) -> Result<EventSource, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let url = Url::parse(&self.url).map_err(|error| ConfigError::Url {
            url: self.url.clone(),
            error,
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Scheme(url.scheme().to_owned()));
        }
        let client = match self.client {
            Some(client) => client,
            None => http::client(self.max_redirects)?,
        };

        let mut caller = self.headers;
        let header_id = caller
            .remove("last-event-id")
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let last_event_id = self.last_event_id.or(header_id).unwrap_or_default();

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if self.body.is_some() && !caller.contains_key(CONTENT_TYPE) {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain;charset=UTF-8"),
            );
        }
        for name in caller.keys() {
            headers.remove(name);
        }
        headers.extend(caller);

        let request = Request {
            client,
            method: self.method,
            url,
            headers,
            body: self.body,
        };
        Ok(EventSource::from_parts(
            request,
            Decoder::resume(self.limits, &last_event_id),
            self.reconnection_time,
            Backoff::new(self.backoff_ceiling, self.jitter),
            self.read_timeout,
        ))
    }
}
