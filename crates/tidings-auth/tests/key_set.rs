//! Key sets: which key verifies which token, what a set may hold, and a set
//! read from a file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tidings_auth::{Jwks, JwksError, KeyError, KeySet, TokenError, Verifier};

fn key(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A signing key of the test keys, and the algorithm it signs with here.
fn signing(name: &str) -> EncodingKey {
    let pem = key(name);
    match name {
        "rsa.key" | "rsa2.key" => EncodingKey::from_rsa_pem(&pem).unwrap(),
        "ed.key" => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&pem).unwrap(),
    }
}

/// The public JWK of a test key, with `kid` and (optionally) `alg`.
fn jwk(name: &str, kid: Option<&str>, alg: Option<&str>) -> Value {
    let family_alg = match name {
        "rsa.key" | "rsa2.key" => Algorithm::RS256,
        "ed.key" => Algorithm::EdDSA,
        "ec384.key" => Algorithm::ES384,
        _ => Algorithm::ES256,
    };
    let public = Jwk::from_encoding_key(&signing(name), family_alg).unwrap();
    let mut value = serde_json::to_value(public).unwrap();
    let object = value.as_object_mut().unwrap();
    object.remove("alg");
    if let Some(kid) = kid {
        object.insert("kid".into(), kid.into());
    }
    if let Some(alg) = alg {
        object.insert("alg".into(), alg.into());
    }
    value
}

fn set(keys: &[Value]) -> Vec<u8> {
    json!({ "keys": keys }).to_string().into_bytes()
}

fn verifier(keys: &[Value]) -> Verifier {
    let jwks = Jwks::parse(&set(keys)).unwrap();
    Verifier::with_key_set(KeySet::fixed(jwks), None, Duration::from_secs(5)).unwrap()
}

fn token(alg: Algorithm, kid: Option<&str>, signer: &str) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(
        &header,
        &json!({ "mercure": { "publish": ["*"], "subscribe": ["a"] } }),
        &signing(signer),
    )
    .unwrap()
}

#[test]
fn keys_are_chosen_by_kid() {
    let v = verifier(&[
        jwk("rsa.key", Some("r"), None),
        jwk("ec.key", Some("e256"), None),
        jwk("ec384.key", Some("e384"), None),
        jwk("ed.key", Some("d"), None),
    ]);
    for (alg, kid, signer) in [
        (Algorithm::RS256, "r", "rsa.key"),
        (Algorithm::RS512, "r", "rsa.key"),
        (Algorithm::PS256, "r", "rsa.key"),
        (Algorithm::PS384, "r", "rsa.key"),
        (Algorithm::ES256, "e256", "ec.key"),
        (Algorithm::ES384, "e384", "ec384.key"),
        (Algorithm::EdDSA, "d", "ed.key"),
    ] {
        let claims = v.verify(&token(alg, Some(kid), signer)).unwrap();
        assert!(claims.may_publish(&["x"]), "{alg:?}");
    }
    // A kid that is not in the set.
    assert_eq!(
        v.verify(&token(Algorithm::RS256, Some("other"), "rsa.key")),
        Err(TokenError::UnknownKey)
    );
    // The kid names a key of another type.
    assert_eq!(
        v.verify(&token(Algorithm::ES256, Some("r"), "ec.key")),
        Err(TokenError::KeyAlgorithm)
    );
    // ES384 against the P-256 key its kid names.
    assert_eq!(
        v.verify(&token(Algorithm::ES384, Some("e256"), "ec384.key")),
        Err(TokenError::KeyAlgorithm)
    );
    // The right kid, signed by another key.
    assert_eq!(
        v.verify(&token(Algorithm::RS256, Some("r"), "rsa2.key")),
        Err(TokenError::Signature)
    );
}

#[test]
fn a_token_without_kid_is_tried_against_the_keys_that_fit() {
    let v = verifier(&[
        jwk("rsa2.key", Some("r2"), None),
        jwk("ec.key", Some("e"), None),
        jwk("rsa.key", None, Some("RS256")),
    ]);
    // The second RSA key verifies it, after the first did not.
    assert!(v.verify(&token(Algorithm::RS256, None, "rsa.key")).is_ok());
    assert!(v.verify(&token(Algorithm::RS256, None, "rsa2.key")).is_ok());
    assert!(v.verify(&token(Algorithm::ES256, None, "ec.key")).is_ok());
    // PS256 fits rsa2 (no alg) only: rsa.key's alg is RS256.
    assert!(v.verify(&token(Algorithm::PS256, None, "rsa2.key")).is_ok());
    assert_eq!(
        v.verify(&token(Algorithm::PS256, None, "rsa.key")),
        Err(TokenError::Signature)
    );
    // No Ed25519 key at all.
    assert_eq!(
        v.verify(&token(Algorithm::EdDSA, None, "ed.key")),
        Err(TokenError::NoSuitableKey)
    );
    assert!(TokenError::NoSuitableKey.is_key_miss());
}

