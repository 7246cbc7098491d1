//! Verifying Mercure JWTs.
//!
//! A [`Verifier`] holds one key and the algorithms it accepts: the
//! allow-list is explicit, `none` is never accepted, and an HMAC key never
//! verifies a public-key algorithm or the reverse (no algorithm confusion).
//! `exp` and `nbf` are honoured with a small leeway. Tokens carry the
//! Mercure claims: `mercure.publish` and `mercure.subscribe` (arrays of
//! topic selectors) and `mercure.payload` (free JSON).
//!
//! No HTTP here: where a token comes from is the HTTP side's business.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tidings_selector::Selector;

pub use jsonwebtoken::Algorithm as JwtAlgorithm;

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM file holds no RSA, EC or Ed25519 public key we can read.
    #[error("not an RSA, EC or Ed25519 public key in PEM form")]
    UnreadablePem,
    /// The secret is empty.
    #[error("an HMAC secret must not be empty")]
    EmptySecret,
    /// An allowed algorithm does not fit the key.
    #[error("algorithm {0:?} cannot be used with this kind of key")]
    AlgorithmMismatch(Algorithm),
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
}

/// The key material of a [`Verifier`].
#[derive(Debug, Clone)]
pub enum Key {
    /// An HMAC secret (HS256, HS384, HS512).
    Secret(Vec<u8>),
    /// A PEM-encoded public key: RSA (RS*, PS*), EC (ES256, ES384) or
    /// Ed25519 (EdDSA).
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

/// Verifies tokens signed with one key.
#[derive(Clone)]
pub struct Verifier {
    /// The key.
    key: DecodingKey,
    /// Allowed algorithms, leeway, and which time claims are checked.
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .field("leeway", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];
const ED: &[Algorithm] = &[Algorithm::EdDSA];

impl Verifier {
    /// A verifier for `key`. `allowed` narrows the algorithms (default:
    /// every algorithm of the key's family); an algorithm of another
    /// family is an error. `leeway` applies to `exp` and `nbf`.
    pub fn new(
        key: &Key,
        allowed: Option<&[Algorithm]>,
        leeway: Duration,
    ) -> Result<Self, KeyError> {
        let (key, family) = match key {
            Key::Secret(secret) if secret.is_empty() => return Err(KeyError::EmptySecret),
            Key::Secret(secret) => (DecodingKey::from_secret(secret), HMAC),
            Key::Pem(pem) => {
                if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                    (key, RSA)
                } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
                    (key, EC)
                } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
                    (key, ED)
                } else {
                    return Err(KeyError::UnreadablePem);
                }
            }
        };
        let algorithms = match allowed {
            None => family.to_vec(),
            Some(allowed) => {
                if let Some(bad) = allowed.iter().find(|a| !family.contains(a)) {
                    return Err(KeyError::AlgorithmMismatch(*bad));
                }
                allowed.to_vec()
            }
        };
        let mut validation = Validation::new_for_family(
            algorithms
                .first()
                .map_or(jsonwebtoken::AlgorithmFamily::Hmac, |a| a.family()),
        );
        validation.algorithms = algorithms;
        validation.leeway = leeway.as_secs();
        // Mercure tokens need not expire; when they say when, it counts.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        Ok(Self { key, validation })
    }

    /// Verifies `token` and reads its Mercure claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<RawClaims>(token.as_bytes(), &self.key, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => TokenError::Expired,
                    K::ImmatureSignature => TokenError::NotYetValid,
                    K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
                        TokenError::Algorithm
                    }
                    K::InvalidSignature => TokenError::Signature,
                    _ => TokenError::Malformed,
                }
            })?;
        let claims = data.claims;
        let mercure = claims.mercure.unwrap_or_default();
        Ok(Claims {
            publish: mercure
                .publish
                .map(|v| v.iter().map(|s| Selector::parse(s)).collect()),
            subscribe: mercure
                .subscribe
                .map(|v| v.iter().map(|s| Selector::parse(s)).collect()),
            payload: mercure.payload,
            expires_at: claims
                .exp
                .map(|secs| UNIX_EPOCH + Duration::from_secs(secs)),
        })
    }
}

/// The claims as they are in the token.
#[derive(Debug, Deserialize)]
struct RawClaims {
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    mercure: Option<RawMercure>,
}

#[derive(Debug, Default, Deserialize)]
struct RawMercure {
    #[serde(default)]
    publish: Option<Vec<String>>,
    #[serde(default)]
    subscribe: Option<Vec<String>>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

/// Seconds since the Unix epoch, for building tokens in tests and tools.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses an algorithm name (`HS256`, `RS256`, `ES256`, `EdDSA`, …).
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    name.parse().ok()
}
