//! Who may do what: the JWT (keys, secrets, key sets), CORS, trusted-proxy,
//! TLS and connection-limit flags of `tidings serve`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tidings_auth::{JwtAlgorithm, Key, KeySet, Verifier};
use tidings_http::tls::Certificates;
use tidings_http::{AuthConfig, CorsConfig, PublishOrigins, TrustedProxies};

/// Security flags of `tidings serve`.
///
/// Keys, per role: the shared flags (`--jwt-…`, `--jwks-url`) serve both
/// roles; a role's own flags (`--publisher-…`, `--subscriber-…`) replace
/// them for that role. At each of these levels one source at most: an HMAC
/// secret (`-jwt-key`, or `-jwt-secret-file` for container secrets), a PEM
/// public key (`-jwt-key-file`) or a key set (`-jwks-url`).
#[derive(Debug, clap::Args)]
pub(crate) struct SecurityArgs {
    /// HMAC secret (HS256/384/512) that verifies publisher and subscriber
    /// JWTs. Without any key the hub runs in dev mode.
    #[arg(long, env = "TIDINGS_JWT_KEY", hide_env_values = true)]
    jwt_key: Option<String>,

    /// File holding the HMAC secret for publishers and subscribers (one
    /// trailing newline is dropped): `--jwt-key` without the secret on the
    /// command line or in the environment.
    #[arg(long, env = "TIDINGS_JWT_SECRET_FILE", value_name = "FILE")]
    jwt_secret_file: Option<PathBuf>,

    /// PEM public key (RSA, EC P-256/P-384 or Ed25519) that verifies
    /// publisher and subscriber JWTs.
    #[arg(long, env = "TIDINGS_JWT_KEY_FILE", value_name = "PEM")]
    jwt_key_file: Option<PathBuf>,

    /// JWK Set (https://, http:// or file:// URL) whose keys verify
    /// publisher and subscriber JWTs, chosen by the token's `kid`; fetched
    /// in the background and refreshed as its Cache-Control says.
    #[arg(
        long,
        env = "TIDINGS_JWKS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    jwks_url: Option<String>,

    /// HMAC secret for publishers only (replaces the shared key for them).
    #[arg(long, env = "TIDINGS_PUBLISHER_JWT_KEY", hide_env_values = true)]
    publisher_jwt_key: Option<String>,

    /// File holding the HMAC secret for publishers only.
    #[arg(long, env = "TIDINGS_PUBLISHER_JWT_SECRET_FILE", value_name = "FILE")]
    publisher_jwt_secret_file: Option<PathBuf>,

    /// PEM public key for publishers only.
    #[arg(long, env = "TIDINGS_PUBLISHER_JWT_KEY_FILE", value_name = "PEM")]
    publisher_jwt_key_file: Option<PathBuf>,

    /// JWK Set URL for publishers only.
    #[arg(
        long,
        env = "TIDINGS_PUBLISHER_JWKS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    publisher_jwks_url: Option<String>,

    /// HMAC secret for subscribers only (replaces the shared key for them).
    #[arg(long, env = "TIDINGS_SUBSCRIBER_JWT_KEY", hide_env_values = true)]
    subscriber_jwt_key: Option<String>,

    /// File holding the HMAC secret for subscribers only.
    #[arg(long, env = "TIDINGS_SUBSCRIBER_JWT_SECRET_FILE", value_name = "FILE")]
    subscriber_jwt_secret_file: Option<PathBuf>,

    /// PEM public key for subscribers only.
    #[arg(long, env = "TIDINGS_SUBSCRIBER_JWT_KEY_FILE", value_name = "PEM")]
    subscriber_jwt_key_file: Option<PathBuf>,

    /// JWK Set URL for subscribers only.
    #[arg(
        long,
        env = "TIDINGS_SUBSCRIBER_JWKS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    subscriber_jwks_url: Option<String>,

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
    /// The key sets the verifiers use (one per distinct URL), whose
    /// refreshers `start_key_sets` spawns.
    pub(crate) key_sets: Vec<KeySet>,
}

impl SecurityArgs {
    pub(crate) fn validate(&self) -> anyhow::Result<Security> {
        let algorithms = self
            .jwt_algs
            .iter()
            .map(|name| {
                tidings_auth::parse_algorithm(name).map_err(|e| anyhow::anyhow!("--jwt-alg: {e}"))
            })
            .collect::<anyhow::Result<Vec<JwtAlgorithm>>>()?;
        let allowed = (!algorithms.is_empty()).then_some(algorithms.as_slice());
        let leeway = Duration::from_secs(self.jwt_leeway);
        let shared = Level {
            prefix: "",
            key: self.jwt_key.as_deref(),
            secret_file: self.jwt_secret_file.as_deref(),
            key_file: self.jwt_key_file.as_deref(),
            jwks_url: self.jwks_url.as_deref(),
        }
        .source()?;
        let publisher = Level {
            prefix: "publisher-",
            key: self.publisher_jwt_key.as_deref(),
            secret_file: self.publisher_jwt_secret_file.as_deref(),
            key_file: self.publisher_jwt_key_file.as_deref(),
            jwks_url: self.publisher_jwks_url.as_deref(),
        }
        .source()?
        .or_else(|| shared.clone());
        let subscriber = Level {
            prefix: "subscriber-",
            key: self.subscriber_jwt_key.as_deref(),
            secret_file: self.subscriber_jwt_secret_file.as_deref(),
            key_file: self.subscriber_jwt_key_file.as_deref(),
            jwks_url: self.subscriber_jwks_url.as_deref(),
        }
        .source()?
        .or(shared);
        let mut key_sets = Vec::new();
        let publisher = verifier(publisher, "publisher", allowed, leeway, &mut key_sets)?;
        let subscriber = verifier(subscriber, "subscriber", allowed, leeway, &mut key_sets)?;
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
                publisher,
                subscriber,
                anonymous: !self.no_anonymous,
                publish_origins,
            },
            cors: CorsConfig::from_list(&self.cors_origins),
            trusted_proxies,
            tls,
            max_connections: self.max_connections,
            key_sets: key_sets.into_iter().map(|(_, set)| set).collect(),
        })
    }
}

