//! [`Verifier`]: checks a token's signature, algorithm and time claims
//! against one key or a key set, and reads its Mercure claims.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use tidings_selector::Selector;

use crate::jwks::KeySet;
use crate::{Claims, EC_P256, EC_P384, ED, HMAC, Key, KeyError, RSA, TokenError};

/// Verifies tokens signed with one key, or with the keys of a key set.
#[derive(Clone)]
pub struct Verifier {
    /// Where the keys are.
    keys: Keys,
    /// Allowed algorithms, leeway, and which time claims are checked.
    validation: Validation,
}

/// The keys of a [`Verifier`].
#[derive(Clone)]
enum Keys {
    /// One key, from the command line.
    One(DecodingKey),
    /// A JWK Set: keys picked by the token's `kid` and algorithm.
    Set {
        /// The set.
        set: KeySet,
        /// One validation per allowed algorithm: jsonwebtoken wants every
        /// algorithm of a validation to be of the key's family, and a set
        /// mixes families.
        per_algorithm: Vec<(Algorithm, Validation)>,
    },
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Verifier");
        if let Keys::Set { set, .. } = &self.keys {
            s.field("key_set", set);
        }
        s.field("algorithms", &self.validation.algorithms)
            .field("leeway", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

/// The algorithms a key set may verify by default: every public-key one.
const PUBLIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Verifier {
    /// A verifier for `key`. `allowed` narrows the algorithms (default:
    /// every algorithm of the key's kind); an algorithm of another kind is
    /// an error. `leeway` applies to `exp` and `nbf`.
    pub fn new(
        key: &Key,
        allowed: Option<&[Algorithm]>,
        leeway: Duration,
    ) -> Result<Self, KeyError> {
        let (key, family) = match key {
            Key::Secret(secret) if secret.is_empty() => return Err(KeyError::EmptySecret),
            Key::Secret(secret) => (DecodingKey::from_secret(secret), HMAC),
            Key::Pem(pem) => pem_key(pem)?,
        };
        let algorithms = narrow(family, allowed).map_err(KeyError::AlgorithmMismatch)?;
        Ok(Self {
            keys: Keys::One(key),
            validation: validation(algorithms, leeway),
        })
    }

    /// A verifier for the keys of `set`. `allowed` narrows the algorithms
    /// (default: every public-key algorithm: RS*, PS*, ES256, ES384,
    /// EdDSA); HMAC algorithms are an error, as a key set holds public keys
    /// only.
    pub fn with_key_set(
        set: KeySet,
        allowed: Option<&[Algorithm]>,
        leeway: Duration,
    ) -> Result<Self, KeyError> {
        let algorithms = narrow(PUBLIC, allowed).map_err(KeyError::SymmetricWithKeySet)?;
        let per_algorithm = algorithms
            .iter()
            .map(|alg| (*alg, validation(vec![*alg], leeway)))
            .collect();
        Ok(Self {
            keys: Keys::Set { set, per_algorithm },
            validation: validation(algorithms, leeway),
        })
    }

    /// The key set, when the keys come from one.
    pub fn key_set(&self) -> Option<&KeySet> {
        match &self.keys {
            Keys::Set { set, .. } => Some(set),
            Keys::One(_) => None,
        }
    }

    /// Verifies `token` and reads its Mercure claims, with the keys at hand:
    /// a key set is looked up in its cache, never fetched.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match &self.keys {
            Keys::One(key) => decode(token, key, &self.validation),
            Keys::Set { set, per_algorithm } => verify_with_set(set, per_algorithm, token),
        }
    }

    /// Like [`verify`](Self::verify), but when the token's key is not in a
    /// key set's cache ([`TokenError::is_key_miss`]), asks for a refetch
    /// and tries once more after it. Refetches for misses happen at most
    /// once per [`KeySet::MISS_INTERVAL`] and concurrent misses share one,
    /// so a flood of tokens with made-up `kid`s never becomes a flood of
    /// fetches; a miss inside the interval is refused at once.
    pub async fn verify_or_refetch(&self, token: &str) -> Result<Claims, TokenError> {
        let result = self.verify(token);
        match (&self.keys, &result) {
            (Keys::Set { set, .. }, Err(err)) if err.is_key_miss() => {
                if set.refetch_after_miss().await {
                    self.verify(token)
                } else {
                    result
                }
            }
            _ => result,
        }
    }
}

