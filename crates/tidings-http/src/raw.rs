//! The lean transport for event streams over HTTP/1.
//!
//! A subscribe request that opens a connection is answered here instead of
//! by hyper: the response head is written once, and from then on the
//! connection is a socket that the subscription's frames are written to
//! with vectored writes, no HTTP framing (the body ends when the connection
//! does, which HTTP/1 allows and every EventSource understands). This keeps
//! an idle subscriber down to its task, its socket and its queue: hyper
//! would hold an 8 KiB read buffer and more per connection for a request
//! that has long been read.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut as _, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use tidings_core::{AbortWatch, DirectWrite, Subscription};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::error::AppError;
use crate::state::AppState;
use crate::subscribe;

/// Opens the subscription that the request head `parts` (read from
/// `stream`) asks for, and returns it with the response head to write; or
/// answers the error and returns `None`.
pub(crate) async fn open(
    stream: &mut TcpStream,
    parts: Parts,
    peer: IpAddr,
    state: &AppState,
) -> Option<(Subscription, Bytes)> {
    match subscribe::open(&parts, Some(peer), state).await {
        Ok(subscription) => {
            let head = response_head(subscribe::response_headers(
                &subscription,
                &parts.headers,
                state,
            ));
            Some((subscription, head))
        }
        Err(err) => {
            let cors = state.config().cors.response_headers(&parts.headers);
            let _ = stream.write_all(&error_response(&err, &cors)).await;
            None
        }
    }
}

/// Writes the response head, then frames until the subscription ends or
/// the peer goes. The server runs this as a task of its own, so that an
/// idle subscriber holds this future's few hundred bytes and nothing of
/// how its request was read and authorized.
pub(crate) async fn pump(stream: TcpStream, mut subscription: Subscription, head: Bytes) {
    let watch = subscription.abort_watch();
    let socket = Arc::new(Socket(stream));
    let stream = &socket.0;
    let mut frames = vec![head];
    let mut direct = Some(Arc::clone(&socket));
    loop {
        if let Err(err) = write_all(stream, &frames, &watch).await {
            tracing::debug!(error = %err, "event stream write failed");
            return;
        }
        subscription.written();
        if let Some(direct) = direct.take() {
            // The head is out: from now on the fan-out may write events
            // itself whenever this task has nothing unwritten.
            subscription.write_through(direct);
        }
        // Let go of the batch's room: an idle stream, which the fan-out
        // mostly writes to by itself, holds no buffer (a batch later costs
        // one allocation, next to its system call).
        frames = Vec::new();
        // One poll function for both waits: no future is stored per
        // stream, only the socket's and the queue's wakers.
        let next = poll_fn(|cx| {
            if peer_gone(stream, cx) {
                return Poll::Ready(None);
            }
            subscription.poll_next(cx, &mut frames).map(Some)
        })
        .await;
        match next {
            Some(Ok(())) => {}
            Some(Err(end)) => {
                tracing::debug!(reason = end.as_str(), "event stream ends");
                return;
            }
            None => return,
        }
    }
}

/// The connection, shared by this task and the fan-out, which writes to it
/// only while this task waits with nothing unwritten (`write_through`).
#[derive(Debug)]
struct Socket(TcpStream);

impl DirectWrite for Socket {
    /// `sendmsg`, not tokio's `writev`: the fan-out makes one of these per
    /// subscriber and event, and a socket send skips the file layer
    /// (`vfs_writev`, the file position lock), about a tenth of what the
    /// fan-out thread spent per subscriber in `perf` (BENCHMARKS.md). It
    /// leaves tokio's readiness alone: when it would block, the task's own
    /// write finds that out.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        socket2::SockRef::from(&self.0).send_vectored(bufs)
    }
}

/// Writes every byte of `frames`, with as few system calls as the socket
/// allows; gives up when the watch says the stream must stop.
async fn write_all(stream: &TcpStream, frames: &[Bytes], watch: &AbortWatch) -> io::Result<()> {
    let mut index = 0;
    let mut offset = 0;
    poll_fn(|cx| {
        loop {
            let mut slices = [IoSlice::new(&[]); 64];
            let mut count = 0;
            for (slot, frame) in slices.iter_mut().zip(frames.iter().skip(index)) {
                let skip = if count == 0 { offset } else { 0 };
                *slot = IoSlice::new(frame.get(skip..).unwrap_or_default());
                count += 1;
            }
            if count == 0 {
                return Poll::Ready(Ok(()));
            }
            match stream.try_write_vectored(slices.get(..count).unwrap_or_default()) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(mut written) => {
                    while let Some(frame) = frames.get(index) {
                        let left = frame.len() - offset;
                        if written < left {
                            offset += written;
                            break;
                        }
                        written -= left;
                        index += 1;
                        offset = 0;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    if let Poll::Ready(end) = watch.poll_abort(cx) {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            end.as_str(),
                        )));
                    }
                    match stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    })
    .await
}

/// Whether the peer closed its side (or the socket failed); registers for
/// readability otherwise. A client has nothing to say on an event stream:
/// whatever it sends is dropped.
fn peer_gone(stream: &TcpStream, cx: &mut Context<'_>) -> bool {
    loop {
        match stream.poll_read_ready(cx) {
            Poll::Pending => return false,
            Poll::Ready(Err(_)) => return true,
            Poll::Ready(Ok(())) => match stream.try_read(&mut [0u8; 64]) {
                Ok(0) => return true,
                // Dropped; and on WouldBlock the readiness is cleared, so
                // the next poll registers the waker.
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return true,
            },
        }
    }
}

/// The response head of an event stream whose body ends with the
/// connection.
fn response_head(headers: Vec<(HeaderName, HeaderValue)>) -> Bytes {
    let mut head = BytesMut::with_capacity(256);
    head.put_slice(b"HTTP/1.1 200 OK\r\n");
    for (name, value) in headers {
        head.put_slice(name.as_str().as_bytes());
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    head.put_slice(b"connection: close\r\n\r\n");
    head.freeze()
}

/// A complete error response that closes the connection.
fn error_response(err: &AppError, extra: &[(HeaderName, HeaderValue)]) -> Bytes {
    let body = err.body();
    let mut out = BytesMut::with_capacity(160 + body.len());
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(err.status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(err.status.canonical_reason().unwrap_or("Error").as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in extra {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"content-type: application/json\r\ncontent-length: ");
    out.put_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.put_slice(b"\r\nconnection: close\r\n\r\n");
    out.put_slice(body.as_bytes());
    out.freeze()
}
