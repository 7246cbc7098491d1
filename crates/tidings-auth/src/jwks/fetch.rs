//! Getting a key set document: over HTTP(S) with reqwest (rustls, the
//! platform's trust store) or from a file, with how long it stays fresh.

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AGE, CACHE_CONTROL, HeaderMap};

/// The largest key set document read.
pub(crate) const MAX_BYTES: usize = 1 << 20;

/// A whole fetch may take this long.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Connecting may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Redirects followed at most (never from `https` to `http`).
const MAX_REDIRECTS: usize = 3;

/// Where a key set is read from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// An `https://` or `http://` URL.
    Http(Url),
    /// A `file://` URL's path.
    File(PathBuf),
}

impl Source {
    /// Reads `https://…`, `http://…` or `file:///absolute/path`.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let parsed = Url::parse(url).map_err(|e| e.to_string())?;
        match parsed.scheme() {
            "https" | "http" => {
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err("the URL has no host".to_owned());
                }
                Ok(Self::Http(parsed))
            }
            "file" => {
                if parsed
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err("a file:// URL must name a local file (file:///path)".to_owned());
                }
                let path = parsed
                    .to_file_path()
                    .map_err(|()| "a file:// URL must hold an absolute path".to_owned())?;
                Ok(Self::File(path))
            }
            other => Err(format!(
                "scheme {other:?} is not supported: use https://, http:// or file://"
            )),
        }
    }

    /// The source for logs: no user, password, query or fragment, which
    /// may hold secrets.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Http(url) => {
                let mut shown = url.clone();
                let _ = shown.set_username("");
                let _ = shown.set_password(None);
                shown.set_query(None);
                shown.set_fragment(None);
                shown.to_string()
            }
            Self::File(path) => format!("file://{}", path.display()),
        }
    }

    /// Whether the set travels unencrypted over a network: `http://` to a
    /// host that is not loopback.
    pub(crate) fn is_plain_remote(&self) -> bool {
        match self {
            Self::Http(url) if url.scheme() == "http" => {
                let host = url.host_str().unwrap_or_default();
                let host = host.trim_start_matches('[').trim_end_matches(']');
                match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => !ip.is_loopback(),
                    Err(_) => !host.eq_ignore_ascii_case("localhost"),
                }
            }
            _ => false,
        }
    }
}

/// A fetched document.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The body.
    pub(crate) body: Vec<u8>,
    /// How long the response says it stays fresh (`Cache-Control:
    /// max-age` less `Age`; no-cache and no-store: zero); `None`: it does
    /// not say (files never do).
    pub(crate) max_age: Option<Duration>,
}

/// Reads one source, again and again.
#[derive(Debug)]
pub(crate) struct Fetcher {
    /// What it reads.
    source: Source,
    /// The HTTP client, for `http(s)://` sources; built once.
    client: Option<reqwest::Client>,
}

impl Fetcher {
    /// A fetcher for `source`; fails only when TLS cannot be set up.
    pub(crate) fn new(source: Source) -> Result<Self, String> {
        let client = match &source {
            Source::Http(url) => Some(client(url.scheme() == "https")?),
            Source::File(_) => None,
        };
        Ok(Self { source, client })
    }

    /// Reads the document once.
    pub(crate) async fn fetch(&self) -> Result<Fetched, String> {
        match (&self.source, &self.client) {
            (Source::Http(url), Some(client)) => fetch_http(url, client).await,
            (Source::Http(_), None) => Err("no HTTP client".to_owned()),
            (Source::File(path), _) => {
                let body = tokio::time::timeout(TIMEOUT, read_file(path))
                    .await
                    .map_err(|_| format!("reading took more than {TIMEOUT:?}"))??;
                Ok(Fetched {
                    body,
                    max_age: None,
                })
            }
        }
    }
}

/// rustls with the ring provider; certificates checked against the
/// platform's trust store.
fn client(https_only: bool) -> Result<reqwest::Client, String> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // An error only means that a provider is already installed: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .https_only(https_only)
        .user_agent(concat!("tidings/", env!("CARGO_PKG_VERSION"), " (JWKS)"))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

async fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_BYTES as u64 {
        return Err(format!(
            "{} is larger than {MAX_BYTES} bytes",
            path.display()
        ));
    }
    tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

async fn fetch_http(url: &Url, client: &reqwest::Client) -> Result<Fetched, String> {
    let mut response = client
        .get(url.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .send()
        .await
        .map_err(|e| error_chain(&e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the server answered {status}"));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BYTES as u64)
    {
        return Err(format!("the key set is larger than {MAX_BYTES} bytes"));
    }
    let max_age = freshness(response.headers());
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| error_chain(&e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(format!("the key set is larger than {MAX_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { body, max_age })
}

/// An error with its causes ("error sending request: connection refused"),
/// without the URL (reqwest's errors name it, query and all).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// How long a response stays fresh by its headers: `max-age` (less `Age`),
/// zero for `no-cache`/`no-store`, `None` when they say nothing.
pub(crate) fn freshness(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    let mut no_cache = false;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            let name = name.trim().to_ascii_lowercase();
            match name.as_str() {
                "max-age" => {
                    if let Ok(secs) = arg.trim().trim_matches('"').parse::<u64>() {
                        max_age = Some(secs);
                    }
                }
                "no-cache" | "no-store" => no_cache = true,
                _ => {}
            }
        }
    }
    if no_cache {
        return Some(Duration::ZERO);
    }
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age.map(|secs| Duration::from_secs(secs.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn cache_control() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(freshness(&headers(&[])), None);
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=600")])),
            secs(600)
        );
        assert_eq!(
            freshness(&headers(&[(
                "cache-control",
                "public, Max-Age=\"60\", must-revalidate"
            )])),
            secs(60)
        );
        assert_eq!(
            freshness(&headers(&[
                ("cache-control", "max-age=600"),
                ("age", "100")
            ])),
            secs(500)
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=60"), ("age", "100")])),
            secs(0)
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "no-cache")])),
            secs(0)
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=600, no-store")])),
            secs(0)
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=soon")])),
            None
        );
        assert_eq!(
            freshness(&headers(&[
                ("cache-control", "private"),
                ("cache-control", "max-age=7")
            ])),
            secs(7)
        );
    }

    #[test]
    fn sources() {
        assert!(matches!(
            Source::parse("https://idp.example/jwks"),
            Ok(Source::Http(_))
        ));
        assert!(matches!(
            Source::parse("http://127.0.0.1:9/k"),
            Ok(Source::Http(_))
        ));
        assert!(
            matches!(Source::parse("file:///etc/jwks.json"), Ok(Source::File(p)) if p == std::path::Path::new("/etc/jwks.json"))
        );
        assert!(Source::parse("file://elsewhere/jwks.json").is_err());
        assert!(Source::parse("ftp://idp.example/jwks").is_err());
        assert!(Source::parse("/etc/jwks.json").is_err());
        assert!(Source::parse("https://").is_err());
        let secret = Source::parse("https://user:pw@idp.example/jwks?token=s#f").unwrap();
        assert_eq!(secret.describe(), "https://idp.example/jwks");
        assert!(
            Source::parse("http://idp.example/k")
                .unwrap()
                .is_plain_remote()
        );
        assert!(
            !Source::parse("http://127.0.0.1/k")
                .unwrap()
                .is_plain_remote()
        );
        assert!(!Source::parse("http://[::1]/k").unwrap().is_plain_remote());
        assert!(
            !Source::parse("https://idp.example/k")
                .unwrap()
                .is_plain_remote()
        );
    }
}
