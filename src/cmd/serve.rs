//! `tidings serve`: run the hub.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tidings_core::{Hub, HubConfig, PresenceConfig};
use tidings_http::tls::Certificates;
use tidings_http::{AppState, ServerConfig};

mod cluster;
mod listen;
mod security;
mod store;

/// Flags of `tidings serve`. Names and environment variables of the first
/// group are fixed by the project's interface contract.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to serve HTTP on.
    #[arg(long, env = "TIDINGS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Seconds between keep-alive comments on idle streams (0: none).
    #[arg(long, env = "TIDINGS_HEARTBEAT", default_value_t = 15)]
    heartbeat: u64,

    /// Largest accepted publish body, in bytes.
    #[arg(long, env = "TIDINGS_MAX_BODY", default_value_t = 1 << 20)]
    max_body: usize,

    /// Most topic selectors per subscription.
    #[arg(long, env = "TIDINGS_MAX_SELECTORS", default_value_t = 64)]
    max_selectors: usize,

    /// Events a subscriber may have waiting before it is disconnected as too
    /// slow (it then resumes from history).
    #[arg(long, env = "TIDINGS_SUBSCRIBER_QUEUE", default_value_t = 4096)]
    subscriber_queue: usize,

    /// Bytes of events (their encoded frames) a subscriber may have
    /// waiting before it is disconnected as too slow, like
    /// `--subscriber-queue`; a single larger event still goes through.
    #[arg(long, env = "TIDINGS_SUBSCRIBER_QUEUE_BYTES", default_value_t = 4 << 20)]
    subscriber_queue_bytes: usize,

    /// Seconds a subscriber may leave queued data unread before it is
    /// disconnected.
    #[arg(long, env = "TIDINGS_WRITE_TIMEOUT", default_value_t = 30)]
    write_timeout: u64,

    /// Reconnection time sent to clients when a stream opens, in
    /// milliseconds (0: none sent).
    #[arg(long, env = "TIDINGS_RETRY_MS", default_value_t = 2000)]
    retry_ms: u64,

    /// How many topics may hold a retained update (published with
    /// `retain`); a retained publish that would add a topic beyond it is
    /// refused with 507.
    #[arg(long, env = "TIDINGS_RETAINED_TOPICS", default_value_t = 100_000)]
    retained_topics: usize,

    /// `--cluster`: share the log with other hubs. Listed before `store`:
    /// it reads the history flags too, before `store` takes them.
    #[command(flatten)]
    cluster: cluster::ClusterArgs,

    /// Where and how history is kept.
    #[command(flatten)]
    store: store::StoreArgs,

    /// Tokens, CORS, TLS and connection limits.
    #[command(flatten)]
    security: security::SecurityArgs,

    /// Log filter, in `tracing` `EnvFilter` syntax (e.g. `info`,
    /// `tidings_http=debug`). Without it, `RUST_LOG` is used, and without
    /// that, `info`.
    #[arg(long, env = "TIDINGS_LOG", value_name = "FILTER")]
    log: Option<String>,

    /// Log as JSON lines instead of text.
    #[arg(long, env = "TIDINGS_LOG_JSON")]
    log_json: bool,

    /// Let several hub processes listen on the same address
    /// (`SO_REUSEPORT`); run them with the same `--cluster` so that they
    /// share their events.
    #[arg(long, env = "TIDINGS_REUSE_PORT")]
    reuse_port: bool,

    /// Also run the built-in demo feeds (stock prices, match scores,
    /// notifications, a clock) that the page at `/` shows; serves the
    /// operator page at `/ui/` too.
    #[arg(long, env = "TIDINGS_DEMO")]
    demo: bool,

    /// Track active subscriptions (Mercure): publish a private subscription
    /// event on `/.well-known/mercure/subscriptions/{topic}/{subscriber}`
    /// when a subscriber connects and leaves, and answer the subscriptions
    /// API (without this flag it answers 404). With --cluster, across every
    /// hub.
    #[arg(long, env = "TIDINGS_SUBSCRIPTIONS")]
    subscriptions: bool,

    /// With --subscriptions and --cluster: the subscriptions of a hub that
    /// dies without saying goodbye are reported inactive within this many
    /// seconds (each hub renews a lease in the engine six times as often).
    #[arg(
        long,
        env = "TIDINGS_NODE_TTL",
        value_name = "SECONDS",
        default_value_t = 30
    )]
    node_ttl: u64,

    /// Serve the operator page at `/ui/`: the live list of active
    /// subscriptions, a publish form and a subscribe console.
    #[arg(long, env = "TIDINGS_UI")]
    ui: bool,
    /// Milliseconds between two ticks of the demo feeds (their rates assume
    /// 250; the browser tests slow them down).
    #[arg(
        long,
        env = "TIDINGS_DEMO_TICK_MS",
        value_name = "MS",
        default_value_t = 250
    )]
    demo_tick_ms: u64,
}

