//! `sse-contract-service`: the test service that LaunchDarkly's
//! [sse-contract-tests](https://github.com/launchdarkly/sse-contract-tests)
//! harness drives to judge `tidings-client` (its `docs/service_spec.md`).
//!
//! ```sh
//! cargo build --release --workspace --bins
//! target/release/sse-contract-service --port 8000 &
//! sse-contract-tests --url http://localhost:8000 --stop-service-at-end
//! ```
//!
//! It prints `listening on http://ADDR` once it accepts requests (with
//! `--port 0`, ADDR has the port the system chose) and exits after
//! `DELETE /`. It listens on 127.0.0.1 unless told otherwise: when the
//! harness runs in a container, give `--bind 0.0.0.0`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;

mod api;
mod instance;

/// The contract-test service for tidings-client.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .and_then(|runtime| runtime.block_on(api::serve(SocketAddr::new(args.bind, args.port))));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            #[allow(clippy::print_stderr, reason = "the one place errors reach the user")]
            {
                eprintln!("sse-contract-service: {err}");
            }
            ExitCode::FAILURE
        }
    }
}
