//! Where the hub's keys come from, against the real binary: JWK Sets served
//! by a key set server that each test runs on loopback (keys by `kid`,
//! algorithms, rotation, refetch limits, a set unavailable at start,
//! `file://`), HMAC secrets read from files, and the start-up errors of
//! key flags that do not go together.
//!
//! Tokens that must fail are sent from addresses of their own in
//! 127.0.0.0/8, so that the hub's brake on repeated failures (per address)
//! does not slow the test down.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use support::{HUB, TempDir, TestHub, WAIT, b64, refused_to_start, target};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket};

fn key_path(name: &str) -> String {
    format!(
        "{}/crates/tidings-auth/tests/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A private test key, for signing.
fn signing(name: &str) -> EncodingKey {
    let pem = std::fs::read(key_path(name)).unwrap();
    match name {
        "rsa.key" | "rsa2.key" => EncodingKey::from_rsa_pem(&pem).unwrap(),
        "ed.key" => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&pem).unwrap(),
    }
}

/// The public JWK of a test key, with `kid` and, when given, `alg`.
fn jwk(name: &str, kid: &str, alg: Option<&str>) -> Value {
    let family = match name {
        "rsa.key" | "rsa2.key" => Algorithm::RS256,
        "ed.key" => Algorithm::EdDSA,
        "ec384.key" => Algorithm::ES384,
        _ => Algorithm::ES256,
    };
    let mut value =
        serde_json::to_value(Jwk::from_encoding_key(&signing(name), family).unwrap()).unwrap();
    let object = value.as_object_mut().unwrap();
    object.remove("alg");
    object.insert("kid".into(), kid.into());
    object.insert("use".into(), "sig".into());
    if let Some(alg) = alg {
        object.insert("alg".into(), alg.into());
    }
    value
}

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// A token signed by `signer` with `alg`, naming `kid` (if any).
fn token(alg: Algorithm, kid: Option<&str>, signer: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, signer).unwrap()
}

fn publisher_claims() -> Value {
    json!({ "mercure": { "publish": ["*"], "subscribe": ["*"] } })
}

/// A token that may publish and subscribe to everything.
fn all(alg: Algorithm, kid: Option<&str>, signer: &str) -> String {
    token(alg, kid, &signing(signer), &publisher_claims())
}

/// What the key set server answers, and how often it was asked.
struct KeySetServer {
    /// The JWK Set it serves.
    body: Mutex<String>,
    /// Its `Cache-Control`.
    cache_control: String,
    /// How long it takes to answer (so that concurrent misses overlap).
    delay: Duration,
    /// Requests received.
    hits: AtomicUsize,
    /// Where it listens.
    addr: SocketAddr,
}

impl KeySetServer {
    /// Starts a server on a free loopback port.
    async fn start(body: String, cache_control: &str, delay: Duration) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, body, cache_control, delay)
    }

    fn serve(
        listener: TcpListener,
        body: String,
        cache_control: &str,
        delay: Duration,
    ) -> Arc<Self> {
        let server = Arc::new(Self {
            body: Mutex::new(body),
            cache_control: cache_control.to_owned(),
            delay,
            hits: AtomicUsize::new(0),
            addr: listener.local_addr().unwrap(),
        });
        let weak = Arc::downgrade(&server);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let Some(server) = weak.upgrade() else { return };
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 2048];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    server.hits.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(server.delay).await;
                    let body = server.body.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\nCache-Control: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        server.cache_control,
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("http://{}/realms/test/certs", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn set(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }
}

/// A fresh source address in 127.0.0.0/8 (never 127.0.0.1).
fn fresh_source() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 10 + (n >> 16) as u8, (n >> 8) as u8, n as u8)
}

/// A response head, and the body when it has a length (event streams are
/// left open and unread).
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn error(&self) -> String {
        let value: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)));
        value["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error string in {value}"))
            .to_owned()
    }
}