/// `ServeArgs`, checked and turned into the library crates' configurations.
struct Validated {
    /// Where to listen.
    listen: SocketAddr,
    /// How the hub core treats subscribers.
    hub: HubConfig,
    /// The HTTP side.
    server: ServerConfig,
    /// The TLS certificate and key the server's acceptor serves, for
    /// reloading them on SIGHUP; `None`: plain HTTP.
    tls: Option<Certificates>,
    /// Where history is kept (single hub).
    store: store::StoreConfig,
    /// The cluster engine; `None`: a single hub.
    cluster: Option<cluster::ClusterConfig>,
    /// Run the demo feeds, at this tick.
    demo: Option<Duration>,
    /// Track active subscriptions, with this node TTL; `None`: off.
    presence: Option<Duration>,
    /// Listen with `SO_REUSEPORT`.
    reuse_port: bool,
    /// The JWK Sets the verifiers use, refreshed in the background.
    key_sets: Vec<tidings_auth::KeySet>,
}

impl ServeArgs {
    fn validate(&self) -> anyhow::Result<Validated> {
        anyhow::ensure!(self.max_body > 0, "--max-body must be at least 1");
        anyhow::ensure!(self.max_selectors > 0, "--max-selectors must be at least 1");
        anyhow::ensure!(
            self.subscriber_queue > 0,
            "--subscriber-queue must be at least 1"
        );
        anyhow::ensure!(
            self.subscriber_queue_bytes > 0,
            "--subscriber-queue-bytes must be at least 1"
        );
        anyhow::ensure!(
            self.write_timeout > 0,
            "--write-timeout must be at least 1 second"
        );
        anyhow::ensure!(
            (3..=86_400).contains(&self.node_ttl),
            "--node-ttl must be 3 to 86400 seconds (got {})",
            self.node_ttl
        );
        anyhow::ensure!(self.demo_tick_ms > 0, "--demo-tick-ms must be at least 1");
        let hub = HubConfig {
            queue_capacity: self.subscriber_queue,
            queue_bytes: self.subscriber_queue_bytes,
            heartbeat: Duration::from_secs(self.heartbeat),
            write_timeout: Duration::from_secs(self.write_timeout),
            retry: (self.retry_ms > 0).then(|| Duration::from_millis(self.retry_ms)),
            retained_topics: self.retained_topics,
            ..HubConfig::default()
        };
        let security = self.security.validate()?;
        let server = ServerConfig {
            max_body: self.max_body,
            max_selectors: self.max_selectors,
            max_connections: security.max_connections,
            auth: security.auth,
            cors: security.cors,
            trusted_proxies: security.trusted_proxies,
            tls: security
                .tls
                .as_ref()
                .map(Certificates::acceptor)
                .transpose()?,
            ui: self.ui || self.demo,
            ..ServerConfig::default()
        };
        let store = self.store.validate()?;
        let cluster = self.cluster.validate()?;
        Ok(Validated {
            listen: self.listen,
            hub,
            server,
            tls: security.tls,
            store,
            cluster,
            demo: self.demo.then(|| Duration::from_millis(self.demo_tick_ms)),
            presence: self
                .subscriptions
                .then(|| Duration::from_secs(self.node_ttl)),
            reuse_port: self.reuse_port,
            key_sets: security.key_sets,
        })
    }
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.validate()?;
    let filter = log_filter(
        args.log.as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    )?;
    init_logging(filter, args.log_json)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tidings-worker")
        .max_blocking_threads(blocking_threads())
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// The most threads the runtime's blocking pool may hold. It runs the
/// durable store's reads (a subscription's replay, an id lookup), each a
/// short call; tokio's default of 512 let a burst of connects spawn a
/// thread per concurrent subscribe, each with its stack and its malloc
/// arena: 150 threads and about 200 bytes more per subscriber in the
/// 10,000-subscriber benchmark (BENCHMARKS.md), for no gain on a machine
/// with a few cores.
fn blocking_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    cores.saturating_mul(8).clamp(16, 128)
}

