//! Who may do what: the JWT, CORS, trusted-proxy, TLS and connection-limit
//! flags of `tidings serve`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tidings_auth::{JwtAlgorithm, Key, Verifier};
use tidings_http::tls::Certificates;
use tidings_http::{AuthConfig, CorsConfig, PublishOrigins, TrustedProxies};

/// Security flags of `tidings serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct SecurityArgs {
    /// HMAC secret (HS256/384/512) that verifies publisher and subscriber
    /// JWTs. Without any key the hub runs in dev mode.
    #[arg(
        long,
        env = "TIDINGS_JWT_KEY",
        hide_env_values = true,
        conflicts_with = "jwt_key_file"
    )]
    jwt_key: Option<String>,

    /// PEM public key (RSA, EC or Ed25519) that verifies publisher and
    /// subscriber JWTs.
    #[arg(long, env = "TIDINGS_JWT_KEY_FILE")]
    jwt_key_file: Option<PathBuf>,

    /// HMAC secret for publishers only (overrides --jwt-key for them).
    #[arg(
        long,
        env = "TIDINGS_PUBLISHER_JWT_KEY",
        hide_env_values = true,
        conflicts_with = "publisher_jwt_key_file"
    )]
    publisher_jwt_key: Option<String>,

    /// PEM public key for publishers only.
    #[arg(long, env = "TIDINGS_PUBLISHER_JWT_KEY_FILE")]
    publisher_jwt_key_file: Option<PathBuf>,

    /// HMAC secret for subscribers only (overrides --jwt-key for them).
    #[arg(
        long,
        env = "TIDINGS_SUBSCRIBER_JWT_KEY",
        hide_env_values = true,
        conflicts_with = "subscriber_jwt_key_file"
    )]
    subscriber_jwt_key: Option<String>,

    /// PEM public key for subscribers only.
    #[arg(long, env = "TIDINGS_SUBSCRIBER_JWT_KEY_FILE")]
    subscriber_jwt_key_file: Option<PathBuf>,

    /// Accepted JWT algorithms (repeatable; default: every algorithm of the
    /// key's kind). `none` is never accepted.
    #[arg(long = "jwt-alg", env = "TIDINGS_JWT_ALGS", value_delimiter = ',')]
    jwt_algs: Vec<String>,

    /// Seconds of clock skew allowed on `exp` and `nbf`.
    #[arg(long, env = "TIDINGS_JWT_LEEWAY", default_value_t = 5)]
    jwt_leeway: u64,

    /// Refuse subscribers without a token (by default they get public
    /// updates).
    #[arg(long, env = "TIDINGS_NO_ANONYMOUS")]
    no_anonymous: bool,

    /// Browser origin allowed to use the hub (repeatable), or `*`.
    #[arg(
        long = "cors-origin",
        env = "TIDINGS_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,

    /// Origin whose pages may publish with the `mercureAuthorization`
    /// cookie (repeatable), or `*` for any; default: the --cors-origin
    /// list. A cookie-authenticated publish must carry an allowed Origin
    /// (or Referer); publishes with the token in the Authorization header
    /// or the query are not checked.
    #[arg(
        long = "publish-origin",
        env = "TIDINGS_PUBLISH_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    publish_origins: Vec<String>,

    /// Reverse proxy whose Forwarded / X-Forwarded-For headers name the
    /// client (repeatable): an IPv4 or IPv6 network in CIDR notation
    /// (`10.0.0.0/8`) or an address (`127.0.0.1`). Requests from other
    /// peers are taken as from the peer.
    #[arg(
        long = "trusted-proxy",
        env = "TIDINGS_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,

    /// PEM certificate chain: serve HTTPS, with HTTP/2 by ALPN.
    #[arg(long, env = "TIDINGS_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of the certificate.
    #[arg(long, env = "TIDINGS_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Most connections served at once; more are closed as they arrive.
    #[arg(long, env = "TIDINGS_MAX_CONNECTIONS", default_value_t = 16_000)]
    max_connections: usize,
}

