//! Every error the HTTP side answers with, as one type: a status and a JSON
//! body `{"error": "…"}` naming the problem.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tidings_core::{PublishError, SubscribeError};

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
            PublishError::Store(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the history store failed; nothing was published",
            ),
            PublishError::ShuttingDown | PublishError::Unavailable(_) => {
                Self::unavailable(err.to_string())
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
            SubscribeError::Store(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the history store failed",
            ),
            SubscribeError::ShuttingDown => Self::unavailable(err.to_string()),
        }
    }
}
