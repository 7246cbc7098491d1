//! The command line: one subcommand per job. Each subcommand's flags are
//! declared next to the code that runs it.

use clap::{Parser, Subcommand};

use crate::cmd;

/// Tidings: a Server-Sent Events hub that speaks the Mercure protocol.
#[derive(Debug, Parser)]
#[command(name = "tidings", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the hub.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Subscribe to any Server-Sent Events endpoint and print its events.
    Sub(cmd::sub::SubArgs),
    /// Publish one update to a hub and print its id.
    Pub(cmd::publish::PubArgs),
}
