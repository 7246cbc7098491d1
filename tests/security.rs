//! Auth and browser safety against the real binary: JWTs (HMAC and public
//! keys), private updates, token sources, expiry, CORS, TLS with HTTP/2,
//! tokens kept out of logs, the brake on failing peers, and the client
//! address behind trusted reverse proxies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use support::{HUB, TestHub, b64, encode as pct, refused_to_start, target};

const SECRET: &str = "test-secret-for-tidings-0123456789";
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: &serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn token(publish: &[&str], subscribe: &[&str]) -> String {
    hs256(&json!({ "mercure": { "publish": publish, "subscribe": subscribe } }))
}

fn keys(name: &str) -> String {
    format!(
        "{}/crates/tidings-auth/tests/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A stream on `selector` for a subscriber allowed every topic.
async fn watch(hub: &TestHub, selector: &str) -> support::Stream {
    hub.subscribe(
        &target(&[selector]),
        &[("Authorization", &bearer(&token(&[], &["*"])))],
    )
    .await
}

async fn publish_with(hub: &TestHub, body: &str, auth: Option<&str>) -> support::Response {
    let mut headers = vec![(
        "Content-Type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    if let Some(token) = auth {
        headers.push(("Authorization", bearer(token)));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    hub.request("POST", HUB, &headers, body.as_bytes()).await
}

#[tokio::test]
async fn publishing_needs_a_covering_token() {
    // The page origin lets the cookie publish below through its CSRF check
    // (`cookie_publishing_needs_an_allowed_origin`).
    let hub = TestHub::start(&["--jwt-key", SECRET, "--publish-origin", "http://app.test"]).await;
    let mut watcher = watch(&hub, "*").await;
    let missing = publish_with(&hub, "topic=a&data=x", None).await;
    assert_eq!(missing.status, 401);
    assert!(missing.json()["error"].is_string());
    let wrong = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "mercure": { "publish": ["*"] } }),
        &EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    assert_eq!(
        publish_with(&hub, "topic=a&data=x", Some(&wrong))
            .await
            .status,
        401
    );
    let narrow = token(&["https://example.com/books/{id}"], &[]);
    let partial = publish_with(
        &hub,
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&topic=other&data=x",
        Some(&narrow),
    )
    .await;
    assert_eq!(
        partial.status, 403,
        "every topic must be covered: no partial dispatch"
    );
    let empty = token(&[], &[]);
    assert_eq!(
        publish_with(&hub, "topic=a&data=x", Some(&empty))
            .await
            .status,
        403
    );
    let ok = publish_with(
        &hub,
        "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=allowed",
        Some(&narrow),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Only the allowed publish went out.
    assert_eq!(watcher.next_event().await.unwrap().data, "allowed");
    watcher.no_event_within(Duration::from_millis(200)).await;

    // The token may also come from the query or the cookie.
    let all = token(&["*"], &[]);
    let by_query = hub
        .request(
            "POST",
            &format!("{HUB}?authorization={all}"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"topic=q&data=1",
        )
        .await;
    assert_eq!(by_query.status, 200);
    let cookie = format!("mercureAuthorization={all}");
    let by_cookie = hub
        .request(
            "POST",
            HUB,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", &cookie),
                ("Origin", "http://app.test"),
            ],
            b"topic=c&data=1",
        )
        .await;
    assert_eq!(by_cookie.status, 200);
    // Only the first source present counts: a bad header hides a good cookie.
    let shadowed = hub
        .request(
            "POST",
            HUB,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", &bearer("garbage")),
                ("Cookie", &cookie),
            ],
            b"topic=c&data=1",
        )
        .await;
    assert_eq!(shadowed.status, 401);
}

#[tokio::test]
async fn public_key_tokens_and_no_algorithm_confusion() {
    let hub = TestHub::start(&["--jwt-key-file", &keys("rsa.pub")]).await;
    let private = std::fs::read(keys("rsa.key")).unwrap();
    let rs256 = encode(
        &Header::new(Algorithm::RS256),
        &json!({ "mercure": { "publish": ["*"] } }),
        &EncodingKey::from_rsa_pem(&private).unwrap(),
    )
    .unwrap();
    assert_eq!(
        publish_with(&hub, "topic=a&data=x", Some(&rs256))
            .await
            .status,
        200
    );
    // Signed HS256 with the public key as the secret: refused.
    let public = std::fs::read(keys("rsa.pub")).unwrap();
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "mercure": { "publish": ["*"] } }),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(
        publish_with(&hub, "topic=a&data=x", Some(&forged))
            .await
            .status,
        401
    );
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(br#"{"mercure":{"publish":["*"]}}"#)
    );
    assert_eq!(
        publish_with(&hub, "topic=a&data=x", Some(&none))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn separate_publisher_and_subscriber_keys() {
    let hub = TestHub::start(&[
        "--publisher-jwt-key",
        "pub-secret",
        "--subscriber-jwt-key",
        "sub-secret",
    ])
    .await;
    let pub_token = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "mercure": { "publish": ["*"] } }),
        &EncodingKey::from_secret(b"pub-secret"),
    )
    .unwrap();
    let sub_token = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "mercure": { "subscribe": ["*"] } }),
        &EncodingKey::from_secret(b"sub-secret"),
    )
    .unwrap();
    let mut sub = hub
        .subscribe(&target(&["k"]), &[("Authorization", &bearer(&sub_token))])
        .await;
    assert_eq!(sub.status, 200);
    // The subscriber key does not publish, and the publisher key does not subscribe.
    assert_eq!(
        publish_with(&hub, "topic=k&data=x", Some(&sub_token))
            .await
            .status,
        401
    );
    let refused = hub
        .request(
            "GET",
            &target(&["k"]),
            &[("Authorization", &bearer(&pub_token))],
            b"",
        )
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        publish_with(&hub, "topic=k&data=secret&private=on", Some(&pub_token))
            .await
            .status,
        200
    );
    assert_eq!(sub.next_event().await.unwrap().data, "secret");
}

