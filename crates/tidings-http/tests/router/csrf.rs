//! Cookie-authenticated publishes must name an allowed origin (`Origin`,
//! else `Referer`): a page on another site cannot make a logged-in browser
//! publish. Tokens in the header or the query are not subject to it.

use http::StatusCode;
use tidings_http::{PublishOrigins, ServerConfig};

use crate::{HUB, Req, TestApp, post, req, token, with_key};

const APP: &str = "https://app.example";

fn allowing(origins: &[&str]) -> ServerConfig {
    let values: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
    let mut config = with_key();
    config.auth.publish_origins = PublishOrigins::from_list(&values);
    config
}

/// A publish with the token in the cookie.
fn with_cookie() -> Req {
    post().header(
        "cookie",
        &format!("theme=dark; mercureAuthorization={}", token(&["*"], &[])),
    )
}

#[tokio::test]
async fn a_cookie_publish_from_an_allowed_page_goes_through() {
    let app = TestApp::new(allowing(&[APP]));
    let mut watcher = app.watch().await;
    let by_origin = app
        .send(
            with_cookie()
                .header("origin", APP)
                .form("topic=a&data=origin"),
        )
        .await;
    assert_eq!(by_origin.status, StatusCode::OK, "{}", by_origin.text());
    // Without Origin, the Referer's origin counts.
    let by_referer = app
        .send(
            with_cookie()
                .header("referer", "https://app.example/admin/post?draft=1")
                .form("topic=a&data=referer"),
        )
        .await;
    assert_eq!(by_referer.status, StatusCode::OK, "{}", by_referer.text());
    let seen = watcher.until("data: referer").await;
    assert!(seen.contains("data: origin"));
}

#[tokio::test]
async fn a_cookie_publish_from_elsewhere_is_403_and_nothing_goes_out() {
    let app = TestApp::new(allowing(&[APP]));
    let mut watcher = app.watch().await;
    let cases: [&[(&str, &str)]; 5] = [
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        &[("referer", "https://evil.example/form.html")],
        // Origin wins over Referer.
        &[
            ("origin", "https://evil.example"),
            ("referer", "https://app.example/"),
        ],
        // Neither: the hub cannot tell where the request comes from.
        &[],
    ];
    for headers in cases {
        let mut request = with_cookie();
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let answer = app.send(request.form("topic=a&data=forged")).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{headers:?}");
        let error = answer.error();
        assert!(error.contains("mercureAuthorization cookie"), "{error}");
    }
    let neither = app.send(with_cookie().form("topic=a&data=forged")).await;
    assert!(neither.error().contains("needs an Origin or Referer"));
    app.send(
        post()
            .bearer(&token(&["*"], &[]))
            .form("topic=a&data=marker"),
    )
    .await;
    let seen = watcher.until("data: marker").await;
    assert!(!seen.contains("forged"), "{seen}");
}

#[tokio::test]
async fn header_and_query_tokens_are_not_checked() {
    let app = TestApp::new(allowing(&[APP]));
    let all = token(&["*"], &[]);
    let header = app
        .send(
            post()
                .bearer(&all)
                .header("origin", "https://elsewhere.example")
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(header.status, StatusCode::OK, "{}", header.text());
    // The query parameter is not sent by a browser on its own either: a
    // page that can put the token in a URL has the token.
    let query = app
        .send(
            req("POST", &format!("{HUB}?authorization={all}"))
                .header("origin", "https://elsewhere.example")
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(query.status, StatusCode::OK, "{}", query.text());
    // The header shadows the cookie, as a token source.
    let both = app
        .send(with_cookie().bearer(&all).form("topic=a&data=x"))
        .await;
    assert_eq!(both.status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_list_cookie_publishing_is_refused() {
    let app = TestApp::new(with_key());
    let answer = app
        .send(with_cookie().header("origin", APP).form("topic=a&data=x"))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.error().contains("--publish-origin"),
        "{}",
        answer.error()
    );
    // With `*`, any origin, but one must be named.
    let any = TestApp::new(allowing(&["*"]));
    let named = any
        .send(
            with_cookie()
                .header("origin", "https://x.example")
                .form("topic=a"),
        )
        .await;
    assert_eq!(named.status, StatusCode::OK, "{}", named.text());
    let unnamed = any.send(with_cookie().form("topic=a")).await;
    assert_eq!(unnamed.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_origin_is_checked_before_the_token() {
    // A forged request learns nothing about the cookie's token: an invalid
    // one is refused for the origin alone, with a 403, and not counted by
    // the brake as a failed authentication.
    let app = TestApp::new(allowing(&[APP]));
    let answer = app
        .send(
            post()
                .header("cookie", "mercureAuthorization=garbage")
                .header("origin", "https://evil.example")
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let from_app = app
        .send(
            post()
                .header("cookie", "mercureAuthorization=garbage")
                .header("origin", APP)
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(from_app.status, StatusCode::UNAUTHORIZED);
}
