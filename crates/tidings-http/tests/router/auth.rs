//! Who may publish and subscribe: tokens (401 missing or bad, 403 not
//! covering), and dev mode's loopback rule, which reads the peer from
//! `ConnectInfo` as the server records it.

use http::StatusCode;
use tidings_http::ServerConfig;

use crate::{HUB, TestApp, post, req, token, token_with, with_key};

#[tokio::test]
async fn a_publish_without_a_valid_token_is_401() {
    let app = TestApp::new(with_key());
    let missing = app.send(post().form("topic=a&data=x")).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.error(), "publishing needs a token");
    let forged = token_with("another secret", &["*"], &[]);
    let bad = app
        .send(post().bearer(&forged).form("topic=a&data=x"))
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.error().starts_with("invalid token"), "{}", bad.error());
    let garbage = app
        .send(post().bearer("not.a.token").form("topic=a&data=x"))
        .await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    let basic = app
        .send(
            post()
                .header("authorization", "Basic dXNlcjpwYXNz")
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert!(basic.error().contains("Bearer"), "{}", basic.error());
    // Checked before the body is read: a bad token with a bad body is
    // still a 401.
    let both = app
        .send(post().header("content-type", "text/plain").body("?"))
        .await;
    assert_eq!(both.status, StatusCode::UNAUTHORIZED);
    // With a key, loopback peers need a token too.
    let from_loopback = app
        .send(post().from("127.0.0.1:1").form("topic=a&data=x"))
        .await;
    assert_eq!(from_loopback.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_must_cover_every_topic_or_it_is_403() {
    let app = TestApp::new(with_key());
    let mut watcher = app.watch().await;
    let narrow = token(&["https://example.com/books/{id}"], &[]);
    let partial = app
        .send(
            post()
                .bearer(&narrow)
                .form("topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&topic=other&data=partial"),
        )
        .await;
    assert_eq!(partial.status, StatusCode::FORBIDDEN);
    assert!(
        partial.error().contains("mercure.publish"),
        "{}",
        partial.error()
    );
    let nothing = app
        .send(post().bearer(&token(&[], &["*"])).form("topic=a&data=none"))
        .await;
    assert_eq!(nothing.status, StatusCode::FORBIDDEN);
    let batch = app
        .send(post().bearer(&narrow).json(
            r#"[{"topic":"https://example.com/books/2","data":"in"},{"topic":"elsewhere","data":"out"}]"#,
        ))
        .await;
    assert_eq!(batch.status, StatusCode::FORBIDDEN, "no partial batch");
    let ok = app
        .send(
            post()
                .bearer(&narrow)
                .form("topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=allowed"),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let seen = watcher.until("data: allowed").await;
    assert!(
        !seen.contains("data: partial") && !seen.contains("data: in"),
        "{seen}"
    );
    // The other token sources.
    let all = token(&["*"], &[]);
    let by_query = app
        .send(req("POST", &format!("{HUB}?authorization={all}")).form("topic=q&data=1"))
        .await;
    assert_eq!(by_query.status, StatusCode::OK, "{}", by_query.text());
}

#[tokio::test]
async fn subscribers_need_a_valid_token_when_anonymous_ones_are_refused() {
    let mut config = with_key();
    config.auth.anonymous = false;
    let app = TestApp::new(config);
    let target = format!("{HUB}?topic=a");
    let missing = app.send(req("GET", &target).empty()).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.error(), "subscribing needs a token");
    let bad = app
        .send(
            req("GET", &target)
                .bearer(&token_with("x", &[], &["*"]))
                .empty(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let (status, headers) = app
        .head(req("GET", &target).bearer(&token(&[], &["*"])).empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
}

#[tokio::test]
async fn dev_mode_publishes_from_loopback_peers_only() {
    let app = TestApp::new(ServerConfig::default());
    for peer in ["127.0.0.1:4000", "127.9.8.7:4000", "[::1]:4000"] {
        let answer = app.send(post().from(peer).form("topic=a&data=x")).await;
        assert_eq!(answer.status, StatusCode::OK, "{peer}: {}", answer.text());
    }
    for peer in ["192.0.2.7:4000", "10.0.0.1:4000", "[2001:db8::1]:4000"] {
        let answer = app.send(post().from(peer).form("topic=a&data=x")).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{peer}");
        assert!(answer.error().contains("loopback"), "{}", answer.error());
    }
    // A server that does not say who the peer is gets no exception.
    let unknown = app.send(post().no_peer().form("topic=a&data=x")).await;
    assert_eq!(unknown.status, StatusCode::FORBIDDEN);
}
