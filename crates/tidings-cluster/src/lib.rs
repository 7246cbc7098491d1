//! Cluster engines for the hub: a log shared by several hubs, kept by an
//! engine they all reach, behind `tidings-core`'s [`Cluster`] trait.
//!
//! - [`RedisCluster`]: a Redis Stream; publishes run one Lua script.
//! - [`NatsCluster`]: a NATS JetStream stream.
//!
//! Both give every entry a place (its sequence number) that is the same on
//! every hub and starts from the clock like a single hub's, keep publisher
//! ids with the single-node rules (same content: a retry that keeps its old
//! place; other content: a conflict), map the history limits onto the
//! engine's own, fail publishes fast when the engine is unreachable, and
//! let a follower resume from its last place once the engine is back.
//!
//! [`connect`] picks the engine from the `--cluster` URL ([`EngineUrl`]);
//! [`roster`] opens the same engine's records of active subscriptions
//! ([`RedisRoster`], [`NatsRoster`]).
//!
//! Each engine is a cargo feature (`redis`, `nats`; both on by default). A
//! build without one still parses its URLs, and refuses them with
//! [`UrlError::NotBuilt`], which names the feature.

#[cfg(any(feature = "redis", feature = "nats"))]
mod backoff;
mod engine_url;
#[cfg(feature = "nats")]
mod nats;
#[cfg(any(feature = "redis", feature = "nats"))]
mod payload;
#[cfg(feature = "redis")]
mod redis;

use std::sync::Arc;

pub use engine_url::{EngineUrl, UrlError, redacted};
#[cfg(feature = "nats")]
pub use nats::{NatsCluster, NatsRoster};
#[cfg(feature = "redis")]
pub use redis::{RedisCluster, RedisRoster};
use tidings_core::{Cluster, Retention, Roster};

/// The cluster engine cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is wrong.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The engine did not answer.
    #[error("cannot reach the cluster engine ({engine}): {message}")]
    Unreachable {
        /// Which engine.
        engine: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The engine answered but refused what the cluster needs.
    #[error("cannot set the cluster engine up: {0}")]
    Setup(String),
}

/// Connects to the engine of a `--cluster` URL, keeping `retention` in
/// it. Needs a Tokio runtime.
pub async fn connect(url: &str, retention: Retention) -> Result<Arc<dyn Cluster>, ConnectError> {
    match EngineUrl::parse(url)? {
        #[cfg(feature = "redis")]
        EngineUrl::Redis { url, prefix } => Ok(Arc::new(
            redis::RedisCluster::connect(&url, &prefix, retention).await?,
        )),
        #[cfg(feature = "nats")]
        EngineUrl::Nats {
            url,
            stream,
            subject,
        } => Ok(Arc::new(
            nats::NatsCluster::connect(&url, &stream, &subject, retention).await?,
        )),
        // Never reached: `parse` refuses the URLs of engines this build
        // leaves out.
        #[cfg(not(all(feature = "redis", feature = "nats")))]
        other => {
            let _ = retention;
            Err(other.not_built().into())
        }
    }
}

/// Opens the active-subscription records ([`Roster`]) in the engine of a
/// `--cluster` URL, each hub's under a lease of `lease`. Needs a Tokio
/// runtime.
pub async fn roster(
    url: &str,
    lease: std::time::Duration,
) -> Result<Arc<dyn Roster>, ConnectError> {
    match EngineUrl::parse(url)? {
        #[cfg(feature = "redis")]
        EngineUrl::Redis { url, prefix } => {
            Ok(Arc::new(RedisRoster::connect(&url, &prefix, lease).await?))
        }
        #[cfg(feature = "nats")]
        EngineUrl::Nats { url, stream, .. } => {
            Ok(Arc::new(NatsRoster::connect(&url, &stream, lease).await?))
        }
        // Never reached: `parse` refuses the URLs of engines this build
        // leaves out.
        #[cfg(not(all(feature = "redis", feature = "nats")))]
        other => {
            let _ = lease;
            Err(other.not_built().into())
        }
    }
}
