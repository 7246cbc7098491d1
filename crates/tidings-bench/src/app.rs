//! The `tidings-bench` command (its `main`). See `docs/load-generator.md`.

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use serde::Serialize;

use crate::cli::{Cli, Command};
use crate::report::{self, AnyReport};
use crate::{churn, fanout, shard};

/// Parses the command line, runs the command on a current-thread runtime
/// and says how it went.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: the subscribers share counters and histograms through
    // `Cell`s with no synchronisation. More cores are used by shards
    // (processes), not threads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            crate::progress::note(&format!("error: cannot start the runtime: {err}"));
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            crate::progress::note(&format!("error: {}", describe(&err)));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Fanout(args) => {
            let report = fanout::run(&args).await?;
            finish(&report, args.common.json.as_deref(), &report.summary())
        }
        Command::Churn(args) => {
            let report = churn::run(&args).await?;
            finish(&report, args.common.json.as_deref(), &report.summary())
        }
        Command::Compare { files } => {
            let mut reports = Vec::new();
            for file in &files {
                let text = fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let report: AnyReport = serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", file.display()))?;
                reports.push(report);
            }
            for line in report::compare(&reports) {
                say(&line);
            }
            Ok(())
        }
        Command::Shard => {
            shard::run_child().await;
            Ok(())
        }
    }
}

/// The error and its causes, each once: most of this tool's errors already
/// say their cause in their own message.
fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Writes the JSON result (if asked) and prints the summary line.
fn finish(report: &impl Serialize, json: Option<&Path>, summary: &str) -> anyhow::Result<()> {
    if let Some(path) = json {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(report)?;
        fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    say(summary);
    Ok(())
}

/// The result line: the one thing on stdout.
#[allow(
    clippy::print_stdout,
    reason = "the summary line is the command's output"
)]
fn say(line: &str) {
    println!("{line}");
}
