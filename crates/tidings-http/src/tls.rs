//! TLS with rustls, offering HTTP/2 by ALPN so that a browser's many
//! EventSource streams share one connection instead of being capped at six
//! per origin; HTTP/1.1 is still served.
//!
//! The certificate and key can be replaced while the hub runs: each
//! handshake asks [`Certificates`] for the pair it holds now, and
//! [`Certificates::reload`] (on SIGHUP, see [`reload_on_hangup`]) reads the
//! files again. Connections already open keep the keys they agreed on, so
//! no stream is dropped; a pair that cannot be used is refused and the
//! previous one stays.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("cannot read certificates from {path}: {reason}")]
    Certificates {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file could not be read or holds no private key.
    #[error("cannot read a private key from {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key does not fit the certificate, or rustls refused them.
    #[error("unusable certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate chain and private key the hub serves, read from PEM
/// files and reloadable. Cheap to clone: clones share the pair.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The files and the current pair; also the rustls resolver.
    inner: Arc<Resolver>,
}

/// Answers each handshake with the current pair.
#[derive(Debug)]
struct Resolver {
    /// The certificate chain's file.
    cert: PathBuf,
    /// The private key's file.
    key: PathBuf,
    /// Turns a key into a signer; the one every load and handshake uses.
    provider: Arc<CryptoProvider>,
    /// The pair handshakes get now; replaced whole by a reload.
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

impl Certificates {
    /// Reads the pair from PEM files: a certificate chain, and the private
    /// key of its first certificate (PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read_pair(cert, key, &provider)?;
        Ok(Self {
            inner: Arc::new(Resolver {
                cert: cert.to_owned(),
                key: key.to_owned(),
                provider,
                current: RwLock::new(Arc::new(current)),
            }),
        })
    }

    /// The acceptor for the listener: TLS 1.2 and 1.3 with rustls' safe
    /// defaults, ALPN `h2` then `http/1.1`, and this pair, whatever it is
    /// at the time of each handshake.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let resolver: Arc<dyn ResolvesServerCert> = self.inner.clone();
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.inner.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the files again and serves the new pair to every handshake
    /// from now on. On error the previous pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.inner.cert, &self.inner.key, &self.inner.provider)?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
        Ok(())
    }

    /// The certificate chain's file.
    pub fn cert_path(&self) -> &Path {
        &self.inner.cert
    }
}

/// Reads and checks one pair: the key must be the first certificate's.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| TlsError::Certificates {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificates {
            path: cert.display().to_string(),
            reason: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(CertifiedKey::from_der(certs, key, provider)?)
}

/// Reloads `certificates` on every SIGHUP for the life of the process
/// (without TLS, says there is nothing to reload: SIGHUP does not end the
/// hub). The handler is registered when this returns, so that a SIGHUP
/// from then on is caught; run the future it returns.
#[cfg(unix)]
pub fn reload_on_hangup(
    certificates: Option<Certificates>,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            let Some(certificates) = certificates.clone() else {
                tracing::info!("SIGHUP received: no TLS certificate to reload");
                continue;
            };
            let path = certificates.cert_path().display().to_string();
            // Reading files may block: not on a worker that serves streams.
            match tokio::task::spawn_blocking(move || certificates.reload()).await {
                Ok(Ok(())) => {
                    tracing::info!(cert = %path, "SIGHUP received: TLS certificate and key reloaded");
                }
                Ok(Err(err)) => tracing::error!(
                    error = %err,
                    "SIGHUP received: the TLS certificate and key were not reloaded; still serving the previous ones"
                ),
                Err(err) => tracing::error!(error = %err, "the TLS reload failed"),
            }
        }
    })
}

/// Elsewhere there is no SIGHUP: nothing to wait for.
#[cfg(not(unix))]
pub fn reload_on_hangup(
    _certificates: Option<Certificates>,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(std::future::pending())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let err = Certificates::load(
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
