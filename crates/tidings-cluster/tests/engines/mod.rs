//! Real engines for tests: `redis-server` and `nats-server` (the Debian
//! packages; `scripts/test-all` installs them) on free loopback ports, with
//! their data in a fresh temporary directory, killed when dropped. They can
//! be stopped and started again on the same port and data, to test
//! outages.
//!
//! Shared by this crate's tests and the workspace's cluster tests.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long an engine may take to start.
const START: Duration = Duration::from_secs(15);

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Nats,
}

/// A running (or stopped) engine process.
pub struct Engine {
    pub kind: Kind,
    pub port: u16,
    /// Its data directory, removed on drop.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Engine {
    /// Starts `kind` on a free port with its data in `dir` (created; removed
    /// on drop).
    pub async fn start_in(kind: Kind, dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut engine = Self {
            kind,
            port: free_port(),
            dir,
            child: None,
        };
        engine.restart().await;
        engine
    }

    /// Starts `kind` on a free port with fresh data.
    pub async fn start(kind: Kind) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("tidings-engine-{}-{n}-{nanos}", std::process::id()));
        Self::start_in(kind, dir).await
    }

    /// `redis://…` or `nats://…`.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the process again (same port, same data) and waits until it
    /// serves.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        let dir = self.dir.to_str().unwrap().to_owned();
        let mut command = match self.kind {
            Kind::Redis => {
                let mut c = Command::new("redis-server");
                c.args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
                    .args(["--appendonly", "yes", "--appendfsync", "always"])
                    .args(["--save", "", "--protected-mode", "no", "--daemonize", "no"]);
                c
            }
            Kind::Nats => {
                let mut c = Command::new("nats-server");
                c.args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd", &dir]);
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {:?} ({e}): install redis-server and nats-server (bash scripts/test-all does)",
                    self.kind
                )
            });
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + START;
        loop {
            if self.ready().await {
                return;
            }
            assert!(Instant::now() < deadline, "{:?} did not start", self.kind);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether it answers: Redis `PING` (not `-LOADING`), NATS `INFO` with
    /// JetStream on.
    async fn ready(&self) -> bool {
        let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(("127.0.0.1", self.port)),
        )
        .await
        else {
            return false;
        };
        let mut stream = BufReader::new(stream);
        let mut line = String::new();
        let answered = async {
            match self.kind {
                Kind::Redis => {
                    stream.get_mut().write_all(b"PING\r\n").await.ok()?;
                    stream.read_line(&mut line).await.ok()?;
                    Some(line.starts_with("+PONG"))
                }
                Kind::Nats => {
                    stream.read_line(&mut line).await.ok()?;
                    Some(line.starts_with("INFO") && line.contains("\"jetstream\":true"))
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(1), answered)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// Sends one command to Redis; returns the reply: a status or error
    /// line as sent (`+OK`, `-OOM …`), an integer's digits, or a bulk
    /// string's text.
    pub async fn redis(&self, args: &[&str]) -> String {
        assert_eq!(self.kind, Kind::Redis);
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut stream = BufReader::new(stream);
        let mut command = format!("*{}\r\n", args.len());
        for arg in args {
            command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream
            .get_mut()
            .write_all(command.as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        let line = line.trim_end().to_owned();
        match line.strip_prefix('$') {
            Some(len) => {
                let len: usize = len.parse().unwrap();
                let mut bulk = vec![0u8; len + 2];
                stream.read_exact(&mut bulk).await.unwrap();
                bulk.truncate(len);
                String::from_utf8(bulk).unwrap()
            }
            None => line.strip_prefix(':').unwrap_or(&line).to_owned(),
        }
    }

    /// Redis's `used_memory`, in bytes.
    pub async fn redis_used_memory(&self) -> u64 {
        let info = self.redis(&["INFO", "memory"]).await;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Sends a JetStream API request (`$JS.API.…`) over the plain NATS
    /// protocol; returns the JSON reply.
    pub async fn jetstream(&self, subject: &str, body: &serde_json::Value) -> serde_json::Value {
        assert_eq!(self.kind, Kind::Nats);
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut stream = BufReader::new(stream);
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("INFO"), "{line}");
        let payload = body.to_string();
        let request = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB _INBOX.test 1\r\nPUB {subject} _INBOX.test {}\r\n{payload}\r\n",
            payload.len()
        );
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let reply = async {
            loop {
                line.clear();
                stream.read_line(&mut line).await.unwrap();
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.first().copied() {
                    Some("MSG") => {
                        let len: usize = words.last().unwrap().parse().unwrap();
                        let mut bulk = vec![0u8; len + 2];
                        stream.read_exact(&mut bulk).await.unwrap();
                        bulk.truncate(len);
                        return serde_json::from_slice::<serde_json::Value>(&bulk).unwrap();
                    }
                    Some("PING") => stream.get_mut().write_all(b"PONG\r\n").await.unwrap(),
                    Some("-ERR") => panic!("NATS: {line}"),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), reply)
            .await
            .expect("no JetStream reply")
    }

    /// Creates the JetStream stream the hubs use (`TIDINGS` over
    /// `tidings.>`) with discard-new: once `max_bytes` are stored it
    /// refuses publishes instead of dropping the oldest messages. (A hub
    /// creates its stream with discard-old; it keeps an operator's choice
    /// and sets only the limits to its `--history-*` flags.)
    pub async fn create_discard_new_stream(&self, max_bytes: u64) {
        let config = serde_json::json!({
            "name": "TIDINGS",
            "subjects": ["tidings.>"],
            "retention": "limits",
            "storage": "file",
            "discard": "new",
            "max_bytes": max_bytes,
            "num_replicas": 1,
        });
        let reply = self
            .jetstream("$JS.API.STREAM.CREATE.TIDINGS", &config)
            .await;
        assert!(reply.get("error").is_none(), "{reply}");
    }

    /// Sets the `max_bytes` of the stream `TIDINGS`.
    pub async fn set_stream_max_bytes(&self, max_bytes: u64) {
        let info = self
            .jetstream("$JS.API.STREAM.INFO.TIDINGS", &serde_json::json!({}))
            .await;
        let mut config = info["config"].clone();
        config["max_bytes"] = max_bytes.into();
        let reply = self
            .jetstream("$JS.API.STREAM.UPDATE.TIDINGS", &config)
            .await;
        assert!(reply.get("error").is_none(), "{reply}");
    }

    /// Kills the process (SIGKILL: the data on disk is what a crash
    /// leaves) and waits for it to go.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Stops the process with SIGTERM and waits for it to go.
    pub async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().unwrap().to_string();
            let status = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap();
            assert!(status.success());
            tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .expect("the engine did not stop")
                .unwrap();
        }
    }
}
