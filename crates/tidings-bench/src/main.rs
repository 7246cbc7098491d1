//! The `tidings-bench` command. See `docs/load-generator.md`.
//!
//! The tool measures servers through Linux interfaces (`/proc`,
//! `IP_BIND_ADDRESS_NO_PORT`, `TCP_QUICKACK`, `RUSAGE_THREAD`), so it runs on
//! Linux only; elsewhere it builds, so that the workspace builds, and says
//! so when started.

use std::process::ExitCode;

#[cfg(target_os = "linux")]
fn main() -> ExitCode {
    tidings_bench::app::main()
}

#[cfg(not(target_os = "linux"))]
#[allow(
    clippy::print_stderr,
    reason = "the one thing this build of the command can say"
)]
fn main() -> ExitCode {
    eprintln!(
        "tidings-bench runs on Linux only: it samples servers in /proc and uses Linux socket \
         options (IP_BIND_ADDRESS_NO_PORT, TCP_QUICKACK); run it on a Linux machine"
    );
    ExitCode::FAILURE
}
