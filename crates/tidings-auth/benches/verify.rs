//! What verifying a token costs with one key and with a key set (the
//! cached lookup on the hot path): `cargo bench -p tidings-auth`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use divan::{Bencher, black_box};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tidings_auth::{Jwks, Key, KeySet, Verifier};

fn main() {
    divan::main();
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn signing(alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::RS512 => EncodingKey::from_rsa_pem(&pem("rsa2.key")).unwrap(),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem("rsa.key")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem("ec.key")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem("ed.key")).unwrap(),
        _ => EncodingKey::from_secret(b"a-secret-for-benchmarks"),
    }
}

fn token(alg: Algorithm, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let claims = serde_json::json!({ "mercure": { "publish": ["https://example.com/books/{id}"], "subscribe": ["*"] } });
    jsonwebtoken::encode(&header, &claims, &signing(alg)).unwrap()
}

/// One key, as `--jwt-key` or `--jwt-key-file` give it.
fn one_key(alg: Algorithm) -> Verifier {
    let key = match alg {
        Algorithm::RS256 => Key::Pem(pem("rsa.pub")),
        Algorithm::ES256 => Key::Pem(pem("ec.pub")),
        Algorithm::EdDSA => Key::Pem(pem("ed.pub")),
        _ => Key::Secret(b"a-secret-for-benchmarks".to_vec()),
    };
    Verifier::new(&key, None, Duration::from_secs(5)).unwrap()
}

/// A set like a provider's: four RSA keys of other material first (the
/// second test RSA key under four kids), then one key of each kind.
fn key_set() -> Verifier {
    let mut keys = Vec::new();
    for i in 0..4 {
        let mut jwk = Jwk::from_encoding_key(&signing(Algorithm::RS512), Algorithm::RS256).unwrap();
        jwk.common.key_id = Some(format!("old-{i}"));
        jwk.common.key_algorithm = None;
        keys.push(jwk);
    }
    for (kid, alg) in [
        ("rsa", Algorithm::RS256),
        ("ec", Algorithm::ES256),
        ("ed", Algorithm::EdDSA),
    ] {
        let mut jwk = Jwk::from_encoding_key(&signing(alg), alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        keys.push(jwk);
    }
    let json = serde_json::json!({ "keys": keys }).to_string();
    let set = KeySet::fixed(Jwks::parse(json.as_bytes()).unwrap());
    Verifier::with_key_set(set, None, Duration::from_secs(5)).unwrap()
}

fn bench(bencher: Bencher<'_, '_>, verifier: &Verifier, token: &str) {
    assert!(verifier.verify(token).is_ok());
    bencher.bench_local(|| black_box(verifier).verify(black_box(token)));
}

#[divan::bench(args = ["HS256", "RS256", "ES256", "EdDSA"])]
fn one_key_by_alg(bencher: Bencher<'_, '_>, alg: &str) {
    let alg: Algorithm = alg.parse().unwrap();
    bench(bencher, &one_key(alg), &token(alg, None));
}

#[divan::bench(args = ["RS256", "ES256", "EdDSA"])]
fn key_set_by_kid(bencher: Bencher<'_, '_>, alg: &str) {
    let alg: Algorithm = alg.parse().unwrap();
    let kid = match alg {
        Algorithm::RS256 => "rsa",
        Algorithm::ES256 => "ec",
        _ => "ed",
    };
    bench(bencher, &key_set(), &token(alg, Some(kid)));
}

/// A token without `kid`: four RSA keys fail before the fifth verifies.
#[divan::bench]
fn key_set_rs256_without_kid(bencher: Bencher<'_, '_>) {
    bench(bencher, &key_set(), &token(Algorithm::RS256, None));
}

/// What a token with a made-up `kid` costs when no refetch is due: a
/// cached refusal.
#[divan::bench]
fn key_set_unknown_kid(bencher: Bencher<'_, '_>) {
    let verifier = key_set();
    let token = token(Algorithm::ES256, Some("made-up"));
    assert!(verifier.verify(&token).is_err());
    bencher.bench_local(|| black_box(&verifier).verify(black_box(&token)));
}

/// An RS256 token checked against another RSA key: what each key that
/// does not verify costs a token without `kid`.
#[divan::bench]
fn one_key_rs256_wrong_key(bencher: Bencher<'_, '_>) {
    let verifier = Verifier::new(&Key::Pem(pem("rsa2.pub")), None, Duration::from_secs(5)).unwrap();
    let token = token(Algorithm::RS256, None);
    assert!(verifier.verify(&token).is_err());
    bencher.bench_local(|| black_box(&verifier).verify(black_box(&token)));
}
