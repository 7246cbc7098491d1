//! The server's typed configuration, validated once by whoever parses the
//! flags.

use std::time::Duration;

use tokio_rustls::TlsAcceptor;

use crate::auth::AuthConfig;
use crate::client::TrustedProxies;
use crate::cors::CorsConfig;

/// Everything the HTTP side needs to know.
#[derive(Clone)]
pub struct ServerConfig {
    /// The largest publish body, in bytes.
    pub max_body: usize,
    /// The most topic selectors one subscription may have.
    pub max_selectors: usize,
    /// How long a client may take to send a request head.
    pub header_timeout: Duration,
    /// How long shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
    /// Connections served at once; more are closed as they come, so that a
    /// flood cannot take the process's last file descriptors.
    pub max_connections: usize,
    /// Tokens and who may do what.
    pub auth: AuthConfig,
    /// Browser origins allowed to use the hub.
    pub cors: CorsConfig,
    /// Reverse proxies whose `Forwarded`/`X-Forwarded-For` name the
    /// client; empty: the TCP peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// TLS (with HTTP/2 by ALPN); `None`: plain HTTP.
    pub tls: Option<TlsAcceptor>,
    /// Serve the operator page at `/ui/`.
    pub ui: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body: 1 << 20,
            max_selectors: 64,
            header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 16_000,
            auth: AuthConfig::default(),
            cors: CorsConfig::default(),
            trusted_proxies: TrustedProxies::default(),
            tls: None,
            ui: false,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("max_body", &self.max_body)
            .field("max_selectors", &self.max_selectors)
            .field("max_connections", &self.max_connections)
            .field("auth", &self.auth)
            .field("cors", &self.cors)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("tls", &self.tls.is_some())
            .field("ui", &self.ui)
            .finish_non_exhaustive()
    }
}