async fn serve(config: Validated) -> anyhow::Result<()> {
    // Before the hub starts: it looks its counters up when it does.
    let metrics = tidings_http::metrics::install();
    if let Some(handle) = metrics.clone() {
        tokio::spawn(tidings_http::metrics::upkeep(handle));
    }
    // Bound before the hub starts, so that a taken address fails the start
    // before anything is opened, and so that health checks are answered
    // while the history loads: opening repairs the file after a crash
    // (about 0.6 s per million events), `--check-history` reads it all.
    let listener = listen::bind(config.listen, config.reuse_port)?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    tracing::info!(
        address = %local,
        "loading the history; /healthz and /readyz answer meanwhile"
    );
    // Before anything is loaded: a SIGHUP from then on reloads TLS rather
    // than ending the process.
    let reload = tidings_http::tls::reload_on_hangup(config.tls.clone())
        .context("cannot listen for SIGHUP")?;
    tokio::spawn(reload);
    let mut shutdown = std::pin::pin!(tidings_http::shutdown_signal());
    let tls = config.server.tls.clone();
    // Boxed: opening the store and connecting to an engine are large
    // futures, and this one lives only until the hub starts.
    let started = Box::pin(tidings_http::serve_while_loading(&listener, tls, async {
        tokio::select! {
            hub = start_hub(&config) => Some(hub),
            () = &mut shutdown => None,
        }
    }))
    .await;
    let Some(hub) = started else {
        // A history still opening finishes on its blocking thread and is
        // closed cleanly when the runtime is dropped.
        tracing::info!("stopped before the history finished loading");
        return Ok(());
    };
    let mut hub = hub?;
    if let Some(node_ttl) = config.presence {
        let mut presence = PresenceConfig {
            roster: None,
            node_ttl,
        };
        if let Some(cluster) = &config.cluster {
            match cluster::roster(cluster, presence.lease()).await {
                Ok(roster) => presence.roster = Some(roster),
                Err(err) => {
                    hub.shutdown().await;
                    return Err(err);
                }
            }
        }
        tracing::info!(
            cluster_wide = presence.roster.is_some(),
            "active subscriptions: subscription events and the subscriptions API are on"
        );
        hub = hub.with_presence(&presence);
    }
    if let Some(tick) = config.demo {
        tokio::spawn(tidings_demo::run(
            hub.clone(),
            tidings_demo::DemoConfig {
                tick,
                ..tidings_demo::DemoConfig::default()
            },
        ));
    }
    security::start_key_sets(&config.key_sets).await;
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(address = %local, scheme, "listening");
    let auth = &config.server.auth;
    if auth.publisher.is_none() {
        tracing::warn!(
            "no publisher JWT key: dev mode. Publishing is accepted from loopback clients only, without a token; \
             a publish that carries Forwarded or X-Forwarded-For from a peer that is not a --trusted-proxy is refused"
        );
    }
    if !config.server.trusted_proxies.is_empty() {
        tracing::info!(
            "requests from trusted proxies are taken as from the client their Forwarded or X-Forwarded-For names"
        );
    }
    if auth.publisher.is_some() && auth.publish_origins.is_empty() {
        tracing::info!(
            "publishing with the mercureAuthorization cookie is refused: no --publish-origin or --cors-origin"
        );
    }
    if auth.subscriber.is_none() {
        tracing::warn!(
            "no subscriber JWT key: anyone may subscribe, and private updates reach nobody"
        );
    } else if auth.anonymous {
        tracing::info!("subscribers without a token receive public updates only");
    }
    let state = AppState::new(hub.clone(), config.server, metrics);
    let served = tidings_http::serve(listener, state, shutdown).await;
    // Serving ends with the hub shut down; this also covers serving that
    // failed: the sequencer flushes and the durable store closes its file
    // cleanly (else the next start checks and repairs it as after a crash).
    hub.shutdown().await;
    served.context("serving failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// The log filter: `--log` (or `TIDINGS_LOG`) when given, else `RUST_LOG`
/// when set and not empty, else `info`.
fn log_filter(
    flag: Option<&str>,
    rust_log: Option<&str>,
) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    let (text, source) = match (flag, rust_log) {
        (Some(flag), _) => (flag, "--log"),
        (None, Some(env)) if !env.trim().is_empty() => (env, "RUST_LOG"),
        (None, _) => ("info", "the default"),
    };
    tracing_subscriber::EnvFilter::try_new(text)
        .with_context(|| format!("bad log filter {text:?} (from {source})"))
}

/// Opens the history (off the async runtime: it may read the whole file)
/// or connects to the cluster engine, and starts the hub on it.
async fn start_hub(config: &Validated) -> anyhow::Result<Hub> {
    match &config.cluster {
        Some(cluster) => cluster::start(cluster, config.hub.clone()).await,
        None => {
            let store_config = config.store.clone();
            let store = tokio::task::spawn_blocking(move || store::open(&store_config))
                .await
                .context("opening the history stopped")??;
            Hub::start(config.hub.clone(), store).context("cannot start the hub")
        }
    }
}

fn init_logging(filter: tracing_subscriber::EnvFilter, json: bool) -> anyhow::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--log` wins over `RUST_LOG`, which wins over the default.
    #[test]
    fn log_filter_sources() {
        let shown = |flag, env| log_filter(flag, env).map(|f| f.to_string());
        assert_eq!(
            shown(Some("warn"), Some("debug")).ok().as_deref(),
            Some("warn")
        );
        assert_eq!(
            shown(None, Some("tidings_http=debug")).ok().as_deref(),
            Some("tidings_http=debug")
        );
        assert_eq!(shown(None, Some(" ")).ok().as_deref(), Some("info"));
        assert_eq!(shown(None, None).ok().as_deref(), Some("info"));
        let bad = shown(None, Some("tidings=loud"))
            .err()
            .map(|e| e.to_string());
        assert!(bad.is_some_and(|e| e.contains("RUST_LOG")));
        let bad = shown(Some("tidings=loud"), Some("info"))
            .err()
            .map(|e| e.to_string());
        assert!(bad.is_some_and(|e| e.contains("--log")));
    }
}