#[tokio::test]
async fn anonymous_subscribers_can_be_refused() {
    let hub = TestHub::start(&["--jwt-key", SECRET, "--no-anonymous"]).await;
    let refused = hub.request("GET", &target(&["a"]), &[], b"").await;
    assert_eq!(refused.status, 401);
    assert!(refused.json()["error"].is_string());
    let ok = hub
        .subscribe(
            &target(&["a"]),
            &[("Authorization", &bearer(&token(&[], &[])))],
        )
        .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn streams_close_when_the_token_expires() {
    let hub = TestHub::start(&["--jwt-key", SECRET, "--jwt-leeway", "0"]).await;
    let short = hs256(&json!({ "exp": now() + 2, "mercure": { "subscribe": ["*"] } }));
    let mut stream = hub
        .subscribe(&target(&["e"]), &[("Authorization", &bearer(&short))])
        .await;
    assert_eq!(stream.status, 200);
    let started = Instant::now();
    let events = stream.until_end().await;
    assert!(events.is_empty());
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_millis(500),
        "closed too early: {lasted:?}"
    );
    let expired = hs256(&json!({ "exp": now() - 10, "mercure": {} }));
    assert_eq!(
        hub.request(
            "GET",
            &target(&["e"]),
            &[("Authorization", &bearer(&expired))],
            b""
        )
        .await
        .status,
        401
    );
}

/// A tiny deterministic generator (no dependency needed for a test).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Topics are `https://r.test/g{G}/i{I}`; selectors are exact topics, a
/// group's template, an item-number template across groups, or `*`. The
/// model below decides matches by construction, independently of the
/// hub's selector code.
#[derive(Debug, Clone)]
enum Sel {
    Exact(u64, u64),
    Group(u64),
    Item(u64),
    Any,
}

impl Sel {
    fn text(&self) -> String {
        match self {
            Self::Exact(g, i) => format!("https://r.test/g{g}/i{i}"),
            Self::Group(g) => format!("https://r.test/g{g}/{{item}}"),
            Self::Item(i) => format!("https://r.test/{{group}}/i{i}"),
            Self::Any => "*".to_owned(),
        }
    }

    fn matches(&self, (g, i): (u64, u64)) -> bool {
        match *self {
            Self::Exact(sg, si) => sg == g && si == i,
            Self::Group(sg) => sg == g,
            Self::Item(si) => si == i,
            Self::Any => true,
        }
    }

