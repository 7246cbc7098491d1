//! CORS through the whole router: preflights, listed and unlisted origins,
//! credentials, and the headers on every kind of answer (errors too, so
//! that a page can read why it was refused).

use http::StatusCode;
use tidings_http::{CorsConfig, ServerConfig};

use crate::{HUB, TestApp, post, req, with_key};

const APP: &str = "https://app.example";

fn listing(origins: &[&str]) -> ServerConfig {
    let values: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
    ServerConfig {
        cors: CorsConfig::from_list(&values),
        ..ServerConfig::default()
    }
}

fn preflight(origin: &str, method: &str, headers: &str) -> http::Request<axum::body::Body> {
    let mut request = req("OPTIONS", HUB)
        .header("origin", origin)
        .header("access-control-request-method", method);
    if !headers.is_empty() {
        request = request.header("access-control-request-headers", headers);
    }
    request.empty()
}

#[tokio::test]
async fn a_listed_origin_passes_its_preflight() {
    let app = TestApp::new(listing(&[APP]));
    let answer = app
        .send(preflight(
            APP,
            "POST",
            "content-type, authorization, x-custom",
        ))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        answer.header("access-control-allow-methods"),
        Some("GET, POST, OPTIONS")
    );
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("content-type, authorization"),
        "only the headers the hub reads"
    );
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    assert_eq!(answer.header("vary"), Some("Origin"));
    assert!(answer.body.is_empty());
}

#[tokio::test]
async fn an_unlisted_origin_gets_a_403_preflight_and_no_headers() {
    let app = TestApp::new(listing(&[APP]));
    for origin in [
        "https://evil.example",
        "https://app.example.evil",
        "http://app.example",
        "null",
    ] {
        let answer = app.send(preflight(origin, "GET", "last-event-id")).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(answer.error(), "this origin may not use the hub");
        assert_eq!(answer.header("access-control-allow-origin"), None);
        // Its actual requests are served, without CORS headers: the
        // browser keeps the answer from the page.
        let publish = app
            .send(post().header("origin", origin).form("topic=a&data=x"))
            .await;
        assert_eq!(publish.status, StatusCode::OK);
        assert_eq!(publish.header("access-control-allow-origin"), None);
        assert_eq!(publish.header("access-control-allow-credentials"), None);
    }
}

#[tokio::test]
async fn listed_origins_get_credentials_on_answers_and_errors() {
    let app = TestApp::new(listing(&[APP, "http://localhost:3000"]));
    let ok = app
        .send(
            post()
                .header("origin", "http://localhost:3000")
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        ok.header("access-control-expose-headers"),
        Some("Last-Event-ID")
    );
    let error = app
        .send(post().header("origin", APP).form("data=no-topic"))
        .await;
    assert_eq!(error.status, StatusCode::BAD_REQUEST);
    assert_eq!(error.header("access-control-allow-origin"), Some(APP));
    assert!(error.error().contains("missing topic"));
    let stream = app
        .head(
            req("GET", &format!("{HUB}?topic=a"))
                .header("origin", APP)
                .empty(),
        )
        .await;
    assert_eq!(stream.0, StatusCode::OK);
    assert_eq!(stream.1["access-control-allow-origin"], APP);
    assert_eq!(stream.1["access-control-allow-credentials"], "true");
    // No Origin: a same-origin or non-browser request, no CORS headers.
    let plain = app.send(post().form("topic=a&data=x")).await;
    assert_eq!(plain.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_star_allows_every_origin_but_never_credentials() {
    let app = TestApp::new(listing(&["*"]));
    let answer = app.send(preflight("https://any.example", "GET", "")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(answer.header("access-control-allow-credentials"), None);
    assert_eq!(answer.header("access-control-allow-headers"), None);
    let publish = app
        .send(
            post()
                .header("origin", "https://any.example")
                .form("topic=a&data=x"),
        )
        .await;
    assert_eq!(publish.header("access-control-allow-origin"), Some("*"));
    assert_eq!(publish.header("access-control-allow-credentials"), None);
    // A listed origin beside the star keeps its credentials.
    let both = TestApp::new(listing(&["*", APP]));
    let listed = both.send(preflight(APP, "GET", "")).await;
    assert_eq!(listed.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        listed.header("access-control-allow-credentials"),
        Some("true")
    );
}

#[tokio::test]
async fn without_a_list_there_is_no_cors_at_all() {
    let app = TestApp::new(with_key());
    let answer = app.send(preflight(APP, "POST", "authorization")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.header("access-control-allow-origin"), None);
    let publish = app.send(post().header("origin", APP).form("topic=a")).await;
    assert_eq!(publish.status, StatusCode::UNAUTHORIZED);
    assert_eq!(publish.header("access-control-allow-origin"), None);
}
