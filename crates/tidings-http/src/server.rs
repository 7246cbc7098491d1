//! The listener: a connection's whole life, from accept to close, and the
//! hub's graceful shutdown.
//!
//! Each accepted connection gets a task. It reads the first request head
//! itself: a subscribe request goes to the lean `raw` transport, anything
//! else (and anything it cannot parse) goes to hyper with the bytes read so
//! far put back, so hyper answers malformed requests as any HTTP server
//! would. On shutdown the listener closes, the hub ends every stream after
//! flushing what is queued (clients reconnect with their `Last-Event-ID`),
//! hyper finishes in-flight requests, and the process waits for all
//! connections up to a grace period.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::BytesMut;
use http::{Method, Request, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::app::{EVENTS_PATH, HUB_PATH, app};
use crate::prefixed::Prefixed;
use crate::state::AppState;
use crate::subscribe::AbortSlot;
use crate::{metrics, raw};

/// The longest request head the lean path reads before handing the
/// connection to hyper.
const MAX_HEAD: usize = 8 * 1024;

/// The most headers the lean path parses; more goes to hyper.
const MAX_HEADERS: usize = 48;

/// Serves `listener` until `shutdown` resolves, then shuts down gracefully.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let router = app(state.clone());
    let tracker = TaskTracker::new();
    let open = Arc::new(AtomicUsize::new(0));
    let max = state.config().max_connections;
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if open.load(Ordering::Relaxed) >= max {
                        // Full: close at once rather than run out of file
                        // descriptors for the connections already served.
                        tracing::debug!(%peer, max, "refusing a connection over the limit");
                        drop(stream);
                        continue;
                    }
                    let connection = Connection {
                        open: Guard::new(&open),
                        tracker: tracker.clone(),
                        state: state.clone(),
                        router: router.clone(),
                        watcher: graceful.watcher(),
                        peer,
                    };
                    let run = connection.run(stream);
                    tracing::trace!(bytes = std::mem::size_of_val(&run), "connection task");
                    tracker.spawn(run);
                }
                Err(err) => {
                    // Out of file descriptors, most likely: let connections
                    // close instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; ending streams");
    state.hub().shutdown().await;
    tracker.close();
    let grace = state.config().shutdown_grace;
    let finished = tokio::time::timeout(grace, async {
        graceful.shutdown().await;
        tracker.wait().await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            ?grace,
            "connections still open after the grace period; closing them"
        );
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// Counts a connection as open while it lives.
struct Guard(Arc<AtomicUsize>);

impl Guard {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        metrics::connections().increment(1.0);
        Self(Arc::clone(open))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        metrics::connections().decrement(1.0);
    }
}

/// One accepted connection.
struct Connection {
    /// Keeps the connection counted until it ends.
    open: Guard,
    /// Where the connection's long-lived stream task is spawned.
    tracker: TaskTracker,
    /// The hub and its configuration.
    state: AppState,
    /// Every route, for requests hyper serves.
    router: Router,
    /// Lets shutdown ask hyper to finish.
    watcher: Watcher,
    /// Who is on the other end (dev mode lets loopback peers publish).
    peer: SocketAddr,
}

/// What the first request head turned out to be.
enum Head {
    /// A subscribe request: served by the lean path.
    Subscribe(http::request::Parts),
    /// Anything else: these bytes were read and go back in front.
    Other(BytesMut),
    /// The peer left, or took too long.
    Gone,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let timeout = self.state.config().header_timeout;
        if let Some(tls) = self.state.config().tls.clone() {
            // TLS connections are served by hyper, HTTP/2 or HTTP/1.1 as
            // the client chose by ALPN. Boxed, like every hyper connection:
            // the lean path's future, which most long-lived connections
            // take, stays small.
            Box::pin(async move {
                match tokio::time::timeout(timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => self.serve_hyper(stream).await,
                    Ok(Err(err)) => tracing::debug!(error = %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            })
            .await;
            return;
        }
        let head = tokio::time::timeout(timeout, read_head(&stream))
            .await
            .unwrap_or(Ok(Head::Gone))
            .unwrap_or(Head::Gone);
        match head {
            Head::Subscribe(parts) => {
                let mut stream = stream;
                let opened =
                    Box::pin(raw::open(&mut stream, parts, self.peer.ip(), &self.state)).await;
                if let Some((subscription, head)) = opened {
                    // A fresh task for the stream: this one, sized for
                    // reading and opening, ends here.
                    let open = self.open;
                    self.tracker.spawn(async move {
                        raw::pump(stream, subscription, head).await;
                        drop(open);
                    });
                }
            }
            Head::Other(read) => {
                let io = Prefixed::new(read.freeze(), stream);
                Box::pin(self.serve_hyper(io)).await;
            }
            Head::Gone => {}
        }
    }

    /// Hands the connection to hyper (HTTP/1.1 with keep-alive, or HTTP/2
    /// with prior knowledge).
    async fn serve_hyper<I>(self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let slot = AbortSlot::default();
        let router = self.router;
        let peer = self.peer;
        let request_slot = slot.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            // Only HTTP/1 carries one stream per connection task.
            if request.version() <= Version::HTTP_11 {
                request.extensions_mut().insert(request_slot.clone());
            }
            router.clone().oneshot(request.map(Body::new))
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.state.config().header_timeout);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let connection = self.watcher.watch(connection.into_owned());
        let _open = self.open;
        tokio::select! {
            result = connection => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
            }
            end = poll_fn(|cx| slot.poll_abort(cx)) => {
                tracing::debug!(reason = end.as_str(), "dropping a connection whose stream stalled");
            }
        }
    }
}

