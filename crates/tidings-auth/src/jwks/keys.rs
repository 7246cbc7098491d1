//! A JWK Set (RFC 7517) read into the keys that may verify tokens, and the
//! rules that pick the keys for one token. Pure: no I/O, no clock.
//!
//! Kept: RSA keys of 2048 bits or more (RS256/384/512, PS256/384/512), EC
//! keys on P-256 (ES256) and P-384 (ES384), Ed25519 keys (EdDSA); a key's
//! `alg`, when present, narrows it to that one algorithm. Left out, with
//! the reason: symmetric (`oct`) keys (a key set is public: a secret in it
//! would let anyone sign), keys meant for encryption (`use` other than
//! `sig`, or `key_ops` without `verify`), other curves and key types
//! (P-521 too: ES512 is not supported), and anything unreadable.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::{EC_P256, EC_P384, ED, RSA, TokenError};

/// The smallest RSA modulus kept, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Why a key set was not taken. The keys in use stay as they were.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The document is not JSON.
    #[error("the key set is not JSON: {0}")]
    Json(String),
    /// JSON, but without a `keys` array.
    #[error("not a JWK Set: no \"keys\" array")]
    NotASet,
    /// No entry can verify tokens.
    #[error("the key set holds no usable signature key{}", skipped_list(.0))]
    NoUsableKey(Vec<String>),
}

fn skipped_list(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (left out: {})", skipped.join("; "))
    }
}

/// The usable keys of a JWK Set.
#[derive(Clone)]
pub struct Jwks {
    /// The keys that may verify tokens, in the set's order.
    keys: Vec<SetKey>,
    /// Why each other entry of the set was left out, for the logs.
    skipped: Vec<String>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("kids", &self.kids())
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// One usable key.
#[derive(Clone)]
struct SetKey {
    /// Its `kid`: a token that names it is verified with this key only.
    kid: Option<String>,
    /// What it verifies: the algorithms of its type and curve, or exactly
    /// its `alg` when it has one.
    algorithms: &'static [Algorithm],
    /// The key material.
    key: DecodingKey,
}

impl Jwks {
    /// Most keys kept from one set. A token without `kid` is tried against
    /// every key that fits its algorithm: this bounds what a bad one costs.
    pub const MAX_KEYS: usize = 32;

    /// Reads a JWK Set document (`{"keys": [...]}`), keeping the keys that
    /// can verify tokens (at most [`MAX_KEYS`](Self::MAX_KEYS)). A set with none is an
    /// error.
    pub fn parse(json: &[u8]) -> Result<Self, JwksError> {
        let doc: Value =
            serde_json::from_slice(json).map_err(|e| JwksError::Json(e.to_string()))?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotASet)?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let name = match entry.get("kid").and_then(Value::as_str) {
                Some(kid) => format!("key {index} (kid {kid:?})"),
                None => format!("key {index}"),
            };
            if keys.len() == Self::MAX_KEYS {
                skipped.push(format!("{name}: more than {} keys", Self::MAX_KEYS));
                continue;
            }
            match usable(entry) {
                Ok(key) => keys.push(key),
                Err(why) => skipped.push(format!("{name}: {why}")),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey(skipped));
        }
        Ok(Self { keys, skipped })
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable (never, for a parsed set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The usable keys' `kid`s, in order (`None` for a key without one).
    pub fn kids(&self) -> Vec<Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref()).collect()
    }

    /// Why the other entries were left out.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The keys to try for a token with `kid` signed with `alg`: with a
    /// `kid`, the keys of that `kid` that fit `alg` (none with that `kid`:
    /// [`TokenError::UnknownKey`]; none that fits: [`TokenError::KeyAlgorithm`]);
    /// without, every key that fits `alg` (none: [`TokenError::NoSuitableKey`]).
    pub(crate) fn candidates(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<&DecodingKey>, TokenError> {
        let fits = |k: &&SetKey| k.algorithms.contains(&alg);
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Err(TokenError::UnknownKey);
                }
                let keys: Vec<_> = named.filter(fits).map(|k| &k.key).collect();
                if keys.is_empty() {
                    return Err(TokenError::KeyAlgorithm);
                }
                Ok(keys)
            }
            None => {
                let keys: Vec<_> = self.keys.iter().filter(fits).map(|k| &k.key).collect();
                if keys.is_empty() {
                    return Err(TokenError::NoSuitableKey);
                }
                Ok(keys)
            }
        }
    }
}

