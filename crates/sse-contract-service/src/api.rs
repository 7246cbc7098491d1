//! The REST protocol of the harness: status, create, command, close, stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{HOST, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::instance::{CreateStream, Instance};

/// Every optional feature of the harness that tidings-client has. Not
/// declared: `event-type-listeners` (the client hands over every event
/// without being told the types first).
const CAPABILITIES: &[&str] = &[
    "comments",
    "headers",
    "last-event-id",
    "post",
    "report",
    "read-timeout",
    "restart",
    "204",
    "bom",
    "empty-or-missing-location",
    "payload-size-stress-testable",
];

/// What the handlers share.
#[derive(Debug, Default)]
struct Service {
    /// The SSE client instances, by the id in their resource URL.
    instances: Mutex<HashMap<u64, Instance>>,
    /// The id of the next instance.
    next_id: AtomicU64,
    /// Notified by `DELETE /`: the service stops.
    stop: Notify,
}

impl Service {
    fn instances(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instance>> {
        // A panic while holding the lock leaves the map intact.
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves the API on `addr` until `DELETE /`.
pub(crate) async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    // Stdout is line-buffered: the line is out before the first request.
    #[allow(
        clippy::print_stdout,
        reason = "tells scripts and tests where to connect"
    )]
    {
        println!("listening on http://{local}");
    }
    let service = Arc::new(Service::default());
    let app = Router::new()
        .route("/", get(status).post(create).delete(stop))
        .route("/streams/{id}", post(command).delete(close))
        .with_state(Arc::clone(&service));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { service.stop.notified().await })
        .await
}

/// `GET /`: alive, and what the client can do.
async fn status() -> Response {
    let body = serde_json::json!({
        "name": "tidings-client",
        "capabilities": CAPABILITIES,
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /`: start an SSE client; `Location` names its resource.
async fn create(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Response {
    let params: CreateStream = match serde_json::from_slice(&body) {
        Ok(params) => params,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let instance = match Instance::start(params) {
        Ok(instance) => instance,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let id = service.next_id.fetch_add(1, Ordering::Relaxed);
    service.instances().insert(id, instance);
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let location = format!("http://{host}/streams/{id}");
    (StatusCode::CREATED, [(LOCATION, location)]).into_response()
}

/// A command to an instance.
#[derive(Debug, Deserialize)]
struct Command {
    /// `restart` is the only one this service knows.
    command: String,
}

/// `POST /streams/{id}`: a command.
async fn command(
    State(service): State<Arc<Service>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> StatusCode {
    let Ok(command) = serde_json::from_slice::<Command>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let instances = service.instances();
    let Some(instance) = instances.get(&id) else {
        return StatusCode::NOT_FOUND;
    };
    match command.command.as_str() {
        "restart" => {
            instance.restart();
            StatusCode::NO_CONTENT
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `DELETE /streams/{id}`: stop an instance.
async fn close(State(service): State<Arc<Service>>, Path(id): Path<u64>) -> StatusCode {
    match service.instances().remove(&id) {
        Some(instance) => {
            instance.close();
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// `DELETE /`: close every instance and quit.
async fn stop(State(service): State<Arc<Service>>) -> StatusCode {
    for (_, instance) in service.instances().drain() {
        instance.close();
    }
    service.stop.notify_one();
    StatusCode::NO_CONTENT
}
