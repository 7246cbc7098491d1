//! The routes. `app()` is separate from the server loop so that tests and
//! other servers can mount it.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{Method, StatusCode, Uri, header};
use tidings_core::Readiness;

use crate::error::AppError;
use crate::state::AppState;
use crate::{assets, cors, publish, subscribe, subscriptions};

/// The Mercure hub URL.
pub const HUB_PATH: &str = "/.well-known/mercure";
/// Subscribe alias for people coming from the classic tutorials.
pub const EVENTS_PATH: &str = "/events";
/// Publish alias for people coming from the classic tutorials.
pub const PUBLISH_PATH: &str = "/publish";
/// Liveness: 200 while the process serves.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness: 200 when the hub can take publishes, else 503 with the
/// reason.
pub const READYZ_PATH: &str = "/readyz";

/// Every route of the hub.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(HUB_PATH, get(subscribe::handler).post(publish::handler))
        .route(EVENTS_PATH, get(subscribe::handler))
        .route(PUBLISH_PATH, post(publish::handler))
        .route(subscriptions::PATH, get(subscriptions::handler))
        .route(
            &format!("{}/", subscriptions::PATH),
            get(subscriptions::handler),
        )
        .route(
            &format!("{}/{{*rest}}", subscriptions::PATH),
            get(subscriptions::handler),
        )
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::layer,
        ))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    if state.hub().is_serving() {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "status": "ok" })),
        )
            .into_response()
    } else {
        AppError::unavailable("the hub is shutting down").into_response()
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    readiness_response(state.hub().readiness())
}

/// `GET /readyz`'s answer: 200 `{"status":"ready"}`, or 503
/// `{"status":"not_ready","reason":…,"error":…}` naming why.
pub(crate) fn readiness_response(readiness: Readiness) -> Response {
    if readiness.is_ready() {
        return (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "status": "ready" })),
        )
            .into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({
            "status": "not_ready",
            "reason": readiness.reason(),
            "error": readiness.to_string(),
        })),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let handle = state
        .metrics()
        .ok_or_else(|| AppError::unavailable("metrics are not recorded in this process"))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

/// Embedded files for `GET` (the operator page's only with `--ui`), a
/// JSON 404 for everything else.
async fn fallback(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    if method == Method::GET {
        if let Some(asset) = assets::get(uri.path()) {
            return asset;
        }
        if state.config().ui {
            if uri.path() == "/ui" {
                return axum::response::Redirect::permanent("/ui/").into_response();
            }
            if let Some(asset) = assets::get_ui(uri.path()) {
                return asset;
            }
        }
    }
    AppError::new(StatusCode::NOT_FOUND, "no such resource").into_response()
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this resource",
    )
}