/// The validated security configuration.
pub(crate) struct Security {
    /// Keys, anonymous subscribers, cookie publishing origins.
    pub(crate) auth: AuthConfig,
    /// Browser origins that may use the hub.
    pub(crate) cors: CorsConfig,
    /// Proxies whose forwarding headers name the client.
    pub(crate) trusted_proxies: TrustedProxies,
    /// HTTPS, reloaded on SIGHUP; `None`: plain HTTP.
    pub(crate) tls: Option<Certificates>,
    /// Connections served at once.
    pub(crate) max_connections: usize,
}

impl SecurityArgs {
    pub(crate) fn validate(&self) -> anyhow::Result<Security> {
        let algorithms = self
            .jwt_algs
            .iter()
            .map(|name| {
                tidings_auth::parse_algorithm(name).with_context(|| {
                    format!("unknown JWT algorithm {name:?} (none is never allowed)")
                })
            })
            .collect::<anyhow::Result<Vec<JwtAlgorithm>>>()?;
        let allowed = (!algorithms.is_empty()).then_some(algorithms.as_slice());
        let leeway = Duration::from_secs(self.jwt_leeway);
        let shared = key(
            self.jwt_key.as_deref(),
            self.jwt_key_file.as_ref(),
            "--jwt-key",
        )?;
        let publisher = key(
            self.publisher_jwt_key.as_deref(),
            self.publisher_jwt_key_file.as_ref(),
            "--publisher-jwt-key",
        )?
        .or_else(|| shared.clone());
        let subscriber = key(
            self.subscriber_jwt_key.as_deref(),
            self.subscriber_jwt_key_file.as_ref(),
            "--subscriber-jwt-key",
        )?
        .or(shared);
        let verifier = |key: Option<Key>, role: &str| -> anyhow::Result<Option<Verifier>> {
            key.map(|key| {
                Verifier::new(&key, allowed, leeway).with_context(|| format!("the {role} JWT key"))
            })
            .transpose()
        };
        anyhow::ensure!(
            self.max_connections > 0,
            "--max-connections must be at least 1"
        );
        for origin in &self.publish_origins {
            tidings_http::check_origin(origin)
                .map_err(anyhow::Error::msg)
                .context("--publish-origin (TIDINGS_PUBLISH_ORIGINS)")?;
        }
        // Without a list of its own, the pages that may use the hub from
        // a browser may publish with the cookie too.
        let publish_origins = if self.publish_origins.is_empty() {
            PublishOrigins::from_list(&self.cors_origins)
        } else {
            PublishOrigins::from_list(&self.publish_origins)
        };
        let trusted_proxies = TrustedProxies::parse(&self.trusted_proxies)
            .context("--trusted-proxy (TIDINGS_TRUSTED_PROXIES)")?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(Certificates::load(cert, key)?),
            _ => None,
        };
        Ok(Security {
            auth: AuthConfig {
                publisher: verifier(publisher, "publisher")?,
                subscriber: verifier(subscriber, "subscriber")?,
                anonymous: !self.no_anonymous,
                publish_origins,
            },
            cors: CorsConfig::from_list(&self.cors_origins),
            trusted_proxies,
            tls,
            max_connections: self.max_connections,
        })
    }
}

fn key(secret: Option<&str>, file: Option<&PathBuf>, flag: &str) -> anyhow::Result<Option<Key>> {
    match (secret, file) {
        (Some(secret), _) => {
            anyhow::ensure!(!secret.is_empty(), "{flag} must not be empty");
            Ok(Some(Key::Secret(secret.as_bytes().to_vec())))
        }
        (None, Some(path)) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read {flag}-file {}", path.display()))?;
            Ok(Some(Key::Pem(pem)))
        }
        (None, None) => Ok(None),
    }
}
