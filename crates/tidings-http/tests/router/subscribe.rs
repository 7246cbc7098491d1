//! Subscribe requests through hyper's path: the response head, and the
//! request errors answered before a stream opens.

use http::StatusCode;
use tidings_http::ServerConfig;

use crate::{HUB, TestApp, req};

#[tokio::test]
async fn a_stream_opens_with_its_headers() {
    let app = TestApp::dev();
    let id = app
        .send(crate::post().form("topic=a&data=x&id=known"))
        .await;
    assert_eq!(id.status, StatusCode::OK);
    let (status, headers) = app
        .head(
            req("GET", "/events?topic=a")
                .header("last-event-id", "known")
                .empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert_eq!(headers["last-event-id"], "known");
}

#[tokio::test]
async fn bad_subscribe_requests_are_400() {
    let config = ServerConfig {
        max_selectors: 2,
        ..ServerConfig::default()
    };
    let app = TestApp::new(config);
    let none = app.send(req("GET", HUB).empty()).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert!(
        none.error().starts_with("missing topic"),
        "{}",
        none.error()
    );
    let many = app
        .send(req("GET", &format!("{HUB}?topic=a&topic=b&topic=c")).empty())
        .await;
    assert_eq!(many.status, StatusCode::BAD_REQUEST);
    assert!(
        many.error().contains("3 given, at most 2"),
        "{}",
        many.error()
    );
    let bad_query = app
        .send(req("GET", &format!("{HUB}?topic=%FF")).empty())
        .await;
    assert_eq!(bad_query.status, StatusCode::BAD_REQUEST);
    let mut latin1 = req("GET", &format!("{HUB}?topic=a")).empty();
    latin1.headers_mut().insert(
        "last-event-id",
        http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
    );
    let bad_header = app.send(latin1).await;
    assert_eq!(bad_header.status, StatusCode::BAD_REQUEST);
    assert!(
        bad_header.error().contains("not valid UTF-8"),
        "{}",
        bad_header.error()
    );
}