/// One entry of the set as a usable key, or why it is not one.
fn usable(entry: &Value) -> Result<SetKey, String> {
    let kty = entry.get("kty").and_then(Value::as_str).unwrap_or_default();
    if kty == "oct" {
        return Err(
            "a symmetric (oct) key, refused: a key set is public and must hold public keys only"
                .to_owned(),
        );
    }
    let jwk: Jwk =
        serde_json::from_value(entry.clone()).map_err(|e| format!("unreadable JWK: {e}"))?;
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return Err("not a signature key (\"use\" is not \"sig\")".to_owned());
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("not a signature key (\"key_ops\" lacks \"verify\")".to_owned());
    }
    let (family, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let bits = modulus_bits(&rsa.n).ok_or("an RSA key with an unreadable modulus")?;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "an RSA key of {bits} bits, below the {MIN_RSA_BITS} accepted"
                ));
            }
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e)
                .map_err(|e| format!("an unreadable RSA key: {e}"))?;
            (RSA, key)
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (family, size) = match ec.curve {
                EllipticCurve::P256 => (EC_P256, 32),
                EllipticCurve::P384 => (EC_P384, 48),
                EllipticCurve::P521 => {
                    return Err("an EC P-521 key: ES512 is not supported".to_owned());
                }
                _ => return Err("an EC key on an unsupported curve".to_owned()),
            };
            if decoded_len(&ec.x) != Some(size) || decoded_len(&ec.y) != Some(size) {
                return Err("an EC key whose coordinates do not fit its curve".to_owned());
            }
            let key = DecodingKey::from_ec_components(&ec.x, &ec.y)
                .map_err(|e| format!("an unreadable EC key: {e}"))?;
            (family, key)
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("an OKP key on a curve other than Ed25519".to_owned());
            }
            if decoded_len(&okp.x) != Some(32) {
                return Err("an Ed25519 key that is not 32 bytes".to_owned());
            }
            let key = DecodingKey::from_ed_components(&okp.x)
                .map_err(|e| format!("an unreadable Ed25519 key: {e}"))?;
            (ED, key)
        }
        _ => {
            return Err(match entry.get("crv").and_then(Value::as_str) {
                Some(crv) => format!("a {kty:?} key on curve {crv:?}, which is not supported"),
                None => format!("an unsupported key type {kty:?}"),
            });
        }
    };
    let algorithms = match entry.get("alg").and_then(Value::as_str) {
        None => family,
        Some(name) => {
            let alg: Algorithm = name
                .parse()
                .map_err(|_| format!("its alg {name:?} is not a supported signature algorithm"))?;
            let position = family
                .iter()
                .position(|a| *a == alg)
                .ok_or_else(|| format!("its alg {name:?} does not fit its key type"))?;
            family
                .get(position..=position)
                .ok_or("its alg does not fit its key type")?
        }
    };
    Ok(SetKey {
        kid: jwk.common.key_id,
        algorithms,
        key,
    })
}

/// Decodes base64url, with or without padding.
fn decode_b64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

fn decoded_len(text: &str) -> Option<usize> {
    decode_b64(text).map(|bytes| bytes.len())
}

/// The size of an RSA modulus in bits, leading zeros not counted.
fn modulus_bits(n: &str) -> Option<usize> {
    let bytes = decode_b64(n)?;
    let first = bytes.iter().position(|b| *b != 0)?;
    let top = bytes.get(first)?;
    Some((bytes.len() - first - 1) * 8 + (8 - top.leading_zeros() as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_sizes() {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(modulus_bits(&b64(&[0x01])), Some(1));
        assert_eq!(modulus_bits(&b64(&[0x00, 0x80, 0x00])), Some(16));
        assert_eq!(modulus_bits(&b64(&[0xff; 256])), Some(2048));
        assert_eq!(modulus_bits(&b64(&[0x7f; 256])), Some(2047));
        assert_eq!(modulus_bits(&b64(&[0; 4])), None);
        assert_eq!(modulus_bits("!!"), None);
    }
}