/// One request from a fresh loopback address.
async fn request(hub: &TestHub, method: &str, target: &str, token: Option<&str>) -> Answer {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((fresh_source(), 0))).unwrap();
    let mut stream = socket.connect(hub.addr).await.unwrap();
    let body = if method == "POST" {
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=x"
    } else {
        ""
    };
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        hub.addr,
        body.len()
    );
    if method == "POST" {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT * 2, async {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(len)) = response.parse(&raw) {
                let status = response.code.unwrap();
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| {
                        std::str::from_utf8(h.value)
                            .unwrap()
                            .parse::<usize>()
                            .unwrap()
                    });
                let Some(length) = length else {
                    return Answer {
                        status,
                        body: Vec::new(),
                    };
                };
                if raw.len() >= len + length {
                    return Answer {
                        status,
                        body: raw[len..len + length].to_vec(),
                    };
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no answer in time")
}

async fn publish(hub: &TestHub, token: &str) -> Answer {
    request(hub, "POST", HUB, Some(token)).await
}

/// Expects 401 with a JSON error containing `says`.
async fn refused(hub: &TestHub, token: &str, says: &str) {
    let answer = publish(hub, token).await;
    assert_eq!(
        answer.status,
        401,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let error = answer.error();
    assert!(error.contains(says), "{error:?} does not say {says:?}");
}

#[tokio::test]
async fn key_set_tokens_by_kid_and_what_is_refused() {
    let secret = b"a-secret-that-must-not-be-in-a-key-set";
    let oct = json!({ "kty": "oct", "kid": "h", "k": b64(secret) });
    let server = KeySetServer::start(
        jwks(&[
            jwk("rsa.key", "r1", None),
            jwk("ec.key", "e1", Some("ES256")),
            jwk("ed.key", "d1", None),
            jwk("rsa2.key", "r2", Some("RS256")),
            oct,
        ]),
        "public, max-age=3600",
        Duration::ZERO,
    )
    .await;
    let hub = TestHub::start(&["--jwks-url", &server.url()]).await;
    assert_eq!(server.hits(), 1, "fetched once at start");
    let log = hub.log.lock().unwrap().join("\n");
    assert!(log.contains("key set fetched"), "{log}");
    assert!(log.contains("symmetric (oct) key, refused"), "{log}");

    // Signed with RSA, EC P-256 and Ed25519 keys, chosen by kid.
    for (alg, kid, signer) in [
        (Algorithm::RS256, Some("r1"), "rsa.key"),
        (Algorithm::PS256, Some("r1"), "rsa.key"),
        (Algorithm::RS512, Some("r1"), "rsa.key"),
        (Algorithm::ES256, Some("e1"), "ec.key"),
        (Algorithm::EdDSA, Some("d1"), "ed.key"),
        (Algorithm::RS256, Some("r2"), "rsa2.key"),
        // Without kid: tried against the keys whose type and alg fit.
        (Algorithm::ES256, None, "ec.key"),
        (Algorithm::RS256, None, "rsa2.key"),
        (Algorithm::EdDSA, None, "ed.key"),
    ] {
        let answer = publish(&hub, &all(alg, kid, signer)).await;
        assert_eq!(
            answer.status,
            200,
            "{alg:?} {kid:?}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }

    // The same Mercure claims as with --jwt-key: subscribers' private
    // updates, and publish selectors that must cover the topic.
    let subscriber = all(Algorithm::EdDSA, Some("d1"), "ed.key");
    let mut stream = hub
        .subscribe(
            &target(&["https://example.com/books/{id}"]),
            &[("Authorization", &format!("Bearer {subscriber}"))],
        )
        .await;
    assert_eq!(stream.status, 200);
    let narrow = token(
        Algorithm::ES256,
        Some("e1"),
        &signing("ec.key"),
        &json!({ "mercure": { "publish": ["https://example.com/books/1"] } }),
    );
    let private = hub
        .request(
            "POST",
            HUB,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", &format!("Bearer {narrow}")),
            ],
            b"topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=secret&private=on",
        )
        .await;
    assert_eq!(private.status, 200, "{}", private.text());
    assert_eq!(stream.next_event().await.unwrap().data, "secret");
    let elsewhere = token(
        Algorithm::ES256,
        Some("e1"),
        &signing("ec.key"),
        &json!({ "mercure": { "publish": ["https://example.com/other"] } }),
    );
    let answer = publish(&hub, &elsewhere).await;
    assert_eq!(answer.status, 403);
    assert!(answer.error().contains("mercure.publish"));

    // A key's alg must equal the token's; a kid names one type of key.
    refused(
        &hub,
        &all(Algorithm::PS256, Some("r2"), "rsa2.key"),
        "does not fit the key its kid names",
    )
    .await;
    refused(
        &hub,
        &all(Algorithm::ES256, Some("r1"), "ec.key"),
        "does not fit the key its kid names",
    )
    .await;
    // The right kid, another key's signature.
    refused(
        &hub,
        &all(Algorithm::RS256, Some("r1"), "rsa2.key"),
        "signature is invalid",
    )
    .await;
    // HMAC never verifies with a key set: not with the oct key the set
    // wrongly published, not with the RSA public key as the secret.
    let hs = token(
        Algorithm::HS256,
        Some("h"),
        &EncodingKey::from_secret(secret),
        &publisher_claims(),
    );
    refused(&hub, &hs, "algorithm is not allowed").await;
    let confused = token(
        Algorithm::HS256,
        Some("r1"),
        &EncodingKey::from_secret(&std::fs::read(key_path("rsa.pub")).unwrap()),
        &publisher_claims(),
    );
    refused(&hub, &confused, "algorithm is not allowed").await;
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"r1"}"#),
        b64(publisher_claims().to_string().as_bytes())
    );
    refused(&hub, &none, "algorithm is not allowed").await;
    // A subscriber token is verified the same way.
    let answer = request(
        &hub,
        "GET",
        &format!("{HUB}?topic=a"),
        Some(&all(Algorithm::ES256, Some("r1"), "ec.key")),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert!(answer.error().contains("kid"));
    // An unknown kid, right after the start: refused without a fetch.
    refused(
        &hub,
        &all(Algorithm::ES256, Some("nobody"), "ec.key"),
        "no key with the token's kid",
    )
    .await;
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn rotation_and_the_refetch_limit() {
    let server = KeySetServer::start(
        jwks(&[jwk("rsa.key", "old", None)]),
        "max-age=3600",
        Duration::from_millis(300),
    )
    .await;
    let hub = TestHub::start(&["--jwks-url", &server.url()]).await;
    // The fetch at start has finished when the hub listens.
    let fetched_at = Instant::now();
    assert_eq!(server.hits(), 1);
    assert_eq!(
        publish(&hub, &all(Algorithm::RS256, Some("old"), "rsa.key"))
            .await
            .status,
        200
    );

    // The provider rotates: a new key, the old one gone.
    server.set(jwks(&[jwk("ec.key", "new", None)]));
    let new = all(Algorithm::ES256, Some("new"), "ec.key");
    // Within 10 s of the last fetch a miss does not fetch: refused at once,
    // and a flood of made-up kids costs nothing either.
    refused(&hub, &new, "no key with the token's kid").await;
    let flood: Vec<_> = (0..60)
        .map(|i| {
            let token = all(Algorithm::ES256, Some(&format!("made-up-{i}")), "ec.key");
            let hub = &hub;
            async move { publish(hub, &token).await.status }
        })
        .collect();
    let statuses = futures_util::future::join_all(flood).await;
    assert!(statuses.iter().all(|s| *s == 401));
    assert_eq!(server.hits(), 1, "no fetch within 10 s of the last");
    assert!(
        fetched_at.elapsed() < Duration::from_secs(9),
        "the test was too slow to show it"
    );

    // After 10 s, misses fetch again: concurrent ones share one fetch, and
    // the new kid works.
    tokio::time::sleep(
        Duration::from_secs(10).saturating_sub(fetched_at.elapsed()) + Duration::from_millis(500),
    )
    .await;
    let burst: Vec<_> = (0..40)
        .map(|i| {
            let token = if i % 4 == 0 {
                new.clone()
            } else {
                all(Algorithm::ES256, Some(&format!("made-up-{i}")), "ec.key")
            };
            let hub = &hub;
            async move { (i, publish(hub, &token).await.status) }
        })
        .collect();
    for (i, status) in futures_util::future::join_all(burst).await {
        assert_eq!(status, if i % 4 == 0 { 200 } else { 401 }, "request {i}");
    }
    assert_eq!(server.hits(), 2, "one fetch for the whole burst");
    assert_eq!(publish(&hub, &new).await.status, 200);
    // The old key is gone from the set, so from the hub.
    refused(
        &hub,
        &all(Algorithm::RS256, Some("old"), "rsa.key"),
        "no key with the token's kid",
    )
    .await;
    // And the flood goes on without fetches.
    for i in 0..30 {
        let token = all(Algorithm::ES256, Some(&format!("again-{i}")), "ec.key");
        assert_eq!(publish(&hub, &token).await.status, 401);
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_key_set_unavailable_at_start_does_not_stop_the_hub() {
    // A free port, with nothing on it yet.
    let spare = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = spare.local_addr().unwrap();
    drop(spare);
    let url = format!("http://{addr}/certs");
    let hub = TestHub::start(&["--jwks-url", &url]).await;
    let health = hub.request("GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200);
    let log = hub.log.lock().unwrap().join("\n");
    assert!(
        log.contains("\"level\":\"ERROR\"") && log.contains("cannot fetch the key set"),
        "{log}"
    );
    assert!(log.contains(&url), "{log}");

    let token = all(Algorithm::EdDSA, Some("d1"), "ed.key");
    refused(&hub, &token, "key set is unavailable").await;
    let answer = request(&hub, "GET", &format!("{HUB}?topic=a"), Some(&token)).await;
    assert_eq!(answer.status, 401);
    assert!(answer.error().contains("key set is unavailable"));
    // Anonymous subscribers still get public updates.
    let anonymous = request(&hub, "GET", &format!("{HUB}?topic=a"), None).await;
    assert_eq!(anonymous.status, 200);

    // The key set server comes up: the hub's retries find it.
    let listener = TcpListener::bind(addr).await.unwrap();
    let server = KeySetServer::serve(
        listener,
        jwks(&[jwk("ed.key", "d1", None)]),
        "max-age=600",
        Duration::ZERO,
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let answer = publish(&hub, &token).await;
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 401);
        assert!(Instant::now() < deadline, "the key set was never fetched");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(server.hits() >= 1);
    let log = hub.log.lock().unwrap().join("\n");
    assert!(log.contains("key set fetched"), "{log}");
}

#[tokio::test]
async fn a_file_key_set_for_publishers_and_a_secret_file_for_subscribers() {
    let dir = TempDir::new();
    let set = dir.path().join("jwks.json");
    std::fs::write(&set, jwks(&[jwk("ed.key", "d1", None)])).unwrap();
    let secret = dir.path().join("subscriber-secret");
    std::fs::write(&secret, "sub-secret\n").unwrap();
    let hub = TestHub::start(&[
        "--publisher-jwks-url",
        &format!("file://{}", set.display()),
        "--subscriber-jwt-secret-file",
        secret.to_str().unwrap(),
    ])
    .await;
    let publisher = all(Algorithm::EdDSA, Some("d1"), "ed.key");
    let subscriber = token(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"sub-secret"),
        &publisher_claims(),
    );
    let mut stream = hub
        .subscribe(
            &format!("{HUB}?topic=*"),
            &[("Authorization", &format!("Bearer {subscriber}"))],
        )
        .await;
    assert_eq!(stream.status, 200);
    let answer = hub
        .request(
            "POST",
            HUB,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", &format!("Bearer {publisher}")),
            ],
            b"topic=t&data=from-file&private=on",
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(stream.next_event().await.unwrap().data, "from-file");
    // Each role takes only its own kind of token.
    refused(&hub, &subscriber, "algorithm is not allowed").await;
    let answer = request(&hub, "GET", &format!("{HUB}?topic=a"), Some(&publisher)).await;
    assert_eq!(answer.status, 401);
    // The secret file's trailing newline is not part of the secret.
    let with_newline = token(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"sub-secret\n"),
        &publisher_claims(),
    );
    let answer = request(&hub, "GET", &format!("{HUB}?topic=a"), Some(&with_newline)).await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn hmac_secrets_from_files() {
    let dir = TempDir::new();
    let shared = dir.path().join("secret");
    std::fs::write(&shared, "shared-secret\r\n").unwrap();
    let publisher = dir.path().join("publisher");
    std::fs::write(&publisher, "pub-secret").unwrap();
    let hub = TestHub::start(&[
        "--jwt-secret-file",
        shared.to_str().unwrap(),
        "--publisher-jwt-secret-file",
        publisher.to_str().unwrap(),
    ])
    .await;
    let sign = |secret: &[u8]| {
        token(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(secret),
            &publisher_claims(),
        )
    };
    assert_eq!(publish(&hub, &sign(b"pub-secret")).await.status, 200);
    refused(&hub, &sign(b"shared-secret"), "signature is invalid").await;
    let answer = request(
        &hub,
        "GET",
        &format!("{HUB}?topic=a"),
        Some(&sign(b"shared-secret")),
    )
    .await;
    assert_eq!(answer.status, 200);

    // The secret file may come from the environment, as container
    // platforms set it.
    let stderr = refused_to_start(&[], &[("TIDINGS_JWT_SECRET_FILE", "/nonexistent/s")]).await;
    assert!(
        stderr.contains("cannot read --jwt-secret-file /nonexistent/s"),
        "{stderr}"
    );
}

#[tokio::test]
async fn key_flags_that_do_not_go_together_stop_the_start() {
    let dir = TempDir::new();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap();
    let ec521 = key_path("ec521.pub");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--jwt-key", "k", "--jwks-url", "http://127.0.0.1:9/certs"],
            &["--jwt-key", "--jwks-url", "not several"],
        ),
        (
            &[
                "--publisher-jwt-secret-file",
                empty,
                "--publisher-jwks-url",
                "file:///x",
            ],
            &[
                "--publisher-jwt-secret-file",
                "--publisher-jwks-url",
                "not several",
            ],
        ),
        (
            &["--jwks-url", "ftp://idp.example/certs"],
            &["\"ftp\" is not supported"],
        ),
        (&["--jwks-url", "certs.json"], &["bad key set URL"]),
        (
            &[
                "--jwks-url",
                "https://idp.example/certs",
                "--jwt-alg",
                "HS256",
            ],
            &["HS256", "cannot be used with a key set"],
        ),
        (
            &["--jwt-key", "k", "--jwt-alg", "ES512"],
            &["ES512", "not supported", "ES256", "ES384"],
        ),
        (&["--jwt-key", "k", "--jwt-alg", "none"], &["never allowed"]),
        (&["--jwt-key-file", &ec521], &["P-521"]),
        (
            &["--jwt-secret-file", empty],
            &["--jwt-secret-file", "is empty"],
        ),
        (
            &["--jwt-secret-file", "/nonexistent/tidings-secret"],
            &["cannot read --jwt-secret-file"],
        ),
    ];
    for (args, says) in cases {
        let stderr = refused_to_start(args, &[]).await;
        for part in *says {
            assert!(
                stderr.contains(part),
                "{args:?}: {stderr:?} does not say {part:?}"
            );
        }
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn the_cluster_url_from_a_file() {
    let dir = TempDir::new();
    let file = dir.path().join("cluster-url");
    let file_arg = file.to_str().unwrap().to_owned();
    // Read from the file (its parameters are checked), password not shown.
    std::fs::write(&file, "redis://:hunter2@127.0.0.1:1/?bogus=1\n").unwrap();
    let stderr = refused_to_start(&["--cluster-file", &file_arg], &[]).await;
    assert!(stderr.contains("bad URL in --cluster-file"), "{stderr}");
    assert!(stderr.contains("bogus"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // A good URL from the file (and from the environment): the hub goes on
    // to connect, to a port where nothing listens here.
    let spare = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = spare.local_addr().unwrap();
    drop(spare);
    std::fs::write(&file, format!("redis://:hunter2@{addr}\n")).unwrap();
    for (args, env) in [
        (vec!["--cluster-file", file_arg.as_str()], vec![]),
        (vec![], vec![("TIDINGS_CLUSTER_FILE", file_arg.as_str())]),
    ] {
        let stderr = refused_to_start(&args, &env).await;
        assert!(
            stderr.contains("cannot reach the cluster engine"),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    let stderr = refused_to_start(
        &[
            "--cluster-file",
            &file_arg,
            "--cluster",
            "redis://127.0.0.1:1",
        ],
        &[],
    )
    .await;
    assert!(stderr.contains("--cluster"), "{stderr}");
}
