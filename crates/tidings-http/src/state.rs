//! What every request handler shares.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;
use metrics_exporter_prometheus::PrometheusHandle;
use tidings_core::Hub;

use crate::auth::FailureBrake;
use crate::client::Client;
use crate::config::ServerConfig;

/// The handlers' shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Shared parts, behind one pointer.
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The hub core.
    hub: Hub,
    /// The configuration.
    config: ServerConfig,
    /// Renders `/metrics`; `None` when no recorder could be installed.
    metrics: Option<PrometheusHandle>,
    /// Slows down peers whose authentication keeps failing.
    brake: FailureBrake,
}

impl AppState {
    /// State for `hub`, configured by `config`.
    pub fn new(hub: Hub, config: ServerConfig, metrics: Option<PrometheusHandle>) -> Self {
        Self {
            inner: Arc::new(Inner {
                hub,
                config,
                metrics,
                brake: FailureBrake::default(),
            }),
        }
    }

    /// The hub core.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Who sent a request that arrived from `peer` (`None`: the server did
    /// not say) with `headers`.
    pub(crate) fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<Client> {
        peer.map(|peer| self.inner.config.trusted_proxies.client(peer, headers))
    }

    /// The brake on repeated authentication failures.
    pub(crate) fn brake(&self) -> &FailureBrake {
        &self.inner.brake
    }

    /// The Prometheus renderer.
    pub fn metrics(&self) -> Option<&PrometheusHandle> {
        self.inner.metrics.as_ref()
    }
}