    fn random(rng: &mut Lcg) -> Self {
        match rng.below(10) {
            0..=4 => Self::Exact(rng.below(4), rng.below(4)),
            5..=6 => Self::Group(rng.below(4)),
            7..=8 => Self::Item(rng.below(4)),
            _ => Self::Any,
        }
    }
}

#[tokio::test]
async fn private_updates_reach_exactly_the_authorized() {
    let seed = now();
    let mut rng = Lcg(seed);
    let hub = TestHub::start(&["--jwt-key", SECRET]).await;
    let publisher = token(&["*"], &[]);
    struct Sub {
        selectors: Vec<Sel>,
        claims: Option<Vec<Sel>>,
        stream: support::Stream,
    }
    let mut subs = Vec::new();
    for _ in 0..24 {
        let selectors: Vec<Sel> = (0..=rng.below(3)).map(|_| Sel::random(&mut rng)).collect();
        let claims: Option<Vec<Sel>> =
            (rng.below(10) < 7).then(|| (0..rng.below(3)).map(|_| Sel::random(&mut rng)).collect());
        let mut texts: Vec<String> = selectors.iter().map(Sel::text).collect();
        texts.push("https://r.test/end".to_owned());
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let auth = claims.as_ref().map(|c| {
            let claim_texts: Vec<String> = c.iter().map(Sel::text).collect();
            let claim_refs: Vec<&str> = claim_texts.iter().map(String::as_str).collect();
            bearer(&token(&[], &claim_refs))
        });
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let stream = hub.subscribe(&target(&refs), &headers).await;
        assert_eq!(stream.status, 200);
        subs.push(Sub {
            selectors,
            claims,
            stream,
        });
    }
    let mut updates = Vec::new();
    for n in 0..120 {
        let topics: Vec<(u64, u64)> = (0..=rng.below(2))
            .map(|_| (rng.below(4), rng.below(4)))
            .collect();
        let private = rng.below(10) < 4;
        let mut body: String = topics
            .iter()
            .map(|(g, i)| format!("topic={}&", pct(&format!("https://r.test/g{g}/i{i}"))))
            .collect();
        body.push_str(&format!("data=u{n}"));
        if private {
            body.push_str("&private=on");
        }
        let response = publish_with(&hub, &body, Some(&publisher)).await;
        assert_eq!(response.status, 200, "{}", response.text());
        updates.push((format!("u{n}"), topics, private));
    }
    assert_eq!(
        publish_with(
            &hub,
            "topic=https%3A%2F%2Fr.test%2Fend&data=end",
            Some(&publisher)
        )
        .await
        .status,
        200
    );
    for (index, sub) in subs.iter_mut().enumerate() {
        let expected: BTreeSet<String> = updates
            .iter()
            .filter(|(_, topics, private)| {
                let wanted = sub
                    .selectors
                    .iter()
                    .any(|s| topics.iter().any(|t| s.matches(*t)));
                let allowed = !private
                    || sub
                        .claims
                        .as_ref()
                        .is_some_and(|c| c.iter().any(|s| topics.iter().any(|t| s.matches(*t))));
                wanted && allowed
            })
            .map(|(data, _, _)| data.clone())
            .collect();
        let mut got = Vec::new();
        loop {
            let event = sub.stream.next_event().await.unwrap();
            if event.data == "end" {
                break;
            }
            got.push(event.data);
        }
        let got_set: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(
            got.len(),
            got_set.len(),
            "seed {seed}, subscriber {index}: duplicates"
        );
        assert_eq!(
            got_set, expected,
            "seed {seed}, subscriber {index}: selectors {:?}, claims {:?}",
            sub.selectors, sub.claims
        );
    }
}

