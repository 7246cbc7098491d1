//! `tidings serve` and its environment, as an operator meets it: every flag
//! also reads an environment variable, `TIDINGS_DEMO` turns the demo on,
//! and `RUST_LOG` is the log filter unless `--log` is given.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use support::{TestHub, WAIT, serve_command, target};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

#[test]
fn every_serve_flag_reads_an_environment_variable() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    // One block per option: from its `--name` line to the next.
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let flag = trimmed
            .strip_prefix("-h, ")
            .or_else(|| trimmed.strip_prefix("-V, "))
            .unwrap_or(trimmed);
        // A flag's own line is indented a little; its description, which
        // may wrap onto a line that starts with another flag's name, more.
        let indent = line.len() - trimmed.len();
        if (2..=6).contains(&indent) && flag.starts_with("--") {
            let name = flag.split([' ', '=', '<']).next().unwrap().to_owned();
            blocks.push((name, String::new()));
        } else if let Some((_, block)) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    let flags: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["--listen", "--demo", "--log", "--cluster", "--jwt-key"] {
        assert!(flags.contains(&expected), "{expected} not in {flags:?}");
    }
    for (name, block) in &blocks {
        if name == "--help" || name == "--version" {
            continue;
        }
        // Help text wraps at any space, also inside `[env: …]`.
        let block = block.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            block.contains("[env: TIDINGS_"),
            "{name} reads no environment variable:\n{block}"
        );
    }
}

#[tokio::test]
async fn tidings_demo_turns_the_demo_on() {
    let clock = target(&["https://demo.tidings.dev/clock"]);
    let on = TestHub::start_env(&[], &[("TIDINGS_DEMO", "true")]).await;
    let mut stream = on.subscribe(&clock, &[]).await;
    let tick = stream.next_event().await.unwrap();
    assert_eq!(tick.event_type, "clock");
    let off = TestHub::start_env(&[], &[("TIDINGS_DEMO", "false")]).await;
    let mut stream = off.subscribe(&clock, &[]).await;
    stream.no_event_within(Duration::from_millis(1500)).await;
}

/// Starts `tidings serve` with `args` and `env`, and returns its log lines
/// up to and including the first that contains `until`.
async fn log_until(args: &[&str], env: &[(&str, &str)], until: &str) -> Vec<String> {
    let mut all = vec!["--memory"];
    all.extend_from_slice(args);
    let mut child = serve_command(&all, env).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains(until);
            seen.push(line);
            if done {
                return;
            }
        }
        panic!("the hub exited before logging {until:?}: {seen:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {until:?} within {WAIT:?}"));
    seen
}

#[tokio::test]
async fn rust_log_is_the_filter_unless_log_is_given() {
    // Dev mode warns right after it logs `listening` (info).
    const WARNING: &str = "dev mode";
    let warn_only = log_until(&[], &[("RUST_LOG", "warn")], WARNING).await;
    assert!(
        !warn_only.iter().any(|l| l.contains("listening")),
        "{warn_only:?}"
    );
    let flag_wins = log_until(&["--log", "info"], &[("RUST_LOG", "warn")], WARNING).await;
    assert!(
        flag_wins.iter().any(|l| l.contains("listening")),
        "{flag_wins:?}"
    );
    let default = log_until(&[], &[], WARNING).await;
    assert!(
        default.iter().any(|l| l.contains("listening")),
        "{default:?}"
    );

    // A bad filter from the environment stops the start, and says where
    // it came from.
    let bad = tokio::time::timeout(
        WAIT,
        Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["serve", "--memory", "--listen", "127.0.0.1:0"])
            .env_remove("TIDINGS_LOG")
            .env("RUST_LOG", "tidings=loud")
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("RUST_LOG"), "{stderr}");
}
