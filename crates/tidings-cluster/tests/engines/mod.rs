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

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
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
