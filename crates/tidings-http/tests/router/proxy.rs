//! The client address behind reverse proxies: forwarding headers are
//! believed from trusted proxies only, dev mode refuses what a local proxy
//! may be relaying, and the brake counts failures per forwarded client.

use std::time::{Duration, Instant};

use http::StatusCode;
use tidings_http::{ServerConfig, TrustedProxies};

use crate::{TestApp, post, with_key};

fn trusting(proxies: &[&str]) -> ServerConfig {
    ServerConfig {
        trusted_proxies: TrustedProxies::parse(proxies).unwrap(),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn without_trusted_proxies_dev_mode_refuses_forwarded_publishes() {
    let app = TestApp::dev();
    for (name, value) in [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-for", "203.0.113.7"),
        ("forwarded", "for=127.0.0.1"),
        ("forwarded", "proto=https"),
    ] {
        let answer = app
            .send(post().header(name, value).form("topic=a&data=x"))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{name}: {value}");
        let error = answer.error();
        assert!(
            error.contains("Forwarded or X-Forwarded-For") && error.contains("--trusted-proxy"),
            "{error}"
        );
    }
    // Without them, loopback still publishes.
    let plain = app.send(post().form("topic=a&data=x")).await;
    assert_eq!(plain.status, StatusCode::OK);
    // A remote peer is told the plain rule.
    let remote = app
        .send(
            post()
                .from("192.0.2.1:1")
                .header("x-forwarded-for", "127.0.0.1")
                .form("topic=a"),
        )
        .await;
    assert_eq!(remote.status, StatusCode::FORBIDDEN);
    assert!(remote.error().contains("loopback addresses only"));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_counts() {
    let app = TestApp::new(trusting(&["127.0.0.1/32", "10.0.0.0/8"]));
    let ok = [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-for", "127.0.0.1, 10.0.0.5"),
        ("forwarded", r#"for="[::1]:5000""#),
        ("forwarded", "for=127.0.0.1;proto=http, for=10.2.3.4"),
    ];
    for (name, value) in ok {
        let answer = app
            .send(post().header(name, value).form("topic=a&data=x"))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{name}: {value}: {}",
            answer.text()
        );
    }
    let refused = [
        ("x-forwarded-for", "203.0.113.7"),
        // The client forged the left entry; the proxy appended the truth.
        ("x-forwarded-for", "127.0.0.1, 203.0.113.7"),
        ("forwarded", "for=203.0.113.7"),
    ];
    for (name, value) in refused {
        let answer = app
            .send(post().header(name, value).form("topic=a&data=x"))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(
            answer.error().contains("loopback addresses only"),
            "{}",
            answer.error()
        );
    }
    // Forwarded wins over X-Forwarded-For.
    let both = app
        .send(
            post()
                .header("forwarded", "for=203.0.113.7")
                .header("x-forwarded-for", "127.0.0.1")
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(both.status, StatusCode::FORBIDDEN);
    // A proxy that does not say who the client is.
    for value in ["for=unknown", "for=_hidden", "for=\"[::1\""] {
        let hidden = app
            .send(post().header("forwarded", value).form("topic=a&data=x"))
            .await;
        assert_eq!(hidden.status, StatusCode::FORBIDDEN, "{value}");
        assert!(
            hidden.error().contains("did not give the client's address"),
            "{}",
            hidden.error()
        );
    }
    // A peer outside the list is not believed, wherever it is.
    let stranger = app
        .send(
            post()
                .from("127.0.0.2:1")
                .header("x-forwarded-for", "127.0.0.1")
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    assert!(
        stranger.error().contains("not a trusted proxy"),
        "{}",
        stranger.error()
    );
    // The proxy's own requests (no forwarding headers) are its own.
    let own = app.send(post().form("topic=a&data=x")).await;
    assert_eq!(own.status, StatusCode::OK);
    let mapped = app
        .send(post().from("[::ffff:127.0.0.1]:1").form("topic=a"))
        .await;
    assert_eq!(
        mapped.status,
        StatusCode::OK,
        "an IPv4-mapped loopback peer"
    );
}

/// How long a failed publish with a bad token takes, as `client` behind
/// the trusted loopback proxy.
async fn failure(app: &TestApp, client: &str) -> Duration {
    let started = Instant::now();
    let answer = app
        .send(
            post()
                .bearer("not-a-token")
                .header("x-forwarded-for", client)
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    started.elapsed()
}

#[tokio::test]
async fn the_brake_counts_failures_per_forwarded_client() {
    let mut config = with_key();
    config.trusted_proxies = TrustedProxies::parse(&["127.0.0.1"]).unwrap();
    let app = TestApp::new(config);
    for _ in 0..5 {
        failure(&app, "203.0.113.1").await;
    }
    // The sixth failure of one client is slowed down...
    assert!(failure(&app, "203.0.113.1").await >= Duration::from_millis(250));
    // ...another client behind the same proxy is not.
    assert!(failure(&app, "203.0.113.2").await < Duration::from_millis(250));
}
