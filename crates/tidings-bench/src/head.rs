//! Opening a subscription: the request goes out, the response head comes
//! back and says how the body is framed.

use std::io;
use std::net::{IpAddr, SocketAddr};

use nix::sys::socket::{setsockopt, sockopt};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};

use crate::body::{Body, Chunked};

/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How many header fields a response head may have.
const MAX_HEADERS: usize = 64;

/// Why a subscription did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The TCP connection failed.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// Binding to the source address failed.
    #[error("bind to source address: {0}")]
    Bind(io::Error),
    /// Reading or writing failed after connecting.
    #[error("i/o: {0}")]
    Io(io::Error),
    /// The server closed before the response head was complete.
    #[error("closed before the response head")]
    Closed,
    /// The response head was larger than [`MAX_HEAD`].
    #[error("response head too large")]
    HeadTooLarge,
    /// The response head did not parse.
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    /// A status other than 200.
    #[error("status {0}")]
    Status(u16),
    /// A content type other than `text/event-stream`.
    #[error("content type {0:?}")]
    ContentType(String),
    /// The attempt took longer than allowed.
    #[error("timed out")]
    Timeout,
}

impl OpenError {
    /// A short, stable name for counting errors by kind.
    pub fn kind(&self) -> String {
        match self {
            Self::Connect(err) => format!("connect: {}", err.kind()),
            Self::Bind(err) => format!("bind: {}", err.kind()),
            Self::Io(err) => format!("i/o: {}", err.kind()),
            Self::Closed => "closed before head".to_owned(),
            Self::HeadTooLarge => "head too large".to_owned(),
            Self::Malformed(_) => "malformed head".to_owned(),
            Self::Status(code) => format!("status {code}"),
            Self::ContentType(_) => "content type".to_owned(),
            Self::Timeout => "timeout".to_owned(),
        }
    }
}

/// A TCP connection to `dest`, from `source` when given.
///
/// With a source address the socket is bound before connecting, with
/// `IP_BIND_ADDRESS_NO_PORT` so that the kernel picks the source port at
/// connect time by the whole 4-tuple: each source address then offers the
/// whole ephemeral port range to each server address.
pub async fn connect(dest: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, OpenError> {
    let socket = if dest.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(OpenError::Connect)?;
    if let Some(ip) = source {
        if ip.is_ipv4() {
            setsockopt(&socket, sockopt::IpBindAddressNoPort, &true)
                .map_err(|errno| OpenError::Bind(errno.into()))?;
        }
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(OpenError::Bind)?;
    }
    socket.connect(dest).await.map_err(OpenError::Connect)
}

/// Sends `request` and reads the response head. Returns how the body is
/// framed and the body bytes that came with the head.
pub async fn open(stream: &mut TcpStream, request: &[u8]) -> Result<(Body, Vec<u8>), OpenError> {
    stream.write_all(request).await.map_err(OpenError::Io)?;
    // Response heads are a few hundred bytes; start small (this buffer is
    // allocated by every subscriber at once while connecting) and grow
    // when a head is larger.
    let mut buf = Vec::with_capacity(512);
    loop {
        stream.readable().await.map_err(OpenError::Io)?;
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        match stream.try_read_buf(&mut buf) {
            Ok(0) => return Err(OpenError::Closed),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(OpenError::Io(err)),
        }
        if let Some((body, head_len)) = parse_head(&buf)? {
            buf.drain(..head_len);
            return Ok((body, buf));
        }
        if buf.len() > MAX_HEAD {
            return Err(OpenError::HeadTooLarge);
        }
    }
}

/// Parses a complete response head at the start of `buf`: the body framing
/// and the head's length, or `None` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Body, usize)>, OpenError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf).map_err(OpenError::Malformed)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.unwrap_or(0);
    if status != 200 {
        return Err(OpenError::Status(status));
    }
    let mut body = Body::UntilClose;
    let mut content_type = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(String::from_utf8_lossy(header.value).into_owned());
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = String::from_utf8_lossy(header.value).to_ascii_lowercase();
            if value.split(',').any(|coding| coding.trim() == "chunked") {
                body = Body::Chunked(Chunked::new());
            }
        } else if header.name.eq_ignore_ascii_case("content-length")
            && !matches!(body, Body::Chunked(_))
            && let Some(len) = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
        {
            body = Body::Length(len);
        }
    }
    match content_type {
        Some(ct)
            if ct
                .trim()
                .to_ascii_lowercase()
                .starts_with("text/event-stream") => {}
        other => return Err(OpenError::ContentType(other.unwrap_or_default())),
    }
    Ok(Some((body, head_len)))
}

#[cfg(test)]
mod tests {
    use super::{OpenError, parse_head};
    use crate::body::Body;

    #[test]
    fn reads_the_framing() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\
            Transfer-Encoding: chunked\r\n\r\n5\r\n";
        let (body, len) = parse_head(head).unwrap().unwrap();
        assert!(matches!(body, Body::Chunked(_)));
        assert_eq!(&head[len..], b"5\r\n");

        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive\r\n\r\n";
        assert!(matches!(
            parse_head(head).unwrap().unwrap().0,
            Body::UntilClose
        ));

        let head =
            b"HTTP/1.1 200 OK\r\ncontent-type: TEXT/EVENT-STREAM\r\ncontent-length: 7\r\n\r\n";
        assert!(matches!(
            parse_head(head).unwrap().unwrap().0,
            Body::Length(7)
        ));

        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Ty")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn refuses_what_is_not_a_stream() {
        let head = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n";
        assert!(matches!(parse_head(head), Err(OpenError::Status(404))));
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
        assert!(matches!(parse_head(head), Err(OpenError::ContentType(_))));
        assert!(matches!(
            parse_head(b"NOPE\r\n\r\n"),
            Err(OpenError::Malformed(_))
        ));
    }
}