#[tokio::test]
async fn cors_allow_list() {
    let hub = TestHub::start(&["--cors-origin", "http://app.test:3000"]).await;
    // The stream (lean path), listed origin.
    let stream = hub
        .subscribe(&target(&["c"]), &[("Origin", "http://app.test:3000")])
        .await;
    assert_eq!(
        stream.header("access-control-allow-origin"),
        Some("http://app.test:3000")
    );
    assert_eq!(
        stream.header("access-control-allow-credentials"),
        Some("true")
    );
    let unlisted = hub
        .subscribe(&target(&["c"]), &[("Origin", "http://evil.test")])
        .await;
    assert_eq!(unlisted.header("access-control-allow-origin"), None);
    // Publishing (hyper path).
    let response = hub
        .request(
            "POST",
            "/publish",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", "http://app.test:3000"),
            ],
            b"topic=c&data=x",
        )
        .await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("http://app.test:3000")
    );
    // Preflight for the headers EventSource and fetch send.
    let preflight = hub
        .request(
            "OPTIONS",
            HUB,
            &[
                ("Origin", "http://app.test:3000"),
                ("Access-Control-Request-Method", "GET"),
                (
                    "Access-Control-Request-Headers",
                    "last-event-id, authorization",
                ),
            ],
            b"",
        )
        .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://app.test:3000")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("last-event-id, authorization")
    );
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("GET")
    );
    let bad = hub
        .request(
            "OPTIONS",
            HUB,
            &[
                ("Origin", "http://evil.test"),
                ("Access-Control-Request-Method", "GET"),
            ],
            b"",
        )
        .await;
    assert_eq!(bad.header("access-control-allow-origin"), None);

    let star = TestHub::start(&["--cors-origin", "*"]).await;
    let stream = star
        .subscribe(&target(&["c"]), &[("Origin", "http://any.test")])
        .await;
    assert_eq!(stream.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        stream.header("access-control-allow-credentials"),
        None,
        "never * with credentials"
    );
}

/// Writes a fresh self-signed certificate for 127.0.0.1 and its key.
fn self_signed(cert: &std::path::Path, key: &std::path::Path) {
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed for this test");
    assert!(status.success());
}

/// A hub serving HTTPS with the certificate chain `cert` and its key `key`.
async fn tls_hub(cert: &std::path::Path, key: &std::path::Path) -> TestHub {
    TestHub::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await
}

