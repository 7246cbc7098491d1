//! A scriptable HTTP/1.1 server on a loopback socket: each test accepts
//! connections, reads the request the client really sent, and writes the
//! response byte for byte, with flushes and pauses where it wants them.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a part")]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A listener on 127.0.0.1, on a free port unless one is asked for.
pub struct Server {
    pub listener: TcpListener,
    pub addr: SocketAddr,
}

impl Server {
    pub async fn bind() -> Self {
        Self::bind_to("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn bind_to(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self { listener, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next connection and the request on it; panics after `PATIENCE`.
    pub async fn accept(&self) -> (Conn, Request) {
        self.accept_within(PATIENCE)
            .await
            .expect("no connection came")
    }

    /// The next connection within `wait`, if one comes.
    pub async fn accept_within(&self, wait: Duration) -> Option<(Conn, Request)> {
        let (stream, _) = timeout(wait, self.listener.accept()).await.ok()?.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut conn = Conn { stream };
        let request = conn.read_request().await;
        Some((conn, request))
    }
}

/// What the client sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Names lowercased; values as raw bytes (Last-Event-ID is UTF-8).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).map(|v| std::str::from_utf8(v).unwrap())
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// By closing the connection: a cut looks like a clean end.
    Close,
    /// Chunked transfer coding: a cut before the last chunk is an error.
    Chunked,
}

/// One accepted connection.
pub struct Conn {
    stream: TcpStream,
}

impl Conn {
    /// The next request on this connection (a client may reuse it).
    pub async fn read_request(&mut self) -> Request {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed before sending a request");
            buf.extend_from_slice(&chunk[..n]);
        };
        let mut lines = buf[..head_end].split(|b| *b == b'\n');
        let request_line = String::from_utf8_lossy(lines.next().unwrap()).into_owned();
        let mut parts = request_line.trim_end().split(' ');
        let method = parts.next().unwrap().to_owned();
        let target = parts.next().unwrap().to_owned();
        let headers: Vec<(String, Vec<u8>)> = lines
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter_map(|line| {
                let colon = line.iter().position(|b| *b == b':')?;
                let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
                let value = line[colon + 1..].trim_ascii().to_vec();
                Some((name, value))
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| std::str::from_utf8(v).unwrap().parse().unwrap());
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed in the request body");
            body.extend_from_slice(&chunk[..n]);
        }
        Request {
            method,
            target,
            headers,
            body,
        }
    }

    /// Writes a status line and headers. With `content_type` `None`, no
    /// Content-Type header is sent.
    pub async fn head(
        &mut self,
        status: u16,
        content_type: Option<&str>,
        extra: &[(&str, &str)],
        framing: Framing,
    ) {
        let mut head = format!("HTTP/1.1 {status} Whatever\r\nCache-Control: no-cache\r\n");
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match framing {
            Framing::Close => head.push_str("Connection: close\r\n"),
            Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        self.write(head.as_bytes()).await;
    }

    /// A response with no body (204, redirects, errors), then close.
    pub async fn respond_empty(mut self, status: u16, extra: &[(&str, &str)]) {
        let mut head = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\n");
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        self.write(head.as_bytes()).await;
    }

    /// Writes body bytes as one piece (one chunk when chunked) and flushes.
    pub async fn send(&mut self, framing: Framing, bytes: &[u8]) {
        match framing {
            Framing::Close => self.write(bytes).await,
            Framing::Chunked => {
                let mut piece = format!("{:x}\r\n", bytes.len()).into_bytes();
                piece.extend_from_slice(bytes);
                piece.extend_from_slice(b"\r\n");
                self.write(&piece).await;
            }
        }
    }

    /// Ends a chunked body cleanly (the client sees a clean end of stream).
    pub async fn finish_chunked(&mut self) {
        self.write(b"0\r\n\r\n").await;
    }

    /// Writes raw bytes and flushes; a client that went away is not an
    /// error here (tests check what the client saw).
    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// Whether the client closed its end (reads EOF within `wait`).
    pub async fn closed_by_peer_within(&mut self, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            timeout(wait, self.stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}
