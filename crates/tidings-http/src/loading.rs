//! What the hub's address answers while the hub is not there yet: while
//! the durable history opens (a repair after a crash reads the whole file,
//! about 0.6 s per million events; `--check-history` about a second per
//! million) or the cluster engine is being connected.
//!
//! `GET /healthz` answers 200 (the process is alive), `GET /readyz` 503
//! with the reason `loading`, anything else 503 with a JSON error. Every
//! response closes its connection, so that clients come back to the full
//! hub once it serves.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tidings_core::Readiness;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::app::{HEALTHZ_PATH, READYZ_PATH, readiness_response};
use crate::error::AppError;

/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long requests in flight may take to finish once loading is done.
const DRAIN: Duration = Duration::from_secs(1);

/// Serves the loading answers on `listener` (over TLS with `tls`) until
/// `loading` resolves, then stops accepting, lets requests in flight finish
/// (up to a second) and returns what `loading` gave. The listener is left
/// open for the hub.
pub async fn serve_while_loading<T>(
    listener: &TcpListener,
    tls: Option<TlsAcceptor>,
    loading: impl Future<Output = T>,
) -> T {
    let router = router();
    let graceful = GracefulShutdown::new();
    let mut loading = std::pin::pin!(loading);
    let result = loop {
        tokio::select! {
            biased;
            result = &mut loading => break result,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let router = router.clone();
                    let watcher = graceful.watcher();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => answer(stream, router, watcher).await,
                            Some(tls) => {
                                if let Ok(Ok(stream)) =
                                    tokio::time::timeout(HEADER_TIMEOUT, tls.accept(stream)).await
                                {
                                    answer(stream, router, watcher).await;
                                }
                            }
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    };
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("requests still open when loading ended; closing them");
    }
    result
}

/// Serves one connection with `router`.
async fn answer<I>(io: I, router: Router, watcher: Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        router.clone().oneshot(request.map(Body::new))
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let _ = watcher.watch(connection.into_owned()).await;
}

fn router() -> Router {
    Router::new()
        .route(
            HEALTHZ_PATH,
            get(|| async {
                (
                    StatusCode::OK,
                    axum::Json(serde_json::json!({ "status": "ok" })),
                )
                    .into_response()
            }),
        )
        .route(
            READYZ_PATH,
            get(|| async { readiness_response(Readiness::Loading) }),
        )
        .fallback(|| async {
            AppError::unavailable("the hub is loading its history; try again shortly")
                .into_response()
        })
        .layer(axum::middleware::map_response(close))
}

/// Ends the connection after the response.
async fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