#[tokio::test]
async fn tls_with_http2_and_http1() {
    let dir = std::env::temp_dir().join(format!("tidings-tls-{}-{}", std::process::id(), now()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    self_signed(&cert, &key);
    let hub = tls_hub(&cert, &key).await;
    let url = format!("https://{}{HUB}?topic=tls", hub.addr);
    let curl = |version: &'static str| {
        tokio::process::Command::new("curl")
            .args(["-sN", version, "--max-time", "4", "--cacert"])
            .arg(&cert)
            .args(["-w", "\n%{http_version}\n", &url])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let h2 = curl("--http2");
    let h1 = curl("--http1.1");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let published = tokio::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&cert)
        .args([
            "-d",
            "topic=tls&data=over+tls",
            &format!("https://{}{HUB}", hub.addr),
        ])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&published.stdout).starts_with("urn:tidings:"));
    for (child, version) in [(h2, "2"), (h1, "1.1")] {
        let out = child.wait_with_output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("data: over tls"), "HTTP/{version}: {text}");
        assert_eq!(text.trim_end().lines().last(), Some(version), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn tokens_never_reach_the_logs() {
    let hub = TestHub::start(&[
        "--jwt-key",
        SECRET,
        "--log",
        "trace",
        "--publish-origin",
        "http://app.test",
    ])
    .await;
    let good = token(&["*"], &["*"]);
    let bad = format!("{good}tampered");
    for t in [&good, &bad] {
        let _ = publish_with(&hub, "topic=l&data=x", Some(t)).await;
        drop(
            hub.subscribe(&format!("{}&authorization={t}", target(&["l"])), &[])
                .await,
        );
        let cookie = format!("mercureAuthorization={t}");
        let _ = hub
            .request(
                "POST",
                HUB,
                &[
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("Cookie", &cookie),
                    ("Origin", "http://app.test"),
                ],
                b"topic=l",
            )
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = hub.log.lock().unwrap().join("\n");
    assert!(!log.is_empty());
    let signature = good.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "a token signature is in the log");
    assert!(!log.contains(&good[..20]), "a token is in the log");
}

#[tokio::test]
async fn repeated_failures_are_slowed_down() {
    let hub = TestHub::start(&["--jwt-key", SECRET]).await;
    let mut times = Vec::new();
    for _ in 0..8 {
        let started = Instant::now();
        let response = publish_with(&hub, "topic=a&data=x", Some("not-a-token")).await;
        assert_eq!(response.status, 401);
        times.push(started.elapsed());
    }
    // The first five cost nothing extra; then 250 ms more each time.
    assert!(times[6] >= Duration::from_millis(450), "{times:?}");
    assert!(times[7] >= Duration::from_millis(700), "{times:?}");
    // A valid token still goes through at once.
    let started = Instant::now();
    assert_eq!(
        publish_with(&hub, "topic=a&data=x", Some(&token(&["*"], &[])))
            .await
            .status,
        200
    );
    assert!(started.elapsed() < Duration::from_millis(450) || cfg!(debug_assertions));
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// A form publish with extra headers.
async fn publish_headers(hub: &TestHub, headers: &[(&str, &str)]) -> support::Response {
    let mut all = vec![FORM];
    all.extend_from_slice(headers);
    hub.request("POST", HUB, &all, b"topic=a&data=x").await
}

#[tokio::test]
async fn dev_mode_refuses_publishes_a_proxy_may_be_relaying() {
    // No trusted proxy: a local proxy relaying the internet cannot be told
    // from a local program.
    let hub = TestHub::start(&[]).await;
    for header in [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=127.0.0.1"),
    ] {
        let refused = publish_headers(&hub, &[header]).await;
        assert_eq!(refused.status, 403, "{header:?}");
        let error = refused.error();
        assert!(error.contains("X-Forwarded-For"), "{error}");
        assert!(error.contains("--trusted-proxy"), "{error}");
    }
    assert_eq!(publish_headers(&hub, &[]).await.status, 200);

    // The proxy trusted (from the environment, comma-separated): the
    // client it names counts.
    let behind = TestHub::start_env(
        &[],
        &[("TIDINGS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1/32,::1")],
    )
    .await;
    let local = publish_headers(&behind, &[("X-Forwarded-For", "127.0.0.1")]).await;
    assert_eq!(local.status, 200, "{}", local.text());
    let remote = publish_headers(&behind, &[("X-Forwarded-For", "127.0.0.1, 203.0.113.7")]).await;
    assert_eq!(remote.status, 403);
    assert!(remote.error().contains("loopback"));
    let hidden = publish_headers(&behind, &[("Forwarded", "for=unknown")]).await;
    assert_eq!(hidden.status, 403);
    assert!(hidden.error().contains("did not give the client's address"));
}

/// How long one request that fails authentication takes, as `client`
/// behind the trusted loopback proxy.
async fn failing(hub: &TestHub, method: &str, client: &str) -> Duration {
    let started = Instant::now();
    let bad = bearer("not-a-token");
    let headers = [
        FORM,
        ("Authorization", bad.as_str()),
        ("X-Forwarded-For", client),
    ];
    let response = match method {
        // The lean stream path.
        "GET" => {
            hub.request("GET", &target(&["a"]), &headers[1..], b"")
                .await
        }
        // hyper's path.
        _ => hub.request("POST", HUB, &headers, b"topic=a&data=x").await,
    };
    assert_eq!(response.status, 401, "{method}");
    started.elapsed()
}

#[tokio::test]
async fn both_paths_go_by_the_forwarded_client() {
    let hub = TestHub::start(&[
        "--jwt-key",
        SECRET,
        "--no-anonymous",
        "--trusted-proxy",
        "127.0.0.1",
    ])
    .await;
    for (method, first, second) in [
        ("GET", "203.0.113.1", "203.0.113.2"),
        ("POST", "198.51.100.1", "198.51.100.2"),
    ] {
        for _ in 0..5 {
            failing(&hub, method, first).await;
        }
        // The brake slows this client down, not the next one behind the
        // same proxy.
        let slowed = failing(&hub, method, first).await;
        assert!(slowed >= Duration::from_millis(250), "{method}: {slowed:?}");
        let other = failing(&hub, method, second).await;
        assert!(other < Duration::from_millis(250), "{method}: {other:?}");
    }
}

/// For each `(value, reason)` in `cases`: `flag value` stops the start,
/// and the error names the flag and the reason.
async fn refused_values(flag: &str, cases: &[(&str, &str)]) {
    for (value, reason) in cases {
        let stderr = refused_to_start(&[flag, value], &[]).await;
        assert!(stderr.contains(flag), "{stderr}");
        assert!(stderr.contains(reason), "{value:?}: {stderr}");
    }
}

#[tokio::test]
async fn bad_trusted_proxies_stop_the_start_with_the_reason() {
    let cases = [
        ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
        ("fd00::/200", "longer than the 128 bits"),
        ("proxy.internal", "CIDR notation"),
        ("", "empty"),
    ];
    refused_values("--trusted-proxy", &cases).await;
    let stderr = refused_to_start(&[], &[("TIDINGS_TRUSTED_PROXIES", "127.0.0.1,300.1.2.3")]).await;
    assert!(stderr.contains("\"300.1.2.3\""), "{stderr}");
}

/// A form publish with the token in the cookie and these extra headers.
async fn cookie_publish(hub: &TestHub, headers: &[(&str, &str)]) -> support::Response {
    let cookie = format!("mercureAuthorization={}", token(&["*"], &[]));
    let mut all = vec![FORM, ("Cookie", cookie.as_str())];
    all.extend_from_slice(headers);
    hub.request("POST", HUB, &all, b"topic=csrf&data=x").await
}

#[tokio::test]
async fn cookie_publishing_needs_an_allowed_origin() {
    // The --cors-origin list, when there is no --publish-origin.
    let hub = TestHub::start(&["--jwt-key", SECRET, "--cors-origin", "http://app.test:3000"]).await;
    let mut watcher = watch(&hub, "csrf").await;
    let listed = cookie_publish(&hub, &[("Origin", "http://app.test:3000")]).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let referer = cookie_publish(&hub, &[("Referer", "http://app.test:3000/admin")]).await;
    assert_eq!(referer.status, 200, "{}", referer.text());
    // A form another site posts: the browser adds the cookie, and Origin.
    let forged = cookie_publish(&hub, &[("Origin", "https://evil.test")]).await;
    assert_eq!(forged.status, 403);
    assert!(
        forged.error().contains("\"https://evil.test\""),
        "{}",
        forged.text()
    );
    let anonymous = cookie_publish(&hub, &[]).await;
    assert_eq!(anonymous.status, 403);
    assert!(anonymous.error().contains("Origin or Referer"));
    // The token in the header is not checked: no browser sends it unasked.
    let header = hub
        .request(
            "POST",
            HUB,
            &[
                FORM,
                ("Authorization", &bearer(&token(&["*"], &[]))),
                ("Origin", "https://evil.test"),
            ],
            b"topic=csrf&data=header",
        )
        .await;
    assert_eq!(header.status, 200);
    let got: Vec<String> = watcher
        .events(3)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(got, ["x", "x", "header"]);
    watcher.no_event_within(Duration::from_millis(200)).await;

    // --publish-origin replaces the CORS list for cookie publishing.
    let own = TestHub::start_env(
        &["--jwt-key", SECRET, "--cors-origin", "http://app.test:3000"],
        &[(
            "TIDINGS_PUBLISH_ORIGINS",
            "http://admin.test,http://ops.test",
        )],
    )
    .await;
    assert_eq!(
        cookie_publish(&own, &[("Origin", "http://admin.test")])
            .await
            .status,
        200
    );
    assert_eq!(
        cookie_publish(&own, &[("Origin", "http://ops.test")])
            .await
            .status,
        200
    );
    assert_eq!(
        cookie_publish(&own, &[("Origin", "http://app.test:3000")])
            .await
            .status,
        403
    );

    // Neither list: no cookie publishing at all.
    let none = TestHub::start(&["--jwt-key", SECRET]).await;
    let refused = cookie_publish(&none, &[("Origin", "http://app.test:3000")]).await;
    assert_eq!(refused.status, 403);
    assert!(refused.error().contains("--publish-origin"));
}

#[tokio::test]
async fn bad_publish_origins_stop_the_start_with_the_reason() {
    let cases = [
        ("https://app.test/", "did you mean \"https://app.test\"?"),
        ("app.test", "not an origin"),
        ("null", "sandboxed"),
    ];
    refused_values("--publish-origin", &cases).await;
}

/// curl over TLS to `url`, trusting only `ca`: its exit status (0: the
/// hub's certificate verified against `ca`).
async fn curl_status(ca: &std::path::Path, url: &str) -> i32 {
    tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg(url)
        .status()
        .await
        .unwrap()
        .code()
        .unwrap_or(-1)
}

/// Publishes `data` on `topic` over TLS, trusting only `ca`.
async fn curl_publish(ca: &std::path::Path, hub: &TestHub, topic: &str, data: &str) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["-d", &format!("topic={topic}&data={data}")])
        .arg(format!("https://{}{HUB}", hub.addr))
        .output()
        .await
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout);
    assert!(id.starts_with("urn:tidings:"), "{id}");
}

