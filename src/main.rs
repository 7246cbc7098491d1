//! `tidings`: the Server-Sent Events hub, and its client tools.
//!
//! A thin binary: flags are parsed here, validated once into the typed
//! configurations of the library crates, and handed over. Each subcommand
//! lives in its own module under `cmd/`.

use std::process::ExitCode;

use clap::Parser as _;

mod cli;
mod cmd;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            #[allow(clippy::print_stderr, reason = "the one place errors reach the user")]
            {
                eprintln!("tidings: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => cmd::serve::run(*args),
        cli::Command::Sub(args) => cmd::sub::run(args),
        cli::Command::Pub(args) => cmd::publish::run(args),
    }
}
