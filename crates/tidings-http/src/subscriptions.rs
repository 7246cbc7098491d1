//! `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`: the
//! Mercure subscriptions API (draft-dunglas-mercure-07, "Subscription
//! API"), on hubs started with `--subscriptions`.
//!
//! Authorized like a subscription: the request's path must match one of the
//! `mercure.subscribe` selectors of the subscriber token (401 without a
//! usable token, 403 when none covers it), for instance
//! `/.well-known/mercure/subscriptions{/topic}{/subscriber}`. Without a
//! subscriber key (dev mode) only loopback clients may read it, as only
//! they may publish.
//!
//! Every answer carries `lastEventID`: the newest event's id when the list
//! was taken (`earliest` when there is none). Subscribing to the
//! subscription events from it loses nothing between the two.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::request::Parts;
use serde::Serialize;
use tidings_core::{ActiveSubscription, JSONLD_CONTEXT, ListError, SUBSCRIPTIONS_PATH};

use crate::auth;
use crate::error::AppError;
use crate::state::AppState;

/// The route of the collection; `…/{*rest}` serves the others.
pub(crate) const PATH: &str = SUBSCRIPTIONS_PATH;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// Every subscription.
    All,
    /// The subscriptions to this topic selector.
    Topic(String),
    /// The subscription of this subscriber to this topic selector.
    One {
        /// The topic selector.
        topic: String,
        /// The subscriber.
        subscriber: String,
    },
}

/// Reads the request path: the API's path, then up to two segments,
/// percent-encoded.
fn parse(path: &str) -> Result<Wanted, AppError> {
    let Some(rest) = path.strip_prefix(SUBSCRIPTIONS_PATH) else {
        return Err(not_found());
    };
    if rest.is_empty() {
        return Ok(Wanted::All);
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Err(not_found());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let decoded = |which: &str, raw: &str| -> Result<String, AppError> {
        if raw.is_empty() {
            return Err(AppError::bad_request(format!(
                "empty {which} segment: use {SUBSCRIPTIONS_PATH}/{{topic}}/{{subscriber}}, each percent-encoded"
            )));
        }
        decode_segment(raw).map_err(|why| {
            AppError::bad_request(format!("the {which} segment is not valid: {why}"))
        })
    };
    match segments.as_slice() {
        [topic] => Ok(Wanted::Topic(decoded("topic", topic)?)),
        [topic, subscriber] => Ok(Wanted::One {
            topic: decoded("topic", topic)?,
            subscriber: decoded("subscriber", subscriber)?,
        }),
        _ => Err(AppError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no such resource: the subscriptions API has {SUBSCRIPTIONS_PATH}, /{{topic}} and /{{topic}}/{{subscriber}} (a / inside a value is %2F)"
            ),
        )),
    }
}

/// Percent-decodes one path segment strictly: `%` must start an escape,
/// the result must be UTF-8 (`+` is a plus).
fn decode_segment(raw: &str) -> Result<String, &'static str> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(b) = input.next() {
        if b == b'%' {
            let hi = input.next().and_then(hex);
            let lo = input.next().and_then(hex);
            match (hi, lo) {
                (Some(hi), Some(lo)) => bytes.push(hi << 4 | lo),
                _ => return Err("'%' must be followed by two hexadecimal digits"),
            }
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).map_err(|_| "it does not decode to UTF-8")
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn not_found() -> AppError {
    AppError::new(StatusCode::NOT_FOUND, "no such resource")
}

/// May this request read the API at `path`?
async fn authorize(
    parts: &Parts,
    peer: Option<IpAddr>,
    state: &AppState,
    path: &str,
) -> Result<(), AppError> {
    let auth = &state.config().auth;
    let client = state.client(peer, &parts.headers);
    if auth.subscriber.is_none() {
        return match client {
            Some(client) if client.is_loopback() => Ok(()),
            _ => Err(AppError::new(
                StatusCode::FORBIDDEN,
                "this hub runs without a subscriber JWT key (dev mode): the subscriptions API \
                 answers loopback clients only",
            )),
        };
    }
    let checked = match auth::token(parts) {
        Ok(None) => Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            "the subscriptions API needs a subscriber token whose mercure.subscribe claim covers the request path",
        )),
        Ok(Some(_)) => auth.authorize_subscribe(parts).await.map(|grant| {
            grant.is_some_and(|grant| grant.private_selectors.iter().any(|s| s.matches(path)))
        }),
        Err(err) => Err(err),
    };
    match checked {
        Ok(true) => Ok(()),
        Ok(false) => Err(AppError::new(
            StatusCode::FORBIDDEN,
            "the token's mercure.subscribe claim does not cover this path of the subscriptions API",
        )),
        Err(err) => Err(auth::brake(state.brake(), client, err).await),
    }
}

