//! Test support: start the real `tidings` binary on a free loopback port and
//! speak HTTP/1.1 to it over plain sockets, so that tests see exactly the
//! bytes a client would.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tidings_codec::{Decoder, Item, MessageEvent};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The hub's Mercure path.
pub const HUB: &str = "/.well-known/mercure";

/// `/.well-known/mercure?topic=…&topic=…` for `selectors`, each
/// percent-encoded.
pub fn target(selectors: &[&str]) -> String {
    let query: Vec<String> = selectors
        .iter()
        .map(|s| format!("topic={}", encode(s)))
        .collect();
    format!("{HUB}?{}", query.join("&"))
}

/// A running hub process.
pub struct TestHub {
    /// The process; killed on drop (before `data_dir` is removed).
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its log lines (JSON), collected in the background.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The fresh history directory `start` gave it, removed on drop.
    pub data_dir: Option<TempDir>,
}

/// A fresh directory under the system's temporary directory, removed on
/// drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path =
            std::env::temp_dir().join(format!("tidings-test-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestHub {
    /// Starts `tidings serve` with `args` on a free port, with a fresh
    /// `--data-dir` unless `args` choose the history (`--data-dir` or
    /// `--memory`).
    pub async fn start(args: &[&str]) -> Self {
        if args
            .iter()
            .any(|a| *a == "--memory" || *a == "--data-dir" || a.starts_with("--data-dir="))
        {
            return Self::spawn(args).await;
        }
        let dir = TempDir::new();
        let mut all = vec!["--data-dir", dir.path().to_str().unwrap()];
        all.extend_from_slice(args);
        let mut hub = Self::spawn(&all).await;
        hub.data_dir = Some(dir);
        hub
    }

    /// Starts `tidings serve` with `args` on a free port, its history in
    /// `dir` (which outlives the hub: for restarts).
    pub async fn start_in(dir: &std::path::Path, args: &[&str]) -> Self {
        let mut all = vec!["--data-dir", dir.to_str().unwrap()];
        all.extend_from_slice(args);
        Self::spawn(&all).await
    }

    /// Starts `tidings serve` with `args` and environment variables `env`
    /// on a free port, with a fresh `--data-dir`.
    pub async fn start_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new();
        let mut all = vec!["--data-dir", dir.path().to_str().unwrap()];
        all.extend_from_slice(args);
        let mut hub = Self::spawn_env(&all, env).await;
        hub.data_dir = Some(dir);
        hub
    }

    async fn spawn(args: &[&str]) -> Self {
        Self::spawn_env(args, &[]).await
    }

    async fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = serve_command(args, env)
            .spawn()
            .expect("cannot start tidings");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let log_writer = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = listening_address(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                log_writer.lock().unwrap().push(line);
            }
        });
        let addr = tokio::time::timeout(WAIT, rx)
            .await
            .expect("the hub did not start listening")
            .expect("the hub exited before listening");
        Self {
            child,
            addr,
            log,
            data_dir: None,
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends one request and reads the whole response (the connection is
    /// closed after it).
    pub async fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.addr, method, target, headers, body).await
    }

    /// Publishes a form-encoded update.
    pub async fn publish_form(&self, body: &str) -> Response {
        self.request(
            "POST",
            "/.well-known/mercure",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await
    }

    /// Publishes a JSON update or batch.
    pub async fn publish_json(&self, body: &str) -> Response {
        self.request(
            "POST",
            "/publish",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
    }

    /// Publishes `data` on `topic` and returns its id.
    pub async fn publish(&self, topic: &str, data: &str) -> String {
        let body = format!("topic={}&data={}", encode(topic), encode(data));
        let response = self.publish_form(&body).await;
        assert_eq!(response.status, 200, "{}", response.text());
        response.text()
    }

    /// Opens an event stream: `GET target` with `headers`.
    pub async fn subscribe(&self, target: &str, headers: &[(&str, &str)]) -> Stream {
        Stream::open(self.addr, target, headers).await
    }

    /// The value of a metric in `/metrics` (first sample of that name).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.request("GET", "/metrics", &[], b"").await.text();
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(WAIT * 2, self.child.wait())
            .await
            .expect("the hub did not exit after SIGTERM")
            .unwrap()
    }
}

/// `tidings serve --listen 127.0.0.1:0 --log-json` with `args` and
/// environment `env`, its JSON log on a piped stderr, killed on drop.
pub fn serve_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--log-json"])
        .args(args)
        // Tests read the log (`TestHub` its `listening` line): a filter
        // from the tester's environment must not hide it; `env` may set one.
        .env_remove("RUST_LOG")
        .env_remove("TIDINGS_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Sends one request to `addr` and reads the whole response (the
/// connection is closed after it).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response timed out")
        .unwrap();
    Response::parse(&raw)
}

