//! The router driven in-process: `app(state)` over a real `Hub` with an
//! in-memory history, called with `tower::ServiceExt::oneshot`, for the
//! request/response paths (publish errors, tokens, the dev-mode loopback
//! rule, CORS). What needs a socket (streams, the lean HTTP/1 path, TLS,
//! shutdown) is tested end to end in the workspace's `tests/`.
//!
//! The real server puts the TCP peer's address in every request's
//! extensions as `ConnectInfo`; so does [`Req`] (a loopback peer unless a
//! test says otherwise).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod auth;
mod cors;
mod csrf;
mod proxy;
mod publish;
mod subscribe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tidings_auth::{Key, Verifier};
use tidings_core::{
    Hub, HubConfig, MemoryStore, Retention, Selector, SubscribeRequest, Subscription,
};
use tidings_http::{AppState, ServerConfig, app};
use tower::ServiceExt as _;

/// The hub URL.
pub(crate) const HUB: &str = "/.well-known/mercure";

/// The HMAC secret of [`hmac`] and [`token`].
pub(crate) const SECRET: &str = "in-process-test-secret-0123456789";

/// A loopback peer, as the server would record it.
pub(crate) const LOOPBACK: &str = "127.0.0.1:50000";

/// A real hub behind the router.
pub(crate) struct TestApp {
    /// `app(state)`.
    pub(crate) router: Router,
    /// The hub under it, for publishing around the router.
    pub(crate) hub: Hub,
}

impl TestApp {
    /// A hub with in-memory history, served with `config`.
    pub(crate) fn new(config: ServerConfig) -> Self {
        let store = Arc::new(MemoryStore::new(Retention::default()));
        let hub = Hub::start(HubConfig::default(), store).unwrap();
        let router = app(AppState::new(hub.clone(), config, None));
        Self { router, hub }
    }

    /// A dev-mode hub (no keys) with the default configuration.
    pub(crate) fn dev() -> Self {
        Self::new(ServerConfig::default())
    }

    /// Watches every topic on the hub itself, from now on.
    pub(crate) async fn watch(&self) -> Watcher {
        let subscription = self
            .hub
            .subscribe(SubscribeRequest {
                selectors: vec![Selector::parse("*")],
                last_event_id: None,
                auth: None,
            })
            .await
            .unwrap();
        Watcher(subscription)
    }

    /// Sends `request` and reads the whole response (not for streams).
    pub(crate) async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
            .await
            .expect("the response body did not end")
            .unwrap()
            .to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Sends `request` and keeps only the response head (for streams,
    /// whose bodies do not end).
    pub(crate) async fn head(&self, request: Request<Body>) -> (StatusCode, HeaderMap) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        (response.status(), response.headers().clone())
    }
}

/// A complete response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The message of a JSON error body `{"error": "..."}`; panics if the
    /// body is anything else.
    pub(crate) fn error(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let value: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        let object = value.as_object().expect("an object");
        assert_eq!(object.len(), 1, "only `error`: {value}");
        object["error"].as_str().expect("a string").to_owned()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A request being built; it comes from [`LOOPBACK`] unless
/// [`Req::from`] or [`Req::no_peer`] say otherwise.
pub(crate) struct Req {
    builder: http::request::Builder,
    peer: Option<SocketAddr>,
}

/// `method target`.
pub(crate) fn req(method: &str, target: &str) -> Req {
    Req {
        builder: Request::builder().method(method).uri(target),
        peer: Some(LOOPBACK.parse().unwrap()),
    }
}

/// `POST` on the hub URL.
pub(crate) fn post() -> Req {
    req("POST", HUB)
}

impl Req {
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// The TCP peer the server saw.
    pub(crate) fn from(mut self, peer: &str) -> Self {
        self.peer = Some(peer.parse().unwrap());
        self
    }

    /// No `ConnectInfo` at all (a server that does not record peers).
    pub(crate) fn no_peer(mut self) -> Self {
        self.peer = None;
        self
    }

    pub(crate) fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub(crate) fn body(self, body: impl Into<Body>) -> Request<Body> {
        let mut builder = self.builder;
        if let Some(peer) = self.peer {
            builder = builder.extension(ConnectInfo(peer));
        }
        builder.body(body.into()).unwrap()
    }

    pub(crate) fn empty(self) -> Request<Body> {
        self.body(Body::empty())
    }

    /// A form-encoded body.
    pub(crate) fn form(self, body: &str) -> Request<Body> {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
    }

    /// A JSON body.
    pub(crate) fn json(self, body: &str) -> Request<Body> {
        self.header("content-type", "application/json")
            .body(body.to_owned())
    }
}

/// A verifier for [`SECRET`].
pub(crate) fn hmac() -> Verifier {
    Verifier::new(
        &Key::Secret(SECRET.as_bytes().to_vec()),
        None,
        Duration::from_secs(5),
    )
    .unwrap()
}

/// A token signed with `secret` with these Mercure claims.
pub(crate) fn token_with(secret: &str, publish: &[&str], subscribe: &[&str]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({ "mercure": { "publish": publish, "subscribe": subscribe } }),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A token signed with [`SECRET`].
pub(crate) fn token(publish: &[&str], subscribe: &[&str]) -> String {
    token_with(SECRET, publish, subscribe)
}

/// A configuration whose publishers and subscribers need tokens signed
/// with [`SECRET`].
pub(crate) fn with_key() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.auth.publisher = Some(hmac());
    config.auth.subscriber = Some(hmac());
    config
}

/// A subscription on the hub, read as text.
pub(crate) struct Watcher(Subscription);

impl Watcher {
    /// Everything the stream carries up to the first frame that contains
    /// `marker`.
    pub(crate) async fn until(&mut self, marker: &str) -> String {
        let mut text = String::new();
        while !text.contains(marker) {
            let mut frames = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), self.0.next(&mut frames))
                .await
                .expect("the marker did not arrive")
                .unwrap();
            for frame in frames {
                text.push_str(std::str::from_utf8(&frame).unwrap());
            }
        }
        text
    }
}
