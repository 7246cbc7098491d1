//! `tidings serve`: run the hub.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tidings_core::{Hub, HubConfig};
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
    /// `tidings_http=debug`).
    #[arg(long, env = "TIDINGS_LOG", default_value = "info")]
    log: String,

    /// Log as JSON lines instead of text.
    #[arg(long, env = "TIDINGS_LOG_JSON")]
    log_json: bool,

    /// Let several hub processes listen on the same address
    /// (`SO_REUSEPORT`); run them with the same `--cluster` so that they
    /// share their events.
    #[arg(long, env = "TIDINGS_REUSE_PORT")]
    reuse_port: bool,

    /// Also run the built-in demo feeds (stock prices, match scores,
    /// notifications, a clock) that the page at `/` shows.
    #[arg(long)]
    demo: bool,

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
    server: ServerConfig,
    store: store::StoreConfig,
    /// The cluster engine; `None`: a single hub.
    cluster: Option<cluster::ClusterConfig>,
    /// Run the demo feeds, at this tick.
    demo: Option<Duration>,
    /// Listen with `SO_REUSEPORT`.
    reuse_port: bool,
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
            self.write_timeout > 0,
            "--write-timeout must be at least 1 second"
        );
        anyhow::ensure!(self.demo_tick_ms > 0, "--demo-tick-ms must be at least 1");
        let hub = HubConfig {
            queue_capacity: self.subscriber_queue,
            heartbeat: Duration::from_secs(self.heartbeat),
            write_timeout: Duration::from_secs(self.write_timeout),
            retry: (self.retry_ms > 0).then(|| Duration::from_millis(self.retry_ms)),
            retained_topics: self.retained_topics,
            ..HubConfig::default()
        };
        let security = self.security.validate()?;
        let server = ServerConfig {
            listen: self.listen,
            max_body: self.max_body,
            max_selectors: self.max_selectors,
            max_connections: security.max_connections,
            hub,
            auth: security.auth,
            cors: security.cors,
            tls: security.tls,
            ..ServerConfig::default()
        };
        let store = self.store.validate()?;
        let cluster = self.cluster.validate()?;
        Ok(Validated {
            server,
            store,
            cluster,
            demo: self.demo.then(|| Duration::from_millis(self.demo_tick_ms)),
            reuse_port: self.reuse_port,
        })
    }
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.validate()?;
    init_logging(&args.log, args.log_json)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tidings-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Validated) -> anyhow::Result<()> {
    // Before the hub starts: it looks its counters up when it does.
    let metrics = tidings_http::metrics::install();
    if let Some(handle) = metrics.clone() {
        tokio::spawn(tidings_http::metrics::upkeep(handle));
    }
    // Bound before the hub starts, so that a taken address fails the start
    // before anything is opened; connections wait in the backlog until the
    // hub serves them.
    let listen = config.server.listen;
    let listener = listen::bind(listen, config.reuse_port)?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let hub = match &config.cluster {
        Some(cluster) => cluster::start(cluster, config.server.hub.clone()).await?,
        None => {
            let store = store::open(&config.store)?;
            Hub::start(config.server.hub.clone(), store).context("cannot start the hub")?
        }
    };
    if let Some(tick) = config.demo {
        tokio::spawn(tidings_demo::run(
            hub.clone(),
            tidings_demo::DemoConfig {
                tick,
                ..tidings_demo::DemoConfig::default()
            },
        ));
    }
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(address = %local, scheme, "listening");
    let auth = &config.server.auth;
    if auth.publisher.is_none() {
        tracing::warn!(
            "no publisher JWT key: dev mode. Publishing is accepted from loopback peers only, without a token"
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
    let served = tidings_http::serve(listener, state, tidings_http::shutdown_signal()).await;
    // Serving ends with the hub shut down; this also covers serving that
    // failed: the sequencer flushes and the durable store closes its file
    // cleanly (else the next start checks and repairs it as after a crash).
    hub.shutdown().await;
    served.context("serving failed")?;
    tracing::info!("stopped");
    Ok(())
}

fn init_logging(filter: &str, json: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("bad --log filter {filter:?}"))?;
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