#[test]
fn a_keys_alg_must_equal_the_tokens() {
    let v = verifier(&[
        jwk("rsa.key", Some("r"), Some("RS256")),
        jwk("ec.key", Some("e"), Some("ES256")),
    ]);
    assert!(
        v.verify(&token(Algorithm::RS256, Some("r"), "rsa.key"))
            .is_ok()
    );
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        assert_eq!(
            v.verify(&token(alg, Some("r"), "rsa.key")),
            Err(TokenError::KeyAlgorithm),
            "{alg:?}"
        );
        assert!(!TokenError::KeyAlgorithm.is_key_miss());
    }
    assert!(
        v.verify(&token(Algorithm::ES256, Some("e"), "ec.key"))
            .is_ok()
    );
}

#[test]
fn hmac_and_none_are_refused_with_a_key_set() {
    let secret = b"a-shared-secret-that-leaked-into-the-set";
    let mut entries = vec![jwk("rsa.key", Some("r"), None)];
    entries.push(json!({ "kty": "oct", "kid": "h", "k": "YS1zaGFyZWQtc2VjcmV0LXRoYXQtbGVha2VkLWludG8tdGhlLXNldA" }));
    let jwks = Jwks::parse(&set(&entries)).unwrap();
    assert_eq!(jwks.len(), 1, "the oct key is left out");
    assert!(jwks.skipped()[0].contains("oct"), "{:?}", jwks.skipped());
    let v = Verifier::with_key_set(KeySet::fixed(jwks), None, Duration::ZERO).unwrap();
    for kid in [Some("h"), Some("r"), None] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        let hs = encode(
            &header,
            &json!({ "mercure": { "publish": ["*"] } }),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert_eq!(v.verify(&hs), Err(TokenError::Algorithm), "{kid:?}");
    }
    // The classic confusion: HS256 signed with the RSA public key.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "mercure": { "publish": ["*"] } }),
        &EncodingKey::from_secret(&key("rsa.pub")),
    )
    .unwrap();
    assert_eq!(v.verify(&forged), Err(TokenError::Algorithm));
    let b64 = |s: &str| {
        use std::fmt::Write as _;
        // base64url without padding, enough for these ASCII headers.
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in s.as_bytes().chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                write!(
                    out,
                    "{}",
                    char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize])
                )
                .unwrap();
            }
        }
        out
    };
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","kid":"r"}"#),
        b64(r#"{"mercure":{"publish":["*"]}}"#)
    );
    assert_eq!(v.verify(&none), Err(TokenError::Algorithm));
    // HMAC cannot even be allowed for a key set.
    let jwks = Jwks::parse(&set(&[jwk("rsa.key", Some("r"), None)])).unwrap();
    assert!(matches!(
        Verifier::with_key_set(
            KeySet::fixed(jwks),
            Some(&[Algorithm::RS256, Algorithm::HS256]),
            Duration::ZERO
        ),
        Err(KeyError::SymmetricWithKeySet(Algorithm::HS256))
    ));
}

#[test]
fn the_allow_list_narrows_a_key_set() {
    let jwks = Jwks::parse(&set(&[
        jwk("rsa.key", Some("r"), None),
        jwk("ed.key", Some("d"), None),
    ]))
    .unwrap();
    let v = Verifier::with_key_set(
        KeySet::fixed(jwks),
        Some(&[Algorithm::EdDSA]),
        Duration::ZERO,
    )
    .unwrap();
    assert!(
        v.verify(&token(Algorithm::EdDSA, Some("d"), "ed.key"))
            .is_ok()
    );
    assert_eq!(
        v.verify(&token(Algorithm::RS256, Some("r"), "rsa.key")),
        Err(TokenError::Algorithm)
    );
}

#[test]
fn claims_and_time_apply_as_with_one_key() {
    let v = verifier(&[jwk("ec.key", Some("e"), None)]);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("e".into());
    let expired = encode(
        &header,
        &json!({ "exp": tidings_auth::unix_now() - 60, "mercure": { "publish": ["*"] } }),
        &signing("ec.key"),
    )
    .unwrap();
    assert_eq!(v.verify(&expired), Err(TokenError::Expired));
    let narrow = encode(
        &header,
        &json!({ "mercure": { "publish": ["https://x/{id}"], "payload": {"u": 1} } }),
        &signing("ec.key"),
    )
    .unwrap();
    let claims = v.verify(&narrow).unwrap();
    assert!(claims.may_publish(&["https://x/1"]));
    assert!(!claims.may_publish(&["https://y/1"]));
    assert_eq!(claims.payload, Some(json!({"u": 1})));
    assert!(v.verify("not.a.token").is_err());
}