/// A subscription document.
#[derive(Debug, Serialize)]
struct Document<'a> {
    /// The JSON-LD context (top-level documents only).
    #[serde(rename = "@context", skip_serializing_if = "Option::is_none")]
    context: Option<&'static str>,
    /// Its IRI, the topic of its events.
    id: &'a str,
    /// `Subscription`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The topic selector.
    topic: &'a str,
    /// The subscriber connection's id.
    subscriber: &'a str,
    /// Always true: the API lists active subscriptions only.
    active: bool,
    /// The subscriber token's `mercure.payload`.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a serde_json::Value>,
    /// The newest event id (single documents only).
    #[serde(rename = "lastEventID", skip_serializing_if = "Option::is_none")]
    last_event_id: Option<&'a str>,
}

impl<'a> Document<'a> {
    fn of(sub: &'a ActiveSubscription) -> Self {
        Self {
            context: None,
            id: &sub.id,
            kind: "Subscription",
            topic: &sub.topic,
            subscriber: &sub.subscriber,
            active: true,
            payload: sub.payload.as_deref(),
            last_event_id: None,
        }
    }
}

/// A collection document.
#[derive(Debug, Serialize)]
struct Collection<'a> {
    /// The JSON-LD context.
    #[serde(rename = "@context")]
    context: &'static str,
    /// The request path.
    id: &'a str,
    /// `Subscriptions`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The newest event id when the list was taken.
    #[serde(rename = "lastEventID")]
    last_event_id: &'a str,
    /// The active subscriptions asked for.
    subscriptions: Vec<Document<'a>>,
}

/// The API's handler.
pub(crate) async fn handler(State(state): State<AppState>, request: Request) -> Response {
    match answer(&state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn answer(state: &AppState, request: Request) -> Result<Response, AppError> {
    if !state.hub().tracks_subscriptions() {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "active subscriptions are off on this hub: start it with --subscriptions",
        ));
    }
    let (parts, _body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let wanted = parse(&path)?;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    authorize(&parts, peer, state, &path).await?;
    let list = match state.hub().subscriptions().await {
        Ok(Some(list)) => list,
        Ok(None) => return Err(not_found()),
        Err(ListError::Engine(err)) => {
            return Err(AppError::unavailable(format!(
                "the cluster engine is unavailable: {err}"
            )));
        }
        Err(ListError::Store(_)) => {
            return Err(AppError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the history store failed",
            ));
        }
    };
    let last_event_id = list.last_event_id.as_deref().unwrap_or("earliest");
    let body = match &wanted {
        Wanted::One { topic, subscriber } => {
            let found = list
                .subscriptions
                .iter()
                .find(|s| &s.topic == topic && &s.subscriber == subscriber)
                .ok_or_else(|| {
                    AppError::new(
                        StatusCode::NOT_FOUND,
                        "no active subscription of this subscriber to this topic selector",
                    )
                })?;
            let mut document = Document::of(found);
            document.context = Some(JSONLD_CONTEXT);
            document.last_event_id = Some(last_event_id);
            serde_json::to_vec(&document)
        }
        Wanted::All | Wanted::Topic(_) => {
            let subscriptions = list
                .subscriptions
                .iter()
                .filter(|s| match &wanted {
                    Wanted::Topic(topic) => &s.topic == topic,
                    _ => true,
                })
                .map(Document::of)
                .collect();
            serde_json::to_vec(&Collection {
                context: JSONLD_CONTEXT,
                id: &path,
                kind: "Subscriptions",
                last_event_id,
                subscriptions,
            })
        }
    }
    .map_err(|_| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the list"))?;
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/ld+json"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn paths() {
        let p = |s: &str| parse(&format!("{SUBSCRIPTIONS_PATH}{s}"));
        assert_eq!(p("").unwrap(), Wanted::All);
        assert_eq!(
            p("/https%3A%2F%2Fexample.com%2F%7Bid%7D").unwrap(),
            Wanted::Topic("https://example.com/{id}".into())
        );
        assert_eq!(
            p("/a+b%20c/urn%3Auuid%3A1").unwrap(),
            Wanted::One {
                topic: "a+b c".into(),
                subscriber: "urn:uuid:1".into()
            }
        );
        for bad in ["/", "/a/", "//b", "/%zz", "/a/%2", "/%C3%28"] {
            assert_eq!(p(bad).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert_eq!(p("/a/b/c").unwrap_err().status, StatusCode::NOT_FOUND);
        assert_eq!(
            parse("/.well-known/mercure/subscriptionsX")
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
    }
}
