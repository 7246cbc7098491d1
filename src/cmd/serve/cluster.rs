//! `tidings serve --cluster URL`: share topics, ids and history with other
//! hubs through an engine (a Redis Stream, a NATS JetStream stream); see
//! `docs/cluster.md`.
//!
//! In cluster mode the history is the engine's: this hub keeps a copy in
//! memory, with the `--history-*` limits, rebuilt from the engine when it
//! starts; the engine keeps the same limits. `--data-dir` does not apply.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use tidings_cluster::EngineUrl;
use tidings_core::{Hub, HubConfig, MemoryStore, Retention, Roster};

/// The `--cluster` flag, and the history limits it needs.
///
/// Read by hand rather than derived: the limits are the `--history-*`
/// flags of `store.rs`, whose validated form keeps them private, so they
/// are read here from the parsed command line by their ids (without
/// taking them, so that `StoreArgs` still gets them; `ServeArgs` lists this
/// before `store`).
#[derive(Debug, Clone)]
pub(crate) struct ClusterArgs {
    /// The engine's URL; `None`: a single hub.
    url: Option<String>,
    /// A file that holds the engine's URL instead (it may carry a
    /// password: for container secrets).
    url_file: Option<PathBuf>,
    /// The history limits, for the engine and this hub's copy.
    retention: Retention,
}

const ID: &str = "cluster";
const FILE_ID: &str = "cluster_file";

impl Args for ClusterArgs {
    fn augment_args(cmd: Command) -> Command {
        cmd.arg(
            Arg::new(ID)
                .long(ID)
                .env("TIDINGS_CLUSTER")
                .value_name("URL")
                .conflicts_with_all(["data_dir", "check_history"])
                .help(
                    "Share topics, ids and history with other hubs through an engine: \
                     redis://HOST:PORT or nats://HOST:PORT (docs/cluster.md). The history \
                     is then the engine's; this hub keeps a copy in memory",
                ),
        )
        .arg(
            Arg::new(FILE_ID)
                .long("cluster-file")
                .env("TIDINGS_CLUSTER_FILE")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with_all([ID, "data_dir", "check_history"])
                .help(
                    "File holding the --cluster URL (trailing newline dropped), for URLs \
                     that carry a password",
                ),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ClusterArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let limit = |id: &str| -> Result<u64, clap::Error> {
            matches
                .try_get_one::<u64>(id)
                .ok()
                .flatten()
                .copied()
                .ok_or_else(|| {
                    clap::Error::raw(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        format!("cluster mode cannot read the history flag {id}"),
                    )
                })
        };
        Ok(Self {
            url: matches.get_one::<String>(ID).cloned(),
            url_file: matches.get_one::<PathBuf>(FILE_ID).cloned(),
            retention: Retention {
                max_events: Some(limit("history_events")?),
                max_age: Some(Duration::from_secs(limit("history_seconds")?)),
                max_bytes: Some(limit("history_bytes")?),
            },
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// A checked `--cluster` configuration.
#[derive(Debug, Clone)]
pub(crate) struct ClusterConfig {
    /// The engine's URL, as given.
    url: String,
    /// The history limits.
    retention: Retention,
}

impl ClusterArgs {
    /// `None` for a single hub; the URL is checked here, before anything
    /// starts.
    pub(crate) fn validate(&self) -> anyhow::Result<Option<ClusterConfig>> {
        let url = match (&self.url, &self.url_file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => anyhow::bail!("give --cluster or --cluster-file, not both"),
            (Some(url), None) => {
                EngineUrl::parse(url).with_context(|| {
                    format!("bad --cluster {:?}", tidings_cluster::redacted(url))
                })?;
                url.clone()
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --cluster-file {}", path.display()))?;
                let url = text.trim_end_matches(['\n', '\r']).to_owned();
                EngineUrl::parse(&url)
                    .with_context(|| format!("bad URL in --cluster-file {}", path.display()))?;
                url
            }
        };
        Ok(Some(ClusterConfig {
            url,
            retention: self.retention,
        }))
    }
}

/// Connects to the engine and starts a hub that follows its log.
pub(crate) async fn start(config: &ClusterConfig, hub: HubConfig) -> anyhow::Result<Hub> {
    let engine = tidings_cluster::connect(&config.url, config.retention).await?;
    let store = Arc::new(MemoryStore::new(config.retention));
    tracing::info!(
        engine = %tidings_cluster::redacted(&config.url),
        "cluster mode: the history is the engine's; this hub keeps a copy in memory"
    );
    Hub::start_cluster(hub, store, engine).context("cannot start the hub")
}

/// Opens the engine's records of active subscriptions, leases of `lease`.
pub(crate) async fn roster(
    config: &ClusterConfig,
    lease: Duration,
) -> anyhow::Result<Arc<dyn Roster>> {
    Ok(tidings_cluster::roster(&config.url, lease).await?)
}