/// How many log lines of `hub` contain `text`.
fn log_lines(hub: &TestHub, text: &str) -> usize {
    hub.log
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(text))
        .count()
}

/// Sends SIGHUP to `hub` and waits for the log line that says how it went.
async fn hang_up(hub: &TestHub, expected: &str) {
    let before = log_lines(hub, expected);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &hub.child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    while log_lines(hub, expected) == before {
        assert!(
            started.elapsed() < support::WAIT,
            "no {expected:?} in the log after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `lines` until one contains `text`.
async fn line_with(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    text: &str,
) {
    let found = tokio::time::timeout(support::WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(text) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{text:?} on the stream");
}

#[tokio::test]
async fn tls_certificate_reloads_on_sighup_without_dropping_streams() {
    use tokio::io::AsyncBufReadExt as _;

    let dir = support::TempDir::new();
    let path = |name: &str| dir.path().join(name);
    self_signed(&path("a.crt"), &path("a.key"));
    self_signed(&path("b.crt"), &path("b.key"));
    let (cert, key) = (path("cert.pem"), path("key.pem"));
    std::fs::copy(path("a.crt"), &cert).unwrap();
    std::fs::copy(path("a.key"), &key).unwrap();
    let hub = tls_hub(&cert, &key).await;
    let health = format!("https://{}/healthz", hub.addr);
    assert_eq!(curl_status(&path("a.crt"), &health).await, 0);
    assert_ne!(curl_status(&path("b.crt"), &health).await, 0);

    // A stream opened with certificate A.
    let mut old = tokio::process::Command::new("curl")
        .args(["-sN", "--max-time", "30", "--cacert"])
        .arg(path("a.crt"))
        .arg(format!("https://{}{HUB}?topic=reload", hub.addr))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(old.stdout.take().unwrap()).lines();
    line_with(&mut lines, "retry:").await;
    curl_publish(&path("a.crt"), &hub, "reload", "before").await;
    line_with(&mut lines, "data: before").await;

    // Certificate B in place of A, then SIGHUP.
    std::fs::copy(path("b.crt"), &cert).unwrap();
    std::fs::copy(path("b.key"), &key).unwrap();
    hang_up(&hub, "TLS certificate and key reloaded").await;
    assert_eq!(
        curl_status(&path("b.crt"), &health).await,
        0,
        "new connections see B"
    );
    assert_ne!(
        curl_status(&path("a.crt"), &health).await,
        0,
        "and A no more"
    );
    // The stream opened with A goes on.
    curl_publish(&path("b.crt"), &hub, "reload", "after").await;
    line_with(&mut lines, "data: after").await;

    // Unusable files are refused and B stays: garbage, then A's
    // certificate with B's key.
    std::fs::write(&cert, "not a certificate").unwrap();
    hang_up(&hub, "were not reloaded").await;
    assert_eq!(curl_status(&path("b.crt"), &health).await, 0);
    std::fs::copy(path("a.crt"), &cert).unwrap();
    hang_up(&hub, "were not reloaded").await;
    assert_eq!(curl_status(&path("b.crt"), &health).await, 0);
    assert_ne!(curl_status(&path("a.crt"), &health).await, 0);
    curl_publish(&path("b.crt"), &hub, "reload", "still").await;
    line_with(&mut lines, "data: still").await;
    assert!(
        old.try_wait().unwrap().is_none(),
        "the old stream is still open"
    );
}

#[tokio::test]
async fn sighup_without_tls_leaves_the_hub_running() {
    let hub = TestHub::start(&[]).await;
    hang_up(&hub, "no TLS certificate to reload").await;
    assert_eq!(hub.request("GET", "/healthz", &[], b"").await.status, 200);
}
