//! The HTTP client underneath: reqwest with rustls and the *ring* crypto
//! provider (no native-tls, no C toolchain beyond what ring needs);
//! certificates are checked against the platform's trust store. The crate
//! docs say why reqwest.

use std::sync::Once;
use std::time::Duration;

use crate::{ConfigError, DEFAULT_MAX_REDIRECTS};

/// How long `tidings pub` style one-shot requests may take, in total.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A reqwest client set up as event sources make theirs: rustls with the
/// ring provider, at most [`DEFAULT_MAX_REDIRECTS`] redirects. Share one
/// between many event sources with [`Builder::client`](crate::Builder::client),
/// or use it for other requests.
pub fn http_client() -> Result<reqwest::Client, ConfigError> {
    client(DEFAULT_MAX_REDIRECTS)
}

/// A client that follows at most `max_redirects` redirects.
///
/// The first call installs rustls' ring provider as the process default,
/// unless the program installed one before; reqwest refuses to build TLS
/// without one.
pub(crate) fn client(max_redirects: usize) -> Result<reqwest::Client, ConfigError> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        // An error only means that a provider is already installed: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(max_redirects))
        .build()
        .map_err(ConfigError::Client)
}
