//! End to end: the floor server of bench/floor/floor.c (compiled here with
//! the system's C compiler, which cargo needs as its linker anyway) under
//! the `tidings-bench` binary: a plain fan-out, a fan-out with churn
//! alongside (`--churn-rate`: two phases, each with its own latency), and
//! `compare` over several results. Also checks that the floor refuses what
//! it cannot send. Linux only, like the tool and the floor (epoll).
#![cfg(target_os = "linux")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A scratch directory for this test process, removed at the end of each
/// test that makes one.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tidings-bench-floor-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The floor, running on a free loopback port; killed when dropped.
struct Floor {
    child: Child,
    port: u16,
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_floor(dir: &Path) -> Floor {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/floor/floor.c");
    let binary = dir.join("floor");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let status = Command::new(&cc)
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .unwrap_or_else(|err| panic!("cannot run the C compiler {cc:?}: {err}"));
    assert!(status.success(), "{} did not compile", source.display());
    let mut child = Command::new(&binary)
        .arg("0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // "floor: listening on 127.0.0.1:PORT, up to N connections"
    let port = first
        .split_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.split(',').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
    Floor { child, port }
}

/// Runs the tool with `args` (bounded in time); returns its stdout.
fn tool(args: &[String]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings-bench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..900 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        panic!("tidings-bench took more than 90 s");
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "tidings-bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A fan-out against the floor; returns the JSON result, kept in `json`.
fn fanout(floor: &Floor, json: &Path, label: &str, extra: &[&str]) -> Value {
    let port = floor.port;
    let mut args: Vec<String> = vec![
        "fanout".into(),
        "--sub-url".into(),
        format!("http://127.0.0.1:{port}/sub/bench"),
        "--pub-url".into(),
        format!("http://127.0.0.1:{port}/pub/bench"),
        "--pub-format".into(),
        "raw".into(),
        "--subscribers".into(),
        "50".into(),
        "--warmup".into(),
        "0.3".into(),
        "--drain".into(),
        "2".into(),
        "--label".into(),
        label.into(),
        "--server-pid".into(),
        floor.child.id().to_string(),
        "--json".into(),
        json.display().to_string(),
    ];
    args.extend(extra.iter().map(ToString::to_string));
    let summary = tool(&args);
    assert!(summary.starts_with(label), "{summary}");
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// Every one of `expected` (subscriber, event) pairs arrived once, in order.
fn assert_every_event_once(json: &Value, expected: u64) {
    let d = &json["delivery"];
    assert_eq!(d["expected"], expected, "{json:#}");
    assert_eq!(d["delivered"], expected, "{json:#}");
    for key in [
        "duplicates",
        "out_of_order",
        "foreign",
        "unrecognized",
        "dropped",
    ] {
        assert_eq!(d[key], 0, "{key}: {json:#}");
    }
    assert_eq!(json["latency_ms"]["count"], expected, "{json:#}");
}

#[test]
fn the_floor_delivers_every_event_and_compares() {
    let dir = Scratch::new("compare");
    let floor = start_floor(&dir.0);
    let a = dir.0.join("a.json");
    let json = fanout(&floor, &a, "floor", &["--events", "40", "--rate", "100"]);
    assert_every_event_once(&json, 50 * 40);
    assert!(json.get("churn").is_none(), "{json:#}");
    // The floor's memory per subscriber is measured like any server's.
    assert!(
        json["server"]["idle"]["fds"].as_u64().unwrap() >= 50,
        "{json:#}"
    );

    let b = dir.0.join("b.json");
    let c = dir.0.join("c.json");
    fanout(&floor, &b, "second", &["--events", "20", "--rate", "100"]);
    fanout(&floor, &c, "third", &["--events", "20", "--rate", "100"]);
    let out = tool(&[
        "compare".into(),
        a.display().to_string(),
        b.display().to_string(),
        c.display().to_string(),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    // Each run against every run before it, with both latency ratios.
    assert!(lines[3].starts_with("second vs floor: "), "{out}");
    assert!(lines[4].starts_with("third vs floor: "), "{out}");
    assert!(lines[5].starts_with("third vs second: "), "{out}");
    assert!(lines[5].contains("p50 latency ×"), "{out}");
    assert!(lines[5].contains("p99 latency ×"), "{out}");
}

#[test]
fn churn_alongside_gives_each_phase_its_latency() {
    let dir = Scratch::new("churn");
    let floor = start_floor(&dir.0);
    let json_path = dir.0.join("churn.json");
    let json = fanout(
        &floor,
        &json_path,
        "floor+churn",
        &[
            "--events",
            "60",
            "--rate",
            "20",
            "--churn-rate",
            "200",
            "--churn-guard",
            "0.5",
        ],
    );
    // The churn's connections are not the measured subscribers: those get
    // every event once.
    assert_every_event_once(&json, 50 * 60);
    let churn = &json["churn"];
    // 60 events: the churn starts when event 30 is sent; 0.5 s at 20/s is
    // 10 events either side that belong to neither phase.
    assert_eq!(churn["baseline"]["events_from"], 0, "{churn:#}");
    assert_eq!(churn["baseline"]["events_to"], 20, "{churn:#}");
    assert_eq!(churn["churn"]["events_from"], 40, "{churn:#}");
    assert_eq!(churn["churn"]["events_to"], 60, "{churn:#}");
    assert_eq!(
        churn["baseline"]["latency_ms"]["count"],
        50 * 20,
        "{churn:#}"
    );
    assert_eq!(churn["churn"]["latency_ms"]["count"], 50 * 20, "{churn:#}");
    let cycles = &churn["cycles"];
    assert_eq!(cycles["failed"], 0, "{churn:#}");
    // About 1.5 s of churn at 200/s.
    let completed = cycles["completed"].as_u64().unwrap();
    assert!((150..=400).contains(&completed), "{churn:#}");
    assert!(churn["p99_ratio"].as_f64().unwrap() > 0.0, "{churn:#}");
    assert!(churn["churn"]["server_cpu_cores"].is_number(), "{churn:#}");
    // The churn's connections come from addresses of their own: 12,000 a
    // minute, one address per 10,000.
    assert_eq!(churn["source_ips"], "127.0.0.2-127.0.0.3 (2)", "{churn:#}");
    let phases: Vec<&str> = json["server"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    assert!(phases.contains(&"publish+churn"), "{phases:?}");
}

#[test]
fn churn_needs_events_on_both_sides() {
    let dir = Scratch::new("refused");
    let floor = start_floor(&dir.0);
    let port = floor.port;
    let output = Command::new(env!("CARGO_BIN_EXE_tidings-bench"))
        .args([
            "fanout",
            "--sub-url",
            &format!("http://127.0.0.1:{port}/sub/bench"),
            "--pub-url",
            &format!("http://127.0.0.1:{port}/pub/bench"),
            "--events",
            "10",
            "--rate",
            "10",
            "--churn-rate",
            "100",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 1 s of guard at 10/s: 10 events either side, and one for each phase.
    assert!(stderr.contains("--events 22 or more"), "{stderr}");
}

/// Sends `request` on a new connection and returns everything the floor
/// answers until it closes.
fn exchange(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn the_floor_refuses_what_it_cannot_send() {
    let dir = Scratch::new("errors");
    let floor = start_floor(&dir.0);
    let answer = exchange(
        floor.port,
        "POST /pub HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na\nb",
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("{\"error\":\"the body must be one line"),
        "{answer}"
    );
    let answer = exchange(floor.port, "POST /pub HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 411 "), "{answer}");
    let answer = exchange(floor.port, "DELETE /pub HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
}