/// Runs `tidings serve --memory` with `args` and environment `env`,
/// expecting it to refuse to start; returns what it wrote to stderr.
pub async fn refused_to_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["--memory"];
    all.extend_from_slice(args);
    refused_to_serve(&all, env).await
}

/// Runs `tidings serve` with `args` (which choose the history) and
/// environment `env`, expecting it to refuse to start; returns what it
/// wrote to stderr.
pub async fn refused_to_serve(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = tokio::time::timeout(
        WAIT,
        Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the hub did not exit")
    .unwrap();
    assert!(!output.status.success(), "the hub started with {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    fields.get("address")?.as_str()?.parse().ok()
}

/// Percent-encodes for a form or query.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Base64url without padding, as in a JWT or a JWK.
pub fn b64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A complete response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Self {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = response.parse(raw).expect("bad response head")
        else {
            panic!("incomplete response: {:?}", String::from_utf8_lossy(raw));
        };
        let status = response.code.unwrap();
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let mut body = raw[len..].to_vec();
        if headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// The `error` string of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_owned()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}

/// An open event stream, decoded with the project's own WHATWG decoder.
pub struct Stream {
    pub stream: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Whether the body is chunked (hyper) or ends with the connection.
    chunked: bool,
    /// Undecoded chunked framing.
    pending: Vec<u8>,
    pub decoder: Decoder,
    pub items: std::collections::VecDeque<Item>,
    /// Every body byte seen so far.
    pub raw: Vec<u8>,
}

impl Stream {
    async fn open(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self::send(stream, addr, target, headers).await
    }

    /// Sends the request on an already open connection.
    pub async fn send(
        mut stream: TcpStream,
        addr: SocketAddr,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Self {
        let mut head =
            format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let (status, headers, rest) = loop {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("no response head")
                .unwrap();
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut hs);
            if let httparse::Status::Complete(len) = response.parse(&buf).unwrap() {
                let headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                break (response.code.unwrap(), headers, buf[len..].to_vec());
            }
        };
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let mut this = Self {
            stream,
            status,
            headers,
            chunked,
            pending: Vec::new(),
            decoder: Decoder::new(),
            items: Default::default(),
            raw: Vec::new(),
        };
        this.feed(&rest);
        this
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn feed(&mut self, bytes: &[u8]) {
        if !self.chunked {
            self.raw.extend_from_slice(bytes);
            let items = &mut self.items;
            self.decoder.decode(bytes, |i| items.push_back(i)).unwrap();
            return;
        }
        self.pending.extend_from_slice(bytes);
        loop {
            let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&self.pending[..end]).unwrap().trim(),
                16,
            )
            .unwrap();
            if self.pending.len() < end + 2 + size + 2 {
                return;
            }
            let data: Vec<u8> = self.pending[end + 2..end + 2 + size].to_vec();
            self.pending.drain(..end + 2 + size + 2);
            self.raw.extend_from_slice(&data);
            let items = &mut self.items;
            self.decoder.decode(&data, |i| items.push_back(i)).unwrap();
        }
    }

    /// Reads more bytes; `false` at end of stream.
    async fn read_more(&mut self, wait: Duration) -> Option<bool> {
        let mut chunk = vec![0u8; 16 * 1024];
        match tokio::time::timeout(wait, self.stream.read(&mut chunk)).await {
            Err(_) => None,
            Ok(Ok(0)) | Ok(Err(_)) => Some(false),
            Ok(Ok(n)) => {
                self.feed(&chunk[..n]);
                Some(true)
            }
        }
    }

    /// The next item (event, retry, comment), or `None` at end of stream.
    pub async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.items.pop_front() {
                return Some(item);
            }
            match self.read_more(WAIT).await {
                None => panic!("no item within {WAIT:?}"),
                Some(false) => return None,
                Some(true) => {}
            }
        }
    }

    /// The next event, skipping comments and retry fields.
    pub async fn next_event(&mut self) -> Option<MessageEvent> {
        loop {
            match self.next_item().await? {
                Item::Event(event) => return Some(event),
                Item::Retry(_) | Item::Comment(_) => {}
            }
        }
    }

    /// `n` events.
    pub async fn events(&mut self, n: usize) -> Vec<MessageEvent> {
        let mut out = Vec::new();
        while out.len() < n {
            out.push(self.next_event().await.expect("stream ended early"));
        }
        out
    }

    /// Asserts that no event arrives within `wait`.
    pub async fn no_event_within(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(item) = self.items.pop_front() {
                if let Item::Event(event) = item {
                    panic!("unexpected event {event:?}");
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            if self.read_more(left).await == Some(false) {
                return;
            }
        }
    }

    /// Reads until the server ends the stream; returns the events on the
    /// way.
    pub async fn until_end(&mut self) -> Vec<MessageEvent> {
        let mut out = Vec::new();
        while let Some(item) = self.next_item().await {
            if let Item::Event(event) = item {
                out.push(event);
            }
        }
        out
    }
}
