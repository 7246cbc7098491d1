//! Tokens of every supported kind, and the ones that must be refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use tidings_auth::{
    AlgorithmNameError, Claims, Key, KeyError, TokenError, Verifier, parse_algorithm, unix_now,
};

const SECRET: &[u8] = b"!ChangeThisMercureHubJWTSecretKey!";

fn key(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &serde_json::Value) -> String {
    encode(&Header::new(alg), claims, key).unwrap()
}

fn hmac() -> Verifier {
    Verifier::new(&Key::Secret(SECRET.to_vec()), None, Duration::from_secs(5)).unwrap()
}

fn mercure(publish: &[&str], subscribe: &[&str]) -> serde_json::Value {
    json!({ "mercure": { "publish": publish, "subscribe": subscribe, "payload": { "user": "u1" } } })
}

#[test]
fn hmac_tokens_and_claims() {
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        &mercure(&["https://x/{id}"], &["*"]),
    );
    let claims = hmac().verify(&token).unwrap();
    assert!(claims.may_publish(&["https://x/1"]));
    assert!(
        !claims.may_publish(&["https://x/1", "https://y/1"]),
        "every topic must be covered"
    );
    assert_eq!(claims.subscribe.as_ref().unwrap().len(), 1);
    assert_eq!(claims.payload, Some(json!({ "user": "u1" })));
    assert_eq!(claims.expires_at, None);
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(alg, &EncodingKey::from_secret(SECRET), &mercure(&[], &[]));
        let claims = hmac().verify(&token).unwrap();
        assert!(
            !claims.may_publish(&["a"]),
            "an empty publish claim allows nothing"
        );
    }
}

#[test]
fn the_mercure_conformance_suite_token_verifies() {
    // The token the Mercure conformance suite publishes with (HS256, no exp).
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdLCJzdWJzY3JpYmUiOlsiKiJdfX0.bVXdlWXwfw9ySx7-iV5OpUSHo34RkjUdVzDLBcc6l_g";
    let claims = hmac().verify(token).unwrap();
    assert!(claims.may_publish(&["anything"]));
}

#[test]
fn public_key_algorithms() {
    let cases = [
        (Algorithm::RS256, "rsa.key", "rsa.pub"),
        (Algorithm::PS384, "rsa.key", "rsa.pub"),
        (Algorithm::ES256, "ec.key", "ec.pub"),
        (Algorithm::ES384, "ec384.key", "ec384.pub"),
        (Algorithm::EdDSA, "ed.key", "ed.pub"),
    ];
    for (alg, private, public) in cases {
        let signing = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&key(private)).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&key(private)).unwrap(),
            _ => EncodingKey::from_rsa_pem(&key(private)).unwrap(),
        };
        let token = sign(alg, &signing, &mercure(&["a"], &[]));
        let verifier = Verifier::new(&Key::Pem(key(public)), None, Duration::ZERO).unwrap();
        assert!(
            verifier.verify(&token).unwrap().may_publish(&["a"]),
            "{alg:?}"
        );
        // The same token against the HMAC verifier: refused.
        assert_eq!(hmac().verify(&token), Err(TokenError::Algorithm), "{alg:?}");
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // The classic attack: sign HS256 with the public key as the secret.
    let public = key("rsa.pub");
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public),
        &mercure(&["*"], &["*"]),
    );
    let verifier = Verifier::new(&Key::Pem(public), None, Duration::ZERO).unwrap();
    assert_eq!(verifier.verify(&forged), Err(TokenError::Algorithm));
}

#[test]
fn alg_none_is_refused() {
    use std::io::Write as _;
    let b64 = |v: &serde_json::Value| {
        let mut out = Vec::new();
        write!(out, "{v}").unwrap();
        base64url(&out)
    };
    let token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&mercure(&["*"], &["*"]))
    );
    assert_eq!(hmac().verify(&token), Err(TokenError::Algorithm));
    let token = format!(
        "{}.{}.",
        b64(&json!({"alg": "None"})),
        b64(&mercure(&["*"], &["*"]))
    );
    assert!(hmac().verify(&token).is_err());
}

