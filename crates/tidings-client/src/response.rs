//! The head of each response, and the test that decides whether it opens an
//! event stream.

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{StatusCode, Url};

/// The status line and headers of one response, after redirects.
///
/// Every established connection reports one in [`Sse::Open`](crate::Sse::Open),
/// so that callers can read what the server said about the stream (Mercure's
/// `Last-Event-ID` response header tells whether history was lost); a
/// failed one carries it in [`Error::Status`](crate::Error::Status) or
/// [`Error::ContentType`](crate::Error::ContentType).
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The URL that answered: the request URL after redirects.
    pub url: Url,
}

impl ResponseHead {
    pub(crate) fn of(response: &reqwest::Response) -> Self {
        Self {
            status: response.status(),
            headers: response.headers().clone(),
            url: response.url().clone(),
        }
    }

    /// The `Content-Type` header, when it is present and text.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get(CONTENT_TYPE)?.to_str().ok()
    }

    /// Whether this response opens an event stream: `200 OK` and a MIME type
    /// whose essence is `text/event-stream`.
    pub(crate) fn opens_stream(&self) -> bool {
        self.status == StatusCode::OK && self.content_type().is_some_and(is_event_stream)
    }
}

/// Whether a `Content-Type` value's MIME type essence is `text/event-stream`.
///
/// The essence is the type and subtype, compared ASCII case-insensitively,
/// with surrounding HTTP whitespace ignored; parameters do not matter
/// (`text/event-stream;charset=utf-8` and `text/event-stream;` pass). The
/// WHATWG standard ignores the charset, since the stream is always UTF-8.
pub fn is_event_stream(content_type: &str) -> bool {
    let essence = content_type
        .split_once(';')
        .map_or(content_type, |(essence, _)| essence);
    essence
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
        .eq_ignore_ascii_case("text/event-stream")
}

#[cfg(test)]
mod tests {
    use super::is_event_stream;

    #[test]
    fn essence_decides() {
        for ok in [
            "text/event-stream",
            "Text/Event-Stream",
            "text/event-stream;",
            "text/event-stream; charset=utf-8",
            "text/event-stream;charset=windows-1252",
            " text/event-stream ;x=y",
        ] {
            assert!(is_event_stream(ok), "{ok:?}");
        }
        for bad in [
            "",
            "x bogus",
            "text/x-bogus",
            "text/plain",
            "text/event-streams",
            "text/event stream",
            "text/event-stream/x",
        ] {
            assert!(!is_event_stream(bad), "{bad:?}");
        }
    }
}
