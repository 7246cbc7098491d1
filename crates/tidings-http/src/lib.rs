//! The hub's HTTP side.
//!
//! - [`app`] is every route as an axum `Router`, for tests and embedding.
//! - [`server`] is the listener: it accepts connections, serves
//!   subscribe requests that open a connection on its own lean path
//!   (`raw`), hands everything else to hyper, and shuts down gracefully.
//! - [`serve_while_loading`] answers health checks on the listener
//!   before the hub exists, while its history loads.
//!
//! **Architecture Invariant**: HTTP stays here. The hub core gets parsed
//! [`tidings_core::Update`]s and [`tidings_core::SubscribeRequest`]s and
//! gives back frames; it never sees a request or a socket.

mod app;
mod assets;
mod auth;
mod client;
mod config;
mod cors;
mod csrf;
mod error;
mod form;
mod forwarded;
mod loading;
pub mod metrics;
mod prefixed;
mod publish;
mod raw;
mod server;
mod state;
mod subscribe;
mod subscriptions;
pub mod tls;

pub use app::{EVENTS_PATH, HEALTHZ_PATH, HUB_PATH, PUBLISH_PATH, READYZ_PATH, app};
pub use auth::AuthConfig;
pub use client::{TrustedProxies, TrustedProxyError};
pub use config::ServerConfig;
pub use cors::CorsConfig;
pub use csrf::{PublishOrigins, check_origin};
pub use error::AppError;
pub use loading::serve_while_loading;
#[doc(hidden)]
pub use publish::parse_body as parse_publish_body;
pub use server::{serve, shutdown_signal};
pub use state::AppState;
