//! Every error the HTTP side answers with, as one type: a status and a JSON
//! body `{"error": "…"}` naming the problem.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tidings_core::{PublishError, StoreError, StoreErrorKind, SubscribeError};

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// The response status.
    pub status: StatusCode,
    /// What was wrong, for people.
    pub message: String,
}

impl AppError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415: a content type the endpoint does not take.
    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type {got:?}: use application/x-www-form-urlencoded or application/json"
            ),
        )
    }

    /// 503: the hub cannot serve now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 507: there is no room to keep what was sent.
    pub fn insufficient_storage(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INSUFFICIENT_STORAGE, message)
    }

    /// A store failure: `outcome` says what came of the request.
    fn store(err: &StoreError, outcome: &str) -> Self {
        let detail = &err.message;
        match err.kind {
            StoreErrorKind::Full => Self::unavailable(format!(
                "the history store's disk is full ({detail}): {outcome}"
            )),
            StoreErrorKind::Unavailable => Self::unavailable(format!(
                "the history store cannot be used now ({detail}): {outcome}; retry later"
            )),
            StoreErrorKind::Closed => Self::unavailable("the hub is shutting down"),
            StoreErrorKind::Damaged => Self::unavailable(format!(
                "the history file looks damaged ({detail}): {outcome}; see docs/storage.md"
            )),
            StoreErrorKind::Invalid => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the history store failed ({detail}): {outcome}"),
            ),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.message }).to_string()
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for AppError {}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<PublishError> for AppError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Invalid { .. } => Self::bad_request(err.to_string()),
            PublishError::Conflict { .. } => Self::new(StatusCode::CONFLICT, err.to_string()),
            // A publish that finds no room: 507, however the store put it.
            PublishError::Store(store) if store.kind == StoreErrorKind::Full => {
                Self::insufficient_storage(
                    "the history store's disk is full: nothing was published; publishing resumes by itself once space is freed",
                )
            }
            PublishError::Store(store) => Self::store(&store, "nothing was published"),
            PublishError::ShuttingDown | PublishError::Unavailable(_) => {
                Self::unavailable(format!("{err}; nothing was published"))
            }
            PublishError::EngineFull(_) => {
                Self::insufficient_storage(format!("{err}; nothing was published"))
            }
            PublishError::RetainedFull { .. } => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, err.to_string())
            }
        }
    }
}

impl From<SubscribeError> for AppError {
    fn from(err: SubscribeError) -> Self {
        match err {
            SubscribeError::Store(store) => Self::store(&store, "the subscription could not start"),
            SubscribeError::ShuttingDown => Self::unavailable(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn store(kind: StoreErrorKind) -> PublishError {
        PublishError::Store(Arc::new(StoreError::new(kind, "what the store said")))
    }

    /// Each fault of a publish maps to its status, with a message that
    /// names the cause and says that nothing was published.
    #[test]
    fn publish_faults_by_kind() {
        let cases = [
            (store(StoreErrorKind::Full), 507, "disk is full"),
            (
                store(StoreErrorKind::Unavailable),
                503,
                "cannot be used now",
            ),
            (store(StoreErrorKind::Damaged), 503, "looks damaged"),
            (store(StoreErrorKind::Invalid), 500, "failed"),
            (
                PublishError::EngineFull("Redis: OOM".into()),
                507,
                "cluster engine is full",
            ),
            (
                PublishError::Unavailable("Redis: refused".into()),
                503,
                "cluster engine is unavailable",
            ),
            (PublishError::ShuttingDown, 503, "shutting down"),
        ];
        for (err, status, text) in cases {
            let app = AppError::from(err);
            assert_eq!(app.status.as_u16(), status, "{app}");
            assert!(app.message.contains(text), "{app}");
            assert!(app.message.contains("nothing was published"), "{app}");
        }
        let closed = AppError::from(store(StoreErrorKind::Closed));
        assert_eq!(closed.status.as_u16(), 503);
        // A subscribe never gets 507: it stores nothing.
        let full = AppError::from(SubscribeError::Store(StoreError::new(
            StoreErrorKind::Full,
            "no space",
        )));
        assert_eq!(full.status.as_u16(), 503);
    }
}
