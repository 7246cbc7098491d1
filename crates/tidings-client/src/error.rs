//! What can go wrong, split the way EventSource splits it: failures that end
//! the event source for good, and troubles it recovers from by reconnecting.

use std::time::Duration;

use tidings_codec::DecodeError;

use crate::response::ResponseHead;

/// Why a connection attempt or an open connection went wrong.
///
/// [`Error::is_permanent`] tells the two families apart:
///
/// - **Permanent** ([`Status`](Error::Status), [`ContentType`](Error::ContentType),
///   [`Request`](Error::Request), [`Redirect`](Error::Redirect)): the server
///   answered, and its answer means "do not retry", or the request cannot be
///   made at all. The WHATWG standard calls this *failing the
///   connection*. The stream yields it as its last item, as `Err`.
/// - **Transient** ([`Transport`](Error::Transport),
///   [`ReadTimeout`](Error::ReadTimeout), [`Decode`](Error::Decode)): the
///   network, a silent server or a runaway stream. The event source
///   reconnects, and reports the error inside
///   [`Sse::Reconnecting`](crate::Sse::Reconnecting).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a status other than `200 OK`, after
    /// redirects. `204 No Content` is how a server says "stop": see
    /// [`Error::is_no_content`].
    #[error("{} answered {}, not 200 OK", .0.url, .0.status)]
    Status(Box<ResponseHead>),
    /// The server answered `200 OK` with a content type whose MIME essence is
    /// not `text/event-stream` (or with none).
    #[error(
        "{} answered with content type {}, not text/event-stream",
        .0.url,
        .0.content_type().map_or_else(|| String::from("(none)"), |ct| format!("{ct:?}"))
    )]
    ContentType(Box<ResponseHead>),
    /// The request could not be made at all (reqwest refused to build it,
    /// e.g. a redirect to a URL it cannot request). Retrying would do the
    /// same.
    #[error("invalid request: {}", chain(.0))]
    Request(reqwest::Error),
    /// Following redirects failed: a loop, too many, or a `Location` that is
    /// not a URL. Retrying would do the same.
    #[error("redirect failed: {}", chain(.0))]
    Redirect(reqwest::Error),
    /// The request could not be sent or the body could not be read: refused
    /// or reset connection, DNS, TLS, a body cut in the middle.
    #[error("network error: {}", chain(.0))]
    Transport(reqwest::Error),
    /// Nothing arrived for this long: no response head, or no body byte.
    #[error("no data for {0:?} (read timeout)")]
    ReadTimeout(Duration),
    /// The stream broke the decoder's [`Limits`](crate::Limits).
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl Error {
    /// True when the event source gives up: the stream ends after this error.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Status(_) | Self::ContentType(_) | Self::Request(_) | Self::Redirect(_)
        )
    }

    /// True for `204 No Content`: the server asked the client to stop, which
    /// tools such as `tidings sub` treat as a clean end.
    pub fn is_no_content(&self) -> bool {
        self.response().map(|head| head.status) == Some(reqwest::StatusCode::NO_CONTENT)
    }

    /// The response head behind a [`Status`](Error::Status) or
    /// [`ContentType`](Error::ContentType) failure.
    pub fn response(&self) -> Option<&ResponseHead> {
        match self {
            Self::Status(head) | Self::ContentType(head) => Some(head),
            _ => None,
        }
    }
}

/// A reqwest error with its causes, which hold the useful part ("connection
/// refused") while the top level only says "error sending request".
///
/// The errors of this crate show their cause this way, in their own
/// message, and do not also return it from `source()`: a reporter that
/// prints the source chain (`anyhow`'s `{:#}`) would print it twice.
pub(crate) fn chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why an [`EventSource`](crate::EventSource) or a
/// [`Publisher`](crate::Publisher) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL does not parse.
    #[error("invalid URL {url:?}: {error}")]
    Url {
        /// The URL as given.
        url: String,
        /// What the parser said.
        error: url::ParseError,
    },
    /// The URL parses but is not `http:` or `https:`.
    #[error("unsupported URL scheme {0:?}: only http and https")]
    Scheme(String),
    /// A header name is not a valid HTTP field name.
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    /// A header value holds bytes HTTP does not allow (CR, LF, NUL, other
    /// controls).
    #[error("invalid value for header {0:?}")]
    HeaderValue(String),
    /// The HTTP client could not be set up (TLS roots, resolver).
    #[error("HTTP client: {}", chain(.0))]
    Client(reqwest::Error),
}