/// Where one role's keys come from.
#[derive(Debug, Clone)]
enum KeySource {
    /// One key: an HMAC secret or a PEM public key.
    Key(Key),
    /// A key set, by URL.
    Set(String),
}

/// One level of key flags: the shared ones (`--jwt-key`, …, `--jwks-url`)
/// or one role's (`--publisher-jwt-key`, …).
struct Level<'a> {
    /// `""`, `"publisher-"` or `"subscriber-"`, to name the flags.
    prefix: &'static str,
    /// `-jwt-key`: an HMAC secret on the command line or in the environment.
    key: Option<&'a str>,
    /// `-jwt-secret-file`: the same secret, from a file.
    secret_file: Option<&'a Path>,
    /// `-jwt-key-file`: a PEM public key.
    key_file: Option<&'a Path>,
    /// `-jwks-url`: a key set.
    jwks_url: Option<&'a str>,
}

impl Level<'_> {
    /// The one source given at this level, if any; several are an error
    /// (a key set with a secret would let either verify: refused rather
    /// than guessed at).
    fn source(&self) -> anyhow::Result<Option<KeySource>> {
        let p = self.prefix;
        let given: Vec<String> = [
            self.key.map(|_| format!("--{p}jwt-key")),
            self.secret_file.map(|_| format!("--{p}jwt-secret-file")),
            self.key_file.map(|_| format!("--{p}jwt-key-file")),
            self.jwks_url.map(|_| format!("--{p}jwks-url")),
        ]
        .into_iter()
        .flatten()
        .collect();
        anyhow::ensure!(
            given.len() <= 1,
            "give one of --{p}jwt-key, --{p}jwt-secret-file, --{p}jwt-key-file and --{p}jwks-url, not several (given: {})",
            given.join(", ")
        );
        if let Some(secret) = self.key {
            anyhow::ensure!(!secret.is_empty(), "--{p}jwt-key must not be empty");
            return Ok(Some(KeySource::Key(Key::Secret(
                secret.as_bytes().to_vec(),
            ))));
        }
        if let Some(path) = self.secret_file {
            let flag = format!("--{p}jwt-secret-file");
            return Ok(Some(KeySource::Key(Key::Secret(read_secret(path, &flag)?))));
        }
        if let Some(path) = self.key_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --{p}jwt-key-file {}", path.display()))?;
            return Ok(Some(KeySource::Key(Key::Pem(pem))));
        }
        Ok(self.jwks_url.map(|url| KeySource::Set(url.to_owned())))
    }
}

/// A secret from a file, without its trailing newline (CR and LF): what a
/// container secret or `echo secret > file` holds.
fn read_secret(path: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    let mut secret =
        std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))?;
    while matches!(secret.last(), Some(b'\n' | b'\r')) {
        secret.pop();
    }
    anyhow::ensure!(!secret.is_empty(), "{flag} {} is empty", path.display());
    Ok(secret)
}

/// The verifier of one role; key sets are shared between roles that name
/// the same URL (one cache, one refresher).
fn verifier(
    source: Option<KeySource>,
    role: &str,
    allowed: Option<&[JwtAlgorithm]>,
    leeway: Duration,
    key_sets: &mut Vec<(String, KeySet)>,
) -> anyhow::Result<Option<Verifier>> {
    match source {
        None => Ok(None),
        Some(KeySource::Key(key)) => Verifier::new(&key, allowed, leeway)
            .with_context(|| format!("the {role} JWT key"))
            .map(Some),
        Some(KeySource::Set(url)) => {
            let set = match key_sets.iter().find(|(u, _)| *u == url) {
                Some((_, set)) => set.clone(),
                None => {
                    let set = KeySet::new(&url).with_context(|| format!("the {role} key set"))?;
                    key_sets.push((url, set.clone()));
                    set
                }
            };
            Verifier::with_key_set(set, allowed, leeway)
                .with_context(|| format!("the {role} key set"))
                .map(Some)
        }
    }
}

/// How long start-up waits for each key set's first fetch before serving.
const FIRST_FETCH_WAIT: Duration = Duration::from_secs(5);

/// Starts the key sets' refreshers and gives each first fetch a moment, so
/// that a hub whose key set server is up does not refuse its first tokens.
/// A set that cannot be fetched does not stop the hub: its refresher has
/// logged why, tokens it should verify are refused (401) meanwhile, and it
/// keeps trying.
pub(crate) async fn start_key_sets(key_sets: &[KeySet]) {
    for set in key_sets {
        tokio::spawn(set.refresher());
    }
    for set in key_sets {
        if !set.wait_first_fetch(FIRST_FETCH_WAIT).await {
            tracing::warn!(
                source = set.source().unwrap_or_default(),
                "serving without the key set for now: the tokens it verifies are refused until it is fetched"
            );
        }
    }
}