#[test]
fn what_a_set_may_hold() {
    let good = jwk("rsa.key", Some("r"), None);
    let mut enc = jwk("rsa2.key", Some("enc"), None);
    enc["use"] = "enc".into();
    let mut wrap_only = jwk("rsa2.key", Some("wrap"), None);
    wrap_only["key_ops"] = json!(["wrapKey"]);
    let mut oaep = jwk("rsa2.key", Some("oaep"), None);
    oaep["alg"] = "RSA-OAEP".into();
    let mut misfit = jwk("ec.key", Some("misfit"), None);
    misfit["alg"] = "RS256".into();
    let small = json!({ "kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB" });
    let p521 = json!({ "kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA" });
    let short_ec = json!({ "kty": "EC", "kid": "short", "crv": "P-256", "x": "AAAA", "y": "AAAA" });
    let x25519 = json!({ "kty": "OKP", "kid": "x", "crv": "X25519", "x": "AAAA" });
    let odd = json!({ "kty": "XYZ", "kid": "odd" });
    let mut ok_ops = jwk("ed.key", Some("ops"), None);
    ok_ops["key_ops"] = json!(["verify"]);
    ok_ops["use"] = "sig".into();
    let jwks = Jwks::parse(&set(&[
        good, enc, wrap_only, oaep, misfit, small, p521, short_ec, x25519, odd, ok_ops,
    ]))
    .unwrap();
    assert_eq!(jwks.kids(), vec![Some("r"), Some("ops")]);
    let skipped = jwks.skipped().join("\n");
    for reason in [
        "\"enc\"): not a signature key",
        "\"wrap\"): not a signature key",
        "\"oaep\"): its alg \"RSA-OAEP\" is not a supported signature algorithm",
        "\"misfit\"): its alg \"RS256\" does not fit",
        "\"small\"): an RSA key of 17 bits",
        "\"p521\"): an EC P-521 key: ES512 is not supported",
        "\"short\"): an EC key whose coordinates",
        "\"x\"): a \"OKP\" key on curve \"X25519\", which is not supported",
        "\"odd\"): an unsupported key type \"XYZ\"",
    ] {
        assert!(skipped.contains(reason), "{reason} not in\n{skipped}");
    }

    assert!(matches!(Jwks::parse(b"nope"), Err(JwksError::Json(_))));
    assert_eq!(Jwks::parse(b"{}").unwrap_err(), JwksError::NotASet);
    assert_eq!(
        Jwks::parse(br#"{"keys": {}}"#).unwrap_err(),
        JwksError::NotASet
    );
    let only_secret = Jwks::parse(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).unwrap_err();
    assert!(matches!(&only_secret, JwksError::NoUsableKey(s) if s.len() == 1));
    assert!(only_secret.to_string().contains("oct"), "{only_secret}");
    assert!(matches!(
        Jwks::parse(br#"{"keys": []}"#),
        Err(JwksError::NoUsableKey(_))
    ));

    // At most MAX_KEYS keys are kept.
    let many: Vec<Value> = (0..Jwks::MAX_KEYS + 3)
        .map(|i| jwk("ed.key", Some(&format!("k{i}")), None))
        .collect();
    let jwks = Jwks::parse(&set(&many)).unwrap();
    assert_eq!(jwks.len(), Jwks::MAX_KEYS);
    assert_eq!(jwks.skipped().len(), 3);
}

#[test]
fn bad_key_set_urls_are_refused() {
    for url in [
        "ftp://x/jwks",
        "jwks.json",
        "file://host/jwks.json",
        "https://",
    ] {
        assert!(
            matches!(KeySet::new(url), Err(KeyError::KeySetUrl { .. })),
            "{url}"
        );
    }
    let set = KeySet::new("https://user:secret@idp.example/certs?x=1").unwrap();
    assert_eq!(set.source().as_deref(), Some("https://idp.example/certs"));
    assert!(
        set.current().is_none(),
        "nothing is fetched before the refresher runs"
    );
}

#[tokio::test]
async fn a_set_from_a_file_and_a_miss_before_the_first_fetch() {
    let dir = std::env::temp_dir().join(format!("tidings-auth-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, set(&[jwk("ed.key", Some("d"), None)])).unwrap();
    let url = format!("file://{}", path.display());
    let keys = KeySet::new(&url).unwrap();
    let v = Verifier::with_key_set(keys.clone(), None, Duration::ZERO).unwrap();
    let ed = token(Algorithm::EdDSA, Some("d"), "ed.key");
    // Without a refresher there is nothing to wait for.
    assert_eq!(v.verify(&ed), Err(TokenError::KeySetUnavailable));
    assert_eq!(
        v.verify_or_refetch(&ed).await,
        Err(TokenError::KeySetUnavailable)
    );
    let refresher = tokio::spawn(keys.refresher());
    assert!(keys.wait_first_fetch(Duration::from_secs(10)).await);
    assert!(v.verify(&ed).is_ok());
    refresher.abort();
    std::fs::remove_dir_all(&dir).unwrap();
}