/// Reads until the first request head is complete, then tells what it is.
async fn read_head(stream: &TcpStream) -> io::Result<Head> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        // Borrowing the socket mutably for the read alone keeps the future
        // small.
        let n = read_some(stream, &mut buf).await?;
        if n == 0 {
            return Ok(Head::Gone);
        }
        match classify(&buf) {
            Some(head) => return Ok(head.unwrap_or(Head::Other(buf))),
            None if buf.len() >= MAX_HEAD => return Ok(Head::Other(buf)),
            None => {}
        }
    }
}

async fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        let spare = buf.capacity() - buf.len();
        if spare < 512 {
            buf.reserve(1024);
        }
        match stream.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
}

/// `None`: the head is incomplete. `Some(None)`: not for the lean path.
fn classify(buf: &[u8]) -> Option<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(None),
        Ok(httparse::Status::Complete(_)) => Some(lean_subscribe(&request)),
    }
}

/// The head of a subscribe request the lean path can serve: `GET` on the
/// hub URL or its alias, no body, no upgrade.
fn lean_subscribe(request: &httparse::Request<'_, '_>) -> Option<Head> {
    if request.method != Some("GET") {
        return None;
    }
    let target = request.path?;
    let path = target.split('?').next().unwrap_or_default();
    if path != HUB_PATH && path != EVENTS_PATH {
        return None;
    }
    let version = match request.version? {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut builder = http::Request::builder()
        .method(Method::GET)
        .uri(target)
        .version(version);
    for header in request.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        let has_body =
            (name == "content-length" && header.value != b"0") || name == "transfer-encoding";
        if has_body || name == "upgrade" {
            return None;
        }
        builder = builder.header(header.name, header.value);
    }
    let (parts, ()) = builder.body(()).ok()?.into_parts();
    Some(Head::Subscribe(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(head: &[u8]) -> &'static str {
        match classify(head) {
            None => "partial",
            Some(None) => "other",
            Some(Some(Head::Subscribe(_))) => "subscribe",
            Some(Some(_)) => "unexpected",
        }
    }

    #[test]
    fn what_goes_the_lean_way() {
        assert_eq!(
            kind(b"GET /.well-known/mercure?topic=a HTTP/1.1\r\nHost: x\r\n\r\n"),
            "subscribe"
        );
        assert_eq!(kind(b"GET /events?topic=a HTTP/1.0\r\n\r\n"), "subscribe");
        assert_eq!(
            kind(b"GET /events?topic=a HTTP/1.1\r\nHost: x\r\n"),
            "partial"
        );
        assert_eq!(kind(b"POST /.well-known/mercure HTTP/1.1\r\n\r\n"), "other");
        assert_eq!(kind(b"GET / HTTP/1.1\r\n\r\n"), "other");
        assert_eq!(
            kind(b"GET /events HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            "other"
        );
        assert_eq!(
            kind(b"GET /events HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            "other"
        );
        assert_eq!(kind(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "other");
        assert_eq!(kind(b"\x00\x01garbage\r\n\r\n"), "other");
    }
}
