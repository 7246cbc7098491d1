//! The deployment files of `docs/deploy/`, used as shipped.
//!
//! - `nginx.conf`: the hub behind a real nginx configured with it (only its
//!   upstream address and listen port replaced): events pass through at
//!   once, resuming works, and dev mode refuses what nginx relays unless
//!   nginx is a trusted proxy. Each nginx runs in the foreground as one
//!   process with its own prefix, pid, log and temporary paths in a fresh
//!   directory, on a free loopback port, and is killed when the test ends.
//! - `tidings.service`: `systemd-analyze verify` finds nothing to say about
//!   it, and the hub starts with its environment.
//!
//! Needs `nginx` and `systemd-analyze` (Debian packages `nginx` and
//! `systemd`; scripts/test-all installs them).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use support::{HUB, Stream, TempDir, TestHub, WAIT, encode, free_port, target};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The shipped nginx configuration.
const SHIPPED: &str = include_str!("../docs/deploy/nginx.conf");

/// The shipped systemd unit.
const UNIT: &str = include_str!("../docs/deploy/tidings.service");

/// What the test replaces in it.
const UPSTREAM: &str = "server 127.0.0.1:8080;";
const LISTEN: &str = "listen 80;";

/// A running nginx in front of one hub.
struct Nginx {
    /// The process; killed on drop (before `dir` is removed).
    child: Child,
    /// Where it listens.
    addr: SocketAddr,
    /// Its prefix: configuration, pid, logs, temporary files.
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx with the shipped configuration in front of `hub`.
    async fn start(hub: SocketAddr) -> Self {
        let dir = TempDir::new();
        let port = free_port();
        let site = replace_line(SHIPPED, UPSTREAM, &format!("server {hub};"));
        let site = replace_line(&site, LISTEN, &format!("listen 127.0.0.1:{port};"));
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(path("site.conf"), site).unwrap();
        // A main configuration of our own, as nginx.conf of a distribution
        // would include the site; gzip on for event streams, as a careless
        // main configuration might have it, which the site must undo.
        let main = format!(
            "daemon off;\n\
             master_process off;\n\
             worker_processes 1;\n\
             pid {pid};\n\
             error_log {log} info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
                 access_log {access};\n\
                 client_body_temp_path {tmp}/body;\n\
                 proxy_temp_path {tmp}/proxy;\n\
                 fastcgi_temp_path {tmp}/fastcgi;\n\
                 uwsgi_temp_path {tmp}/uwsgi;\n\
                 scgi_temp_path {tmp}/scgi;\n\
                 gzip on;\n\
                 gzip_min_length 1;\n\
                 gzip_types text/event-stream application/json text/plain;\n\
                 include {site};\n\
             }}\n",
            pid = path("nginx.pid"),
            log = path("error.log"),
            access = path("access.log"),
            tmp = dir.path().display(),
            site = path("site.conf"),
        );
        std::fs::write(path("nginx.conf"), main).unwrap();
        let mut child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .args(["-c", &path("nginx.conf"), "-e", &path("error.log")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx is needed for this test (Debian package nginx)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let started = tokio::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(path("error.log")).unwrap_or_default()
                );
            }
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            assert!(started.elapsed() < WAIT, "nginx did not start listening");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, addr, dir }
    }

    /// Opens an event stream through nginx.
    async fn subscribe(&self, target: &str, headers: &[(&str, &str)]) -> Stream {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        Stream::send(stream, self.addr, target, headers).await
    }

    /// One request through nginx (the response is read whole).
    async fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> support::Response {
        support::request(self.addr, method, target, headers, body).await
    }

    /// A form publish through nginx.
    async fn publish(&self, body: &str, headers: &[(&str, &str)]) -> support::Response {
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.request("POST", HUB, &all, body.as_bytes()).await
    }

    /// nginx's error log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `config` with its one directive line `from` (comments aside) replaced.
