//! Publishing: what is accepted, and every way a publish is refused, each
//! with its status and a JSON error naming the problem; nothing of a
//! refused publish is delivered.

use axum::body::Body;
use http::StatusCode;
use tidings_http::ServerConfig;

use crate::{HUB, TestApp, post, req};

#[tokio::test]
async fn accepted_form_and_json_answer_their_ids() {
    let app = TestApp::dev();
    let mut watcher = app.watch().await;
    let form = app.send(post().form("topic=a&data=one&id=first")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    assert_eq!(
        form.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(form.text(), "first");
    let batch = app
        .send(
            req("POST", "/publish")
                .json(r#"[{"topic":"a","data":"two"},{"topic":"b","data":"three"}]"#),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.text());
    let ids: Vec<String> = batch.text().lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.iter().all(|id| id.starts_with("urn:tidings:")),
        "{ids:?}"
    );
    let seen = watcher.until("data: three").await;
    for expected in ["id: first", "data: one", "data: two", "data: three"] {
        assert!(seen.contains(expected), "{expected} in {seen}");
    }
}

#[tokio::test]
async fn bad_content_types_are_415() {
    let app = TestApp::dev();
    for content_type in ["text/plain", "multipart/form-data; boundary=x", ""] {
        let answer = app
            .send(
                post()
                    .header("content-type", content_type)
                    .body("topic=a&data=x"),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert!(
            answer.error().contains("unsupported content type"),
            "{}",
            answer.error()
        );
    }
    let missing = app.send(post().body("topic=a&data=x")).await;
    assert_eq!(missing.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        missing
            .error()
            .contains("application/x-www-form-urlencoded")
    );
    // Parameters and case do not matter.
    let upper = app
        .send(
            post()
                .header(
                    "content-type",
                    "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                )
                .body("topic=a&data=x"),
        )
        .await;
    assert_eq!(upper.status, StatusCode::OK, "{}", upper.text());
}

#[tokio::test]
async fn a_missing_topic_is_400() {
    let app = TestApp::dev();
    let form = app.send(post().form("data=x")).await;
    assert_eq!(form.status, StatusCode::BAD_REQUEST);
    assert!(
        form.error().starts_with("missing topic"),
        "{}",
        form.error()
    );
    let json = app.send(post().json(r#"{"data":"x"}"#)).await;
    assert_eq!(json.status, StatusCode::BAD_REQUEST);
    assert!(json.error().contains("missing topic"), "{}", json.error());
    let in_batch = app
        .send(post().json(r#"[{"topic":"a","data":"x"},{"data":"y"}]"#))
        .await;
    assert_eq!(in_batch.status, StatusCode::BAD_REQUEST);
    assert!(
        in_batch.error().starts_with("update 1: missing topic"),
        "{}",
        in_batch.error()
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let config = ServerConfig {
        max_body: 32,
        ..ServerConfig::default()
    };
    let app = TestApp::new(config);
    let mut watcher = app.watch().await;
    let big = format!("topic=a&data={}", "x".repeat(64));
    // Declared too large: refused before reading.
    let declared = app
        .send(
            post()
                .header("content-length", &big.len().to_string())
                .form(&big),
        )
        .await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        declared
            .error()
            .contains("larger than the limit of 32 bytes"),
        "{}",
        declared.error()
    );
    // Not declared (chunked): refused while reading.
    let chunks = big
        .as_bytes()
        .chunks(8)
        .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
        .collect::<Vec<_>>();
    let streamed = app
        .send(
            post()
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from_stream(futures_util::stream::iter(chunks))),
        )
        .await;
    assert_eq!(streamed.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(streamed.error().contains("32 bytes"));
    // Exactly at the limit is fine.
    let fits = "topic=a&data=".to_owned() + &"y".repeat(32 - 13);
    assert_eq!(fits.len(), 32);
    let ok = app.send(post().form(&fits)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let seen = watcher.until("data: yyy").await;
    assert!(
        !seen.contains("xxx"),
        "a refused body was delivered: {seen}"
    );
}

#[tokio::test]
async fn bad_json_is_400_naming_the_problem() {
    let app = TestApp::dev();
    let cases = [
        (r#"{"topic":"a","data":"#, "invalid JSON update"),
        (r#"{"topic":"a","topics":"b"}"#, "unknown field `topics`"),
        (r#"{"topic":5}"#, "invalid JSON update"),
        ("42", "must be an update object or an array"),
        ("", "must be an update object or an array"),
    ];
    for (body, expected) in cases {
        let answer = app.send(post().json(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            answer.error().contains(expected),
            "{body}: {}",
            answer.error()
        );
    }
    let form = app.send(post().form("topic=a&data=%FF")).await;
    assert_eq!(form.status, StatusCode::BAD_REQUEST);
    assert!(form.error().contains("not valid UTF-8"), "{}", form.error());
}

#[tokio::test]
async fn invalid_ids_and_types_are_400_and_nothing_of_the_batch_goes_out() {
    let app = TestApp::dev();
    let mut watcher = app.watch().await;
    for body in [
        "topic=a&data=x&id=a%0Ab",
        "topic=a&data=x&id=%23reserved",
        "topic=a&data=x&id=urn%3Atidings%3A1",
        "topic=a&data=x&type=t%0Aid%3A+evil",
        "topic=a&data=x&retry=soon",
    ] {
        let answer = app.send(post().form(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(!answer.error().is_empty());
    }
    let batch = app
        .send(
            post().json(r#"[{"topic":"a","data":"good"},{"topic":"a","data":"bad","id":"x\ny"}]"#),
        )
        .await;
    assert_eq!(batch.status, StatusCode::BAD_REQUEST);
    assert!(batch.error().contains("update 1"), "{}", batch.error());
    app.send(post().form("topic=a&data=marker")).await;
    let seen = watcher.until("data: marker").await;
    assert!(
        !seen.contains("data: x") && !seen.contains("data: good"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_reused_id_with_other_data_is_409() {
    let app = TestApp::dev();
    let first = app.send(post().form("topic=a&data=one&id=book-1")).await;
    assert_eq!(first.status, StatusCode::OK);
    let retry = app.send(post().form("topic=a&data=one&id=book-1")).await;
    assert_eq!(retry.status, StatusCode::OK, "a retry: {}", retry.text());
    assert_eq!(retry.text(), "book-1");
    let conflict = app.send(post().form("topic=a&data=two&id=book-1")).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert!(conflict.error().contains("book-1"), "{}", conflict.error());
}

#[tokio::test]
async fn an_empty_batch_is_400() {
    let app = TestApp::dev();
    for body in ["[]", " [ ] "] {
        let answer = app.send(post().json(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.error(), "the batch holds no update");
    }
}

#[tokio::test]
async fn other_routes_and_methods_answer_json() {
    let app = TestApp::dev();
    let missing = app.send(req("GET", "/nothing-here").empty()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error(), "no such resource");
    let wrong = app.send(req("PUT", HUB).empty()).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong.error().contains("method not allowed"));
    let health = app.send(req("GET", "/healthz").empty()).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.text(), r#"{"status":"ok"}"#);
    app.hub.shutdown().await;
    let closing = app.send(req("GET", "/healthz").empty()).await;
    assert_eq!(closing.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(closing.error().contains("shutting down"));
    let publish = app.send(post().form("topic=a&data=late")).await;
    assert_eq!(
        publish.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        publish.text()
    );
}
