//! `GET /.well-known/mercure` (and `/events`): the subscribe logic shared by
//! both transports, and the hyper transport.
//!
//! A subscribe request that opens a fresh HTTP/1 connection is served by
//! the lean `raw` path; one that arrives on a connection hyper already
//! serves (keep-alive after another request, HTTP/2) is served here as a
//! streaming body. Both build the request and the response headers with
//! the functions below, so they answer alike.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::Body;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use futures_util::StreamExt as _;
use futures_util::task::AtomicWaker;
use http::HeaderMap;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::request::Parts;
use http_body::Frame;
use tidings_core::{AbortWatch, End, Selector, SubscribeRequest, Subscription};

use crate::auth;
use crate::error::AppError;
use crate::form;
use crate::state::AppState;

/// `Last-Event-ID`, in requests and, per the Mercure protocol, responses.
pub(crate) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Reads a subscribe request from its head.
pub(crate) async fn parse_request(
    parts: &Parts,
    state: &AppState,
) -> Result<SubscribeRequest, AppError> {
    let mut selectors = Vec::new();
    let mut from_query = None;
    for pair in form::pairs(parts.uri.query().unwrap_or_default().as_bytes()) {
        let (name, value) = pair.map_err(AppError::bad_request)?;
        match name.as_str() {
            "topic" => selectors.push(Selector::parse(&value)),
            "lastEventID" => from_query = Some(value),
            _ => {}
        }
    }
    if selectors.is_empty() {
        return Err(AppError::bad_request(
            "missing topic: subscribe with at least one topic=SELECTOR query parameter",
        ));
    }
    let max = state.config().max_selectors;
    if selectors.len() > max {
        return Err(AppError::bad_request(format!(
            "too many topic selectors: {} given, at most {max} allowed",
            selectors.len()
        )));
    }
    // The header wins over the query parameter, as the protocol says. It
    // is UTF-8, as browsers send it.
    let from_header =
        match parts.headers.get(LAST_EVENT_ID) {
            Some(value) => Some(String::from_utf8(value.as_bytes().to_vec()).map_err(|_| {
                AppError::bad_request("the Last-Event-ID header is not valid UTF-8")
            })?),
            None => None,
        };
    Ok(SubscribeRequest {
        selectors,
        last_event_id: from_header.or(from_query),
        auth: state.config().auth.authorize_subscribe(parts).await?,
    })
}

/// Opens the subscription a request head asks for (both transports).
pub(crate) async fn open(
    parts: &Parts,
    peer: Option<IpAddr>,
    state: &AppState,
) -> Result<Subscription, AppError> {
    let request = match parse_request(parts, state).await {
        Ok(request) => request,
        Err(err) => {
            let client = state.client(peer, &parts.headers);
            return Err(auth::brake(state.brake(), client, err).await);
        }
    };
    Ok(state.hub().subscribe(request).await?)
}

/// The response headers of an event stream opened by a request with
/// `request` headers.
pub(crate) fn response_headers(
    subscription: &Subscription,
    request: &HeaderMap,
    state: &AppState,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ),
    ];
    if let Some(id) = subscription.last_event_id_header() {
        match HeaderValue::from_bytes(id.as_bytes()) {
            Ok(value) => headers.push((LAST_EVENT_ID, value)),
            Err(_) => tracing::debug!(id, "cannot echo this Last-Event-ID in a header"),
        }
    }
    headers.extend(state.config().cors.response_headers(request));
    headers
}

/// The hyper transport's handler.
pub(crate) async fn handler(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, AppError> {
    let (parts, _body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let subscription = open(&parts, peer, &state).await?;
    if let Some(slot) = parts.extensions.get::<AbortSlot>() {
        slot.set(subscription.abort_watch());
    }
    // The CORS middleware adds its headers to this response.
    let headers = response_headers(&subscription, &HeaderMap::new(), &state);
    let mut response = Response::new(body(subscription));
    response.headers_mut().extend(headers);
    Ok(response)
}

/// The frames of `subscription` as a streaming body; it ends when the
/// subscription ends.
fn body(subscription: Subscription) -> Body {
    let batches = futures_util::stream::unfold(subscription, |mut subscription| async move {
        // hyper asks for more once it has written what it had.
        subscription.written();
        let mut frames = Vec::new();
        match subscription.next(&mut frames).await {
            Ok(()) => Some((frames, subscription)),
            Err(end) => {
                tracing::debug!(reason = end.as_str(), "event stream ends");
                None
            }
        }
    });
    let frames = batches
        .flat_map(futures_util::stream::iter)
        .map(|frame| Ok::<_, Infallible>(Frame::data(frame)));
    Body::new(http_body_util::StreamBody::new(frames))
}

/// Lets a connection's task learn that the stream it carries must stop at
/// once (its peer stopped reading): hyper does not poll a body while the
/// socket is full, so the connection task watches this beside it and drops
/// the connection. Put in each HTTP/1 request's extensions by the server.
#[derive(Debug, Clone, Default)]
pub(crate) struct AbortSlot {
    /// The watch and the connection task's waker.
    inner: Arc<SlotInner>,
}

#[derive(Debug, Default)]
struct SlotInner {
    /// The current stream's watch.
    watch: Mutex<Option<AbortWatch>>,
    /// Woken when a watch is set.
    waker: AtomicWaker,
}

impl AbortSlot {
    fn set(&self, watch: AbortWatch) {
        *self
            .inner
            .watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(watch);
        self.inner.waker.wake();
    }

    /// Ready when the connection's current stream must stop at once.
    pub(crate) fn poll_abort(&self, cx: &mut Context<'_>) -> Poll<End> {
        self.inner.waker.register(cx.waker());
        let watch = self
            .inner
            .watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match watch.as_ref() {
            Some(watch) => watch.poll_abort(cx),
            None => Poll::Pending,
        }
    }
}