fn replace_line(config: &str, from: &str, to: &str) -> String {
    let mut found = 0;
    let lines: Vec<String> = config
        .lines()
        .map(|line| {
            if line.trim() == from {
                found += 1;
                line.replace(from, to)
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_eq!(found, 1, "one `{from}` line in docs/deploy/nginx.conf");
    lines.join("\n")
}

/// nginx, where Debian puts it (root's PATH has it, others' may not).
fn nginx_binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

#[test]
fn the_read_timeout_outlasts_the_heartbeat_and_the_hub_decides_buffering() {
    let seconds: u64 = SHIPPED
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("proxy_read_timeout "))
        .and_then(|value| value.strip_suffix("s;"))
        .expect("proxy_read_timeout NNs; in nginx.conf")
        .parse()
        .unwrap();
    // The hub's default --heartbeat is 15 seconds; several may be missed
    // before nginx gives up.
    assert!(seconds >= 4 * 15, "{seconds}");
    // Buffering is left to the hub's `X-Accel-Buffering: no`.
    let directives: Vec<&str> = SHIPPED
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .collect();
    assert!(!directives.iter().any(|d| d.starts_with("proxy_buffering")));
    assert!(
        !directives
            .iter()
            .any(|d| d.starts_with("proxy_ignore_headers") && d.contains("X-Accel-Buffering"))
    );
}

#[tokio::test]
async fn events_pass_through_nginx_at_once() {
    let hub = TestHub::start(&["--memory"]).await;
    let nginx = Nginx::start(hub.addr).await;
    let mut stream = nginx
        .subscribe(&target(&["live"]), &[("Accept-Encoding", "gzip")])
        .await;
    assert_eq!(stream.status, 200, "{}", nginx.log());
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    assert_eq!(stream.header("content-encoding"), None, "not compressed");
    assert_eq!(
        stream.header("x-accel-buffering"),
        None,
        "nginx takes the header for itself"
    );
    for n in 0..5 {
        // Published to the hub directly (dev mode, loopback).
        let data = format!("event {n}");
        hub.publish("live", &data).await;
        let event = tokio::time::timeout(Duration::from_secs(1), stream.next_event())
            .await
            .unwrap_or_else(|_| panic!("event {n} did not pass nginx within a second"))
            .expect("the stream ended");
        assert_eq!(event.data, data);
    }
    // The other routes pass too.
    let health = nginx.request("GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let metrics = nginx.request("GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200, "loopback may read the metrics");
    assert!(metrics.text().contains("tidings_connections"));
}

#[tokio::test]
async fn resuming_with_last_event_id_works_through_nginx() {
    let hub = TestHub::start(&["--memory"]).await;
    let nginx = Nginx::start(hub.addr).await;
    let ids = [
        hub.publish("books", "one").await,
        hub.publish("books", "two").await,
        hub.publish("books", "three").await,
    ];
    let mut by_header = nginx
        .subscribe(&target(&["books"]), &[("Last-Event-ID", &ids[0])])
        .await;
    assert_eq!(by_header.status, 200, "{}", nginx.log());
    assert_eq!(by_header.header("last-event-id"), Some(ids[0].as_str()));
    let missed = by_header.events(2).await;
    assert_eq!(
        missed.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["two", "three"]
    );
    assert_eq!(missed[1].last_event_id, ids[2]);
    let by_query = format!("{}&lastEventID={}", target(&["books"]), encode(&ids[1]));
    let mut by_query = nginx.subscribe(&by_query, &[]).await;
    assert_eq!(by_query.next_event().await.unwrap().data, "three");
    // Resuming from an id no longer known says so, through nginx too.
    let mut lost = nginx
        .subscribe(&target(&["books"]), &[("Last-Event-ID", "who-knows")])
        .await;
    assert_eq!(lost.header("last-event-id"), Some("earliest"));
    assert_eq!(lost.next_event().await.unwrap().event_type, "tidings.gap");
}

#[tokio::test]
async fn dev_mode_refuses_publishes_relayed_by_nginx_unless_it_is_trusted() {
    // Not trusted: the hub cannot tell who is behind nginx.
    let hub = TestHub::start(&["--memory"]).await;
    let nginx = Nginx::start(hub.addr).await;
    for headers in [vec![("X-Forwarded-For", "203.0.113.7")], vec![]] {
        let refused = nginx.publish("topic=a&data=x", &headers).await;
        assert_eq!(refused.status, 403, "{headers:?}: {}", nginx.log());
        assert_eq!(refused.header("content-type"), Some("application/json"));
        let error = refused.error();
        assert!(error.contains("--trusted-proxy"), "{error}");
    }

    // Trusted: the client nginx names counts.
    let hub = TestHub::start(&["--memory", "--trusted-proxy", "127.0.0.1/32"]).await;
    let nginx = Nginx::start(hub.addr).await;
    let mut watcher = nginx.subscribe(&target(&["a"]), &[]).await;
    let local = nginx.publish("topic=a&data=from+loopback", &[]).await;
    assert_eq!(local.status, 200, "{}: {}", local.text(), nginx.log());
    assert_eq!(watcher.next_event().await.unwrap().data, "from loopback");
    let remote = nginx
        .publish("topic=a&data=x", &[("X-Forwarded-For", "203.0.113.7")])
        .await;
    assert_eq!(remote.status, 403);
    assert!(remote.error().contains("loopback addresses only"));
    // A client's own Forwarded header does not reach the hub (it would be
    // read first).
    let forged = nginx
        .publish(
            "topic=a&data=x",
            &[
                ("Forwarded", "for=127.0.0.1"),
                ("X-Forwarded-For", "203.0.113.7"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    watcher.no_event_within(Duration::from_millis(200)).await;
}

/// The unit's `Key=value` settings, in order (comments left out).
fn unit_settings() -> Vec<(&'static str, &'static str)> {
    UNIT.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .collect()
}

#[tokio::test]
async fn the_systemd_unit_verifies_and_its_environment_starts_the_hub() {
    let dir = TempDir::new();
    // The unit as installed, pointing at the binary under test.
    let unit = UNIT.replace(
        "ExecStart=/usr/local/bin/tidings ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_tidings")),
    );
    assert_ne!(unit, UNIT, "ExecStart=/usr/local/bin/tidings in the unit");
    let path = dir.path().join("tidings.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .await
        .expect("systemd-analyze is needed for this test (Debian package systemd)");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");

    let settings = unit_settings();
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "tidings"),
        ("Restart", "on-failure"),
        ("EnvironmentFile", "-/etc/tidings/tidings.env"),
    ] {
        assert!(settings.contains(&(key, value)), "{key}={value}");
    }
    let files: u64 = settings
        .iter()
        .find(|(key, _)| *key == "LimitNOFILE")
        .expect("LimitNOFILE")
        .1
        .parse()
        .unwrap();
    assert!(files > 16_000, "above the default --max-connections");

    // Its environment is what the hub reads (the listen address and data
    // directory given as flags, which win, so that the test stays in its
    // own port and directory).
    let env: Vec<(&str, &str)> = settings
        .iter()
        .filter(|(key, _)| *key == "Environment")
        .filter_map(|(_, value)| value.split_once('='))
        .collect();
    assert!(env.contains(&("TIDINGS_DATA_DIR", "/var/lib/tidings")));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    // Help text wraps at any space, also inside `[env: …]`.
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for (name, _) in &env {
        assert!(
            help.contains(&format!("[env: {name}=")),
            "{name} is no flag's variable"
        );
    }
    let hub = TestHub::start_env(&[], &env).await;
    // TIDINGS_TRUSTED_PROXIES was read: loopback is a trusted proxy.
    let relayed = hub
        .request(
            "POST",
            HUB,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Forwarded-For", "::1"),
            ],
            b"topic=a&data=x",
        )
        .await;
    assert_eq!(relayed.status, 200, "{}", relayed.text());
}