/// Verifies `token` with the keys of `set` that its `kid` and algorithm
/// pick, from the cache only.
fn verify_with_set(
    set: &KeySet,
    per_algorithm: &[(Algorithm, Validation)],
    token: &str,
) -> Result<Claims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| header_error(token))?;
    let Some((_, validation)) = per_algorithm.iter().find(|(alg, _)| *alg == header.alg) else {
        return Err(TokenError::Algorithm);
    };
    let keys = set.current().ok_or(TokenError::KeySetUnavailable)?;
    for key in keys.candidates(header.kid.as_deref(), header.alg)? {
        match decode(token, key, validation) {
            // Not this key: try the next one that fits.
            Err(TokenError::Signature) => {}
            // Verified, or verified and refused for its claims.
            other => return other,
        }
    }
    Err(TokenError::Signature)
}

/// The allowed algorithms: `allowed` when every one is in `family`, else the
/// first one that is not.
fn narrow(
    family: &[Algorithm],
    allowed: Option<&[Algorithm]>,
) -> Result<Vec<Algorithm>, Algorithm> {
    match allowed {
        None => Ok(family.to_vec()),
        Some(allowed) => match allowed.iter().find(|a| !family.contains(a)) {
            Some(bad) => Err(*bad),
            None => Ok(allowed.to_vec()),
        },
    }
}

/// Reads a PEM public key, with the algorithms its kind allows. An EC key's
/// curve decides its one algorithm (P-256: ES256, P-384: ES384).
fn pem_key(pem: &[u8]) -> Result<(DecodingKey, &'static [Algorithm]), KeyError> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((key, RSA));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // The SEC1 point: 0x04 and two coordinates, or 0x02/0x03 and one.
        let family = match key.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65 | 33) => EC_P256,
            Ok(97 | 49) => EC_P384,
            Ok(133 | 67) => return Err(KeyError::UnsupportedCurve("P-521 (ES512)")),
            _ => return Err(KeyError::UnreadablePem),
        };
        return Ok((key, family));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((key, ED));
    }
    Err(KeyError::UnreadablePem)
}

fn validation(algorithms: Vec<Algorithm>, leeway: Duration) -> Validation {
    let mut validation = Validation::new_for_family(
        algorithms
            .first()
            .map_or(AlgorithmFamily::Hmac, |a| a.family()),
    );
    validation.algorithms = algorithms;
    validation.leeway = leeway.as_secs();
    // Mercure tokens need not expire; when they say when, it counts.
    validation.required_spec_claims.clear();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation
}

/// Verifies `token` with `key` and reads its Mercure claims.
fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, TokenError> {
    let data =
        jsonwebtoken::decode::<RawClaims>(token.as_bytes(), key, validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
                    TokenError::Algorithm
                }
                // The key cannot verify this signature.
                K::InvalidSignature
                | K::InvalidEcdsaKey
                | K::InvalidEddsaKey
                | K::InvalidRsaKey(_)
                | K::InvalidKeyFormat => TokenError::Signature,
                _ => header_error(token),
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

/// Why a token that could not be read was refused: its header names an
/// algorithm that does not exist here (`none`, `ES512`, …), or it is
/// malformed.
fn header_error(token: &str) -> TokenError {
    let alg = token
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok())
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|header| header.get("alg")?.as_str().map(str::to_owned));
    match alg {
        Some(alg) if alg.parse::<Algorithm>().is_err() => TokenError::Algorithm,
        _ => TokenError::Malformed,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_errors_name_unknown_algorithms() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
        assert_eq!(header_error(&none), TokenError::Algorithm);
        let es512 = format!("{}.{}.c2ln", b64(r#"{"alg":"ES512"}"#), b64("{}"));
        assert_eq!(header_error(&es512), TokenError::Algorithm);
        let no_alg = format!("{}.{}.c2ln", b64(r#"{"typ":"JWT"}"#), b64("{}"));
        assert_eq!(header_error(&no_alg), TokenError::Malformed);
        assert_eq!(header_error("garbage"), TokenError::Malformed);
    }
}
