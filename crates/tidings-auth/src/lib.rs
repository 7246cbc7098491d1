//! Verifying Mercure JWTs.
//!
//! A [`Verifier`] holds the keys of one role and the algorithms it
//! accepts: the allow-list is explicit, `none` is never accepted, and an
//! HMAC key never verifies a public-key algorithm or the reverse (no
//! algorithm confusion). `exp` and `nbf` are honoured with a small leeway.
//! Tokens carry the Mercure claims: `mercure.publish` and
//! `mercure.subscribe` (arrays of topic selectors) and `mercure.payload`
//! (free JSON).
//!
//! The keys are one key given by the operator ([`Key`]) or a JWK Set
//! ([`KeySet`]) fetched from an `https://`, `http://` or `file://` URL,
//! cached and refreshed in the background. Verifying stays synchronous and
//! cheap: it looks keys up in the cache ([`Verifier::verify`]); only a token
//! whose key is not in the cache waits for a (rate-limited, shared)
//! refetch ([`Verifier::verify_or_refetch`]).
//!
//! Where a token comes from (headers, cookies) is the HTTP side's business;
//! the only HTTP here is the client that fetches key sets.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use tidings_selector::Selector;

mod jwks;
mod verifier;

pub use jsonwebtoken::Algorithm as JwtAlgorithm;
pub use jwks::{Jwks, JwksError, KeySet};
pub use verifier::Verifier;

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM file holds no RSA, EC or Ed25519 public key we can read.
    #[error("not an RSA, EC (P-256 or P-384) or Ed25519 public key in PEM form")]
    UnreadablePem,
    /// An EC key on a curve without a supported algorithm.
    #[error("EC keys on {0} are not supported: use a P-256 (ES256) or P-384 (ES384) key")]
    UnsupportedCurve(&'static str),
    /// The secret is empty.
    #[error("an HMAC secret must not be empty")]
    EmptySecret,
    /// An allowed algorithm does not fit the key.
    #[error("algorithm {0:?} cannot be used with this kind of key")]
    AlgorithmMismatch(Algorithm),
    /// An HMAC algorithm was allowed for a key set, which holds public keys
    /// only: accepting it would open the door to key confusion.
    #[error(
        "algorithm {0:?} cannot be used with a key set: a key set verifies RS*, PS*, ES256, ES384 and EdDSA only"
    )]
    SymmetricWithKeySet(Algorithm),
    /// The key set's URL cannot be used.
    #[error("bad key set URL {url:?}: {reason}")]
    KeySetUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a token was refused. The messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token has expired (past `exp` plus the leeway).
    #[error("the token has expired")]
    Expired,
    /// The token is not valid yet (`nbf`).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Signed with an algorithm that is not allowed for this key.
    #[error("the token's algorithm is not allowed")]
    Algorithm,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// Not a JWS in compact form, or its claims are malformed.
    #[error("the token is malformed")]
    Malformed,
    /// The key set has no key with the token's `kid`.
    #[error("the key set has no key with the token's kid")]
    UnknownKey,
    /// The token has no `kid` and no key of the set fits its algorithm.
    #[error("the token has no kid and no key of the key set fits its algorithm")]
    NoSuitableKey,
    /// The key the token's `kid` names is of another type, or its `alg`
    /// differs from the token's.
    #[error("the token's algorithm does not fit the key its kid names")]
    KeyAlgorithm,
    /// The key set could not be fetched yet: nothing can be verified.
    #[error("the key set is unavailable (it could not be fetched yet): tokens cannot be verified")]
    KeySetUnavailable,
}

impl TokenError {
    /// Whether a fresher key set might verify the token: its key is not in
    /// the cache, or there is no cache yet.
    pub fn is_key_miss(&self) -> bool {
        matches!(
            self,
            Self::UnknownKey | Self::NoSuitableKey | Self::KeySetUnavailable
        )
    }
}

/// The key material of a [`Verifier`] built from one key.
#[derive(Debug, Clone)]
pub enum Key {
    /// An HMAC secret (HS256, HS384, HS512).
    Secret(Vec<u8>),
    /// A PEM-encoded public key: RSA (RS*, PS*), EC P-256 (ES256), EC
    /// P-384 (ES384) or Ed25519 (EdDSA).
    Pem(Vec<u8>),
}

/// The Mercure claims of a verified token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// `mercure.publish`: topics it may publish to. `None`: none.
    pub publish: Option<Vec<Selector>>,
    /// `mercure.subscribe`: topics whose private updates it may receive.
    pub subscribe: Option<Vec<Selector>>,
    /// `mercure.payload`, kept with the subscription.
    pub payload: Option<serde_json::Value>,
    /// `exp`, when the token has one.
    pub expires_at: Option<SystemTime>,
}

impl Claims {
    /// Whether the `mercure.publish` selectors match every one of `topics`
    /// (a missing or empty claim allows nothing).
    pub fn may_publish(&self, topics: &[impl AsRef<str>]) -> bool {
        match &self.publish {
            Some(selectors) if !selectors.is_empty() => topics
                .iter()
                .all(|t| selectors.iter().any(|s| s.matches(t.as_ref()))),
            _ => false,
        }
    }
}

/// The algorithms of each kind of key.
pub(crate) const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
pub(crate) const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
pub(crate) const EC_P256: &[Algorithm] = &[Algorithm::ES256];
pub(crate) const EC_P384: &[Algorithm] = &[Algorithm::ES384];
pub(crate) const ED: &[Algorithm] = &[Algorithm::EdDSA];

/// Seconds since the Unix epoch, for building tokens in tests and tools.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An algorithm name that cannot be allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmNameError {
    /// `none` (any case).
    #[error("JWT algorithm {0:?} is never allowed: tokens must be signed")]
    None(String),
    /// ES512 (ECDSA on P-521): the JWT library has no P-521.
    #[error(
        "JWT algorithm ES512 (ECDSA on P-521) is not supported: use ES256 (P-256) or ES384 (P-384)"
    )]
    Es512,
    /// Anything else.
    #[error(
        "unknown JWT algorithm {0:?}: use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
    )]
    Unknown(String),
}

/// Parses an algorithm name (`HS256`, `RS256`, `ES256`, `EdDSA`, …), with
/// an error that says why a name cannot be used.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, AlgorithmNameError> {
    match name.parse() {
        Ok(alg) => Ok(alg),
        Err(_) if name.eq_ignore_ascii_case("none") => {
            Err(AlgorithmNameError::None(name.to_owned()))
        }
        Err(_) if name == "ES512" => Err(AlgorithmNameError::Es512),
        Err(_) => Err(AlgorithmNameError::Unknown(name.to_owned())),
    }
}