fn base64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[test]
fn allow_list_narrows_and_must_fit_the_key() {
    let narrow = Verifier::new(
        &Key::Secret(SECRET.to_vec()),
        Some(&[Algorithm::HS256]),
        Duration::ZERO,
    )
    .unwrap();
    let token = sign(
        Algorithm::HS512,
        &EncodingKey::from_secret(SECRET),
        &mercure(&["a"], &[]),
    );
    assert_eq!(narrow.verify(&token), Err(TokenError::Algorithm));
    assert!(matches!(
        Verifier::new(
            &Key::Secret(SECRET.to_vec()),
            Some(&[Algorithm::RS256]),
            Duration::ZERO
        ),
        Err(KeyError::AlgorithmMismatch(Algorithm::RS256))
    ));
    assert!(matches!(
        Verifier::new(&Key::Secret(Vec::new()), None, Duration::ZERO),
        Err(KeyError::EmptySecret)
    ));
    assert!(matches!(
        Verifier::new(&Key::Pem(b"not a key".to_vec()), None, Duration::ZERO),
        Err(KeyError::UnreadablePem)
    ));
}

#[test]
fn time_claims_with_leeway() {
    let now = unix_now();
    let enc = EncodingKey::from_secret(SECRET);
    let expired = sign(
        Algorithm::HS256,
        &enc,
        &json!({ "exp": now - 60, "mercure": {} }),
    );
    assert_eq!(hmac().verify(&expired), Err(TokenError::Expired));
    let barely = sign(
        Algorithm::HS256,
        &enc,
        &json!({ "exp": now - 2, "mercure": {} }),
    );
    assert!(hmac().verify(&barely).is_ok(), "within the 5 s leeway");
    let future = sign(
        Algorithm::HS256,
        &enc,
        &json!({ "nbf": now + 60, "mercure": {} }),
    );
    assert_eq!(hmac().verify(&future), Err(TokenError::NotYetValid));
    let valid = sign(
        Algorithm::HS256,
        &enc,
        &json!({ "exp": now + 60, "nbf": now - 1, "mercure": {} }),
    );
    let claims: Claims = hmac().verify(&valid).unwrap();
    assert!(claims.expires_at.is_some());
}

#[test]
fn tampering_and_garbage() {
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        &mercure(&["a"], &[]),
    );
    let other = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another secret"),
        &mercure(&["a"], &[]),
    );
    assert_eq!(hmac().verify(&other), Err(TokenError::Signature));
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_claims = base64url(mercure(&["*"], &["*"]).to_string().as_bytes());
    parts[1] = &forged_claims;
    assert_eq!(hmac().verify(&parts.join(".")), Err(TokenError::Signature));
    for garbage in ["", "a", "a.b", "a.b.c", "....", "\u{0}"] {
        assert!(hmac().verify(garbage).is_err(), "{garbage:?}");
    }
}

#[test]
fn an_ec_keys_curve_decides_its_algorithm() {
    // A P-256 key verifies ES256 only; ES384 cannot even be allowed for it.
    assert!(matches!(
        Verifier::new(
            &Key::Pem(key("ec.pub")),
            Some(&[Algorithm::ES384]),
            Duration::ZERO
        ),
        Err(KeyError::AlgorithmMismatch(Algorithm::ES384))
    ));
    let p256 = Verifier::new(&Key::Pem(key("ec.pub")), None, Duration::ZERO).unwrap();
    let es384 = sign(
        Algorithm::ES384,
        &EncodingKey::from_ec_pem(&key("ec384.key")).unwrap(),
        &mercure(&["a"], &[]),
    );
    assert_eq!(p256.verify(&es384), Err(TokenError::Algorithm));
    // P-521 (ES512) is not supported: a clear error, not a key that fails
    // every token.
    let err = Verifier::new(&Key::Pem(key("ec521.pub")), None, Duration::ZERO).unwrap_err();
    assert!(matches!(err, KeyError::UnsupportedCurve(_)));
    assert!(err.to_string().contains("P-521"), "{err}");
}

#[test]
fn algorithm_names() {
    assert_eq!(parse_algorithm("RS256"), Ok(Algorithm::RS256));
    assert_eq!(parse_algorithm("EdDSA"), Ok(Algorithm::EdDSA));
    assert_eq!(parse_algorithm("ES512"), Err(AlgorithmNameError::Es512));
    assert!(
        AlgorithmNameError::Es512
            .to_string()
            .contains("use ES256 (P-256) or ES384 (P-384)")
    );
    assert!(matches!(
        parse_algorithm("none"),
        Err(AlgorithmNameError::None(_))
    ));
    assert!(matches!(
        parse_algorithm("NONE"),
        Err(AlgorithmNameError::None(_))
    ));
    assert!(matches!(
        parse_algorithm("HS1"),
        Err(AlgorithmNameError::Unknown(_))
    ));
}
