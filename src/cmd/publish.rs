//! `tidings pub`: publish one update to a hub (Mercure's form-encoded
//! publish request) and print its id.

use std::io::{self, Read as _, Write as _};
use std::process::ExitCode;

use anyhow::Context as _;
use tidings_client::{Publisher, Update};

/// Flags of `tidings pub`.
#[derive(Debug, clap::Args)]
pub(crate) struct PubArgs {
    /// The hub URL, e.g. `http://127.0.0.1:8080/.well-known/mercure`.
    #[arg(long, value_name = "URL")]
    hub: String,
    /// A topic of the update (repeatable: the first is canonical, the others
    /// alternates).
    #[arg(long = "topic", value_name = "TOPIC", required = true)]
    topics: Vec<String>,
    /// The event type subscribers see (the SSE `event` field).
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// The update's id (the hub makes one when absent).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Deliver only to subscribers authorised for one of the topics.
    #[arg(long)]
    private: bool,
    /// Keep it as the retained update of its topics: subscribers that
    /// connect later get it first. Empty data clears it.
    #[arg(long)]
    retain: bool,
    /// A publisher JWT, sent as `Authorization: Bearer`.
    #[arg(
        long,
        value_name = "JWT",
        env = "TIDINGS_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// A file holding the publisher JWT (trailing newline dropped), so that
    /// it stays out of the command line and the environment.
    #[arg(
        long,
        value_name = "FILE",
        env = "TIDINGS_TOKEN_FILE",
        conflicts_with = "token"
    )]
    token_file: Option<std::path::PathBuf>,
    /// The data. Without it, stdin is read to its end and one trailing
    /// newline dropped (so `echo hi | tidings pub …` publishes "hi").
    #[arg(long, value_name = "DATA")]
    data: Option<String>,
    /// The reconnection time subscribers get with this event, in
    /// milliseconds.
    #[arg(long, value_name = "MS")]
    retry: Option<u64>,
}

pub(crate) fn run(args: PubArgs) -> anyhow::Result<ExitCode> {
    let data = match args.data {
        Some(data) => data,
        None => read_stdin()?,
    };
    let update = Update {
        topics: args.topics,
        data: Some(data),
        event_type: args.event_type,
        id: args.id,
        private: args.private,
        retry: args.retry,
        retain: args.retain,
    };
    let token = match (args.token, &args.token_file) {
        (Some(token), _) => Some(token),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --token-file {}", path.display()))?;
            let token = text.trim_end_matches(['\n', '\r']).to_owned();
            anyhow::ensure!(
                !token.is_empty(),
                "--token-file {} is empty",
                path.display()
            );
            Some(token)
        }
        (None, None) => None,
    };
    let mut publisher = Publisher::new(&args.hub)?;
    if let Some(token) = &token {
        publisher = publisher.token(token)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let id = runtime.block_on(publisher.publish(&update))?;
    let mut out = io::stdout().lock();
    match writeln!(out, "{id}").and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            Err(err).context("writing to stdout")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// All of stdin, as UTF-8, without one trailing newline (LF or CRLF).
fn read_stdin() -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    io::stdin()
        .read_to_end(&mut bytes)
        .context("reading the data from stdin")?;
    let mut data = String::from_utf8(bytes).context("the data on stdin is not UTF-8")?;
    if data.ends_with('\n') {
        data.pop();
        if data.ends_with('\r') {
            data.pop();
        }
    }
    Ok(data)
}
