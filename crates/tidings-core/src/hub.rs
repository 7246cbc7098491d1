//! The hub: the handle transports use to publish and subscribe.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::event::{Event, Published, Update, UpdateError};
use crate::follower;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::replay::{self, Lookup};
use crate::sequencer::{self, Command};
use crate::store::{Bounds, Store, StoreError};
use crate::subscriber::{End, Offer, SubscribeRequest, Subscriber, Subscription};
use crate::sweeper;

/// How the hub treats subscribers.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events a subscriber may have waiting before it counts as too slow
    /// and is disconnected (it then resumes from history).
    pub queue_capacity: usize,
    /// A keep-alive comment goes to a stream idle this long; zero: never.
    pub heartbeat: Duration,
    /// A subscriber that leaves queued data untaken this long is
    /// disconnected.
    pub write_timeout: Duration,
    /// The reconnection time sent when a stream opens; `None`: none sent.
    pub retry: Option<Duration>,
    /// Events read from history per page when replaying.
    pub replay_page: usize,
    /// How often retention is enforced in the background.
    pub retention_interval: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            heartbeat: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            retry: Some(Duration::from_secs(2)),
            replay_page: 1000,
            retention_interval: Duration::from_secs(5),
        }
    }
}

/// Why a publish failed. Nothing of a failed publish is delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// An update was refused; `index` is its place in the batch.
    #[error("update {index}: {error}")]
    Invalid {
        /// The update's place in the publish.
        index: usize,
        /// What was wrong with it.
        error: UpdateError,
    },
    /// An update reused the id of a stored event with different content.
    #[error("id {id:?} is already used by a different update")]
    Conflict {
        /// The id.
        id: String,
    },
    /// The history store failed: nothing was published.
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
    /// The cluster engine cannot be reached: nothing was published.
    #[error("the cluster engine is unavailable: {0}")]
    Unavailable(String),
}

/// Why a subscription could not start.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The history store failed while resolving the resume point.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
}

/// What the hub's parts share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// How subscribers are treated.
    pub(crate) config: HubConfig,
    /// The history.
    pub(crate) store: Arc<dyn Store>,
    /// Who is subscribed to what.
    registry: RwLock<Registry>,
    /// Seconds since start, for timeouts.
    pub(crate) clock: Clock,
    /// Counters.
    pub(crate) metrics: Metrics,
    /// The next subscriber key.
    next_key: AtomicU64,
    /// Set once shutdown began: no new publishes or subscriptions.
    shutting_down: AtomicBool,
    /// The frames every stream opens with: a comment, so that proxies and
    /// clients see the response start at once, and the `retry` time.
    opening: Bytes,
    /// The highest sequence number stored and offered so far: a resuming
    /// subscriber in cluster mode waits here for an id another hub made.
    offered: watch::Sender<u64>,
    /// The cluster engine, in cluster mode.
    cluster: Option<Arc<dyn Cluster>>,
}

/// How long a resuming subscriber waits for this hub to follow the cluster
/// up to the id it asked for.
const CATCH_UP: Duration = Duration::from_secs(5);

impl Shared {
    fn new(
        config: HubConfig,
        store: Arc<dyn Store>,
        cluster: Option<Arc<dyn Cluster>>,
    ) -> Arc<Self> {
        let mut opening = BytesMut::new();
        opening.extend_from_slice(&tidings_codec::comment(""));
        if let Some(retry) = config.retry {
            let ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
            opening.extend_from_slice(&tidings_codec::retry(ms));
        }
        Arc::new(Self {
            config,
            store,
            registry: RwLock::new(Registry::default()),
            clock: Clock::new(),
            metrics: Metrics::new(),
            next_key: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            opening: opening.freeze(),
            offered: watch::Sender::new(0),
            cluster,
        })
    }

    pub(crate) fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn registry_mut(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `sub` to the registry unless the hub is shutting down.
    fn subscribe(&self, sub: &Arc<Subscriber>) -> Result<(), SubscribeError> {
        let mut registry = self.registry_mut();
        // Checked under the lock: shutdown sets the flag, then ends every
        // registered subscriber, so none can slip in between.
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(SubscribeError::ShuttingDown);
        }
        registry.insert(sub);
        self.metrics.subscriptions.increment(1.0);
        Ok(())
    }

    /// Offers newly stored `events` (in order) to the subscribers that
    /// match them; `received` says when the hub got each, for the latency
    /// metric. Never blocks on a subscriber.
    pub(crate) fn fan_out(&self, events: &[Arc<Event>], received: &[Instant]) {
        let now = self.clock.now();
        let mut lagged = 0u64;
        {
            let registry = self.registry();
            for (event, &received) in events.iter().zip(received) {
                registry.for_each_match(event, |sub| {
                    if sub.offer(event, received, now) == Offer::Lagged {
                        lagged += 1;
                    }
                });
            }
        }
        if let Some(last) = events.last() {
            self.offered.send_replace(last.seq);
        }
        if lagged > 0 {
            self.metrics.lagged.increment(lagged);
            tracing::debug!(
                lagged,
                "subscribers fell a queue behind and are disconnected"
            );
        }
    }

    pub(crate) fn unsubscribe(&self, sub: &Subscriber) {
        self.registry_mut().remove(sub);
        self.metrics.subscriptions.decrement(1.0);
    }

    /// Runs a store call, off the async runtime when the store may block.
    async fn store_call<T: Send + 'static>(
        self: &Arc<Self>,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if !self.store.blocking() {
            return call(&*self.store);
        }
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(&*store))
            .await
            .map_err(|e| StoreError::from_source("store task failed", e))?
    }

    pub(crate) async fn read_after(
        self: &Arc<Self>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Arc<Event>>, StoreError> {
        self.store_call(move |s| s.read_after(after, limit)).await
    }

    async fn resolve(
        self: &Arc<Self>,
        requested: Option<&str>,
    ) -> Result<replay::Resume, StoreError> {
        let lookup = match requested {
            None => None,
            Some(id) => match Lookup::classify(id) {
                Some(Lookup::Hub(seq)) => {
                    self.catch_up(seq).await;
                    Some(Lookup::Hub(seq))
                }
                Some(lookup) => Some(lookup),
                None => {
                    let owned = id.to_owned();
                    let found = self.store_call(move |s| s.find_id(&owned)).await?;
                    match found {
                        Some(event) => Some(Lookup::Found(event.seq)),
                        None => Some(self.find_in_cluster(id).await),
                    }
                }
            },
        };
        let bounds: Bounds = self.store_call(|s| s.bounds()).await?;
        Ok(replay::plan(requested, lookup, bounds))
    }

    /// In cluster mode, waits (briefly) until the entry at `seq` has been
    /// followed here, if the engine has it: a client may resume on this hub
    /// with an id another hub just made.
    async fn catch_up(&self, seq: u64) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        if *self.offered.borrow() >= seq {
            return;
        }
        match cluster.bounds().await {
            Ok(bounds) if seq < bounds.next => {}
            _ => return,
        }
        let mut offered = self.offered.subscribe();
        let wait = offered.wait_for(|&offered| offered >= seq);
        if tokio::time::timeout(CATCH_UP, wait).await.is_err() {
            tracing::warn!(
                seq,
                "this hub is behind the cluster; resuming with what it has"
            );
        }
    }

    /// A publisher id this hub has not seen: in cluster mode, asks the
    /// engine and catches up to it.
    async fn find_in_cluster(&self, id: &str) -> Lookup {
        let Some(cluster) = &self.cluster else {
            return Lookup::NotFound;
        };
        match cluster.find_id(id).await {
            Ok(Some(seq)) => {
                self.catch_up(seq).await;
                Lookup::Found(seq)
            }
            Ok(None) => Lookup::NotFound,
            Err(err) => {
                tracing::warn!(error = %err, "cannot look an id up in the cluster");
                Lookup::NotFound
            }
        }
    }

    pub(crate) async fn enforce_retention(self: &Arc<Self>) -> Result<u64, StoreError> {
        let now_ms = crate::clock::unix_ms();
        self.store_call(move |s| s.enforce_retention(now_ms)).await
    }
}

/// Where publishes go.
#[derive(Debug)]
enum Writer {
    /// The local sequencer thread; dropping the sender stops it.
    Sequencer(mpsc::Sender<Command>),
    /// The cluster engine; the follower task brings entries back.
    Cluster {
        /// The engine.
        engine: Arc<dyn Cluster>,
        /// The task that follows the engine's log.
        follower: tokio::task::JoinHandle<()>,
    },
}

/// Stops the background parts when the last [`Hub`] handle goes.
#[derive(Debug)]
struct Running {
    /// Where publishes go.
    writer: Writer,
    /// The sweeper task.
    sweeper: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.sweeper.abort();
        if let Writer::Cluster { follower, .. } = &self.writer {
            follower.abort();
        }
    }
}

/// A running hub. Cheap to clone; every clone is the same hub.
#[derive(Debug, Clone)]
pub struct Hub {
    /// State shared with subscriptions, the sequencer and the sweeper.
    shared: Arc<Shared>,
    /// The background parts.
    running: Arc<Running>,
}

impl Hub {
    /// Starts a hub on `store`: its sequencer thread, and its sweeper task
    /// on the current Tokio runtime.
    pub fn start(config: HubConfig, store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let next = store.bounds()?.next;
        let shared = Shared::new(config, store, None);
        let (commands, rx) = mpsc::channel(4096);
        let sequencer_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("tidings-sequencer".into())
            .spawn(move || sequencer::run(&sequencer_shared, next, rx))
            .map_err(|e| StoreError::from_source("cannot start the sequencer thread", e))?;
        Ok(Self::running(shared, Writer::Sequencer(commands)))
    }

    /// Starts a hub that shares its log with other hubs through `cluster`:
    /// publishes go to the engine, and a task follows the engine's log into
    /// `store` (which serves replays) and out to this hub's subscribers.
    pub fn start_cluster(
        config: HubConfig,
        store: Arc<dyn Store>,
        cluster: Arc<dyn Cluster>,
    ) -> Self {
        let shared = Shared::new(config, store, Some(Arc::clone(&cluster)));
        let follower = tokio::spawn(follower::run(Arc::clone(&shared), Arc::clone(&cluster)));
        Self::running(
            shared,
            Writer::Cluster {
                engine: cluster,
                follower,
            },
        )
    }

    fn running(shared: Arc<Shared>, writer: Writer) -> Self {
        let sweeper = tokio::spawn(sweeper::run(Arc::downgrade(&shared)));
        Self {
            shared,
            running: Arc::new(Running { writer, sweeper }),
        }
    }

    /// Publishes `updates` as one unit: all get a place in the order, are
    /// stored and are offered to subscribers, or none is. An update whose
    /// id is already stored with the same content is a retry: it gets its
    /// old place back and is not delivered again.
    pub async fn publish(&self, updates: Vec<Update>) -> Result<Vec<Published>, PublishError> {
        for (index, update) in updates.iter().enumerate() {
            update
                .validate()
                .map_err(|error| PublishError::Invalid { index, error })?;
        }
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        if self.shared.shutting_down.load(Ordering::SeqCst) {
            return Err(PublishError::ShuttingDown);
        }
        match &self.running.writer {
            Writer::Sequencer(commands) => {
                let (reply, outcome) = oneshot::channel();
                let command = Command::Publish {
                    updates,
                    received: Instant::now(),
                    reply,
                };
                commands
                    .send(command)
                    .await
                    .map_err(|_| PublishError::ShuttingDown)?;
                outcome.await.map_err(|_| PublishError::ShuttingDown)?
            }
            Writer::Cluster { engine, .. } => {
                let published = engine.append(&updates, crate::clock::unix_ms()).await?;
                let new = published.iter().filter(|p| !p.duplicate).count();
                self.shared.metrics.published.increment(new as u64);
                self.shared
                    .metrics
                    .duplicates
                    .increment((published.len() - new) as u64);
                Ok(published)
            }
        }
    }

    /// Subscribes: from now on, every matching event is queued for the new
    /// subscription; if it asked to resume, the history after its id is
    /// replayed first, with no gap and no duplicate where the two meet.
    pub async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Subscription, SubscribeError> {
        let shared = &self.shared;
        let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
        let expires_at = request
            .auth
            .as_ref()
            .and_then(|a| a.expires_at)
            .map(|at| shared.clock.second_of(at));
        let sub = Arc::new(Subscriber::new(
            key,
            &request,
            shared.config.queue_capacity,
            expires_at,
            shared.clock.now(),
        ));
        // Live first, so nothing published from here on can be missed.
        shared.subscribe(&sub)?;
        let resume = match shared.resolve(request.last_event_id.as_deref()).await {
            Ok(resume) => resume,
            Err(err) => {
                shared.unsubscribe(&sub);
                return Err(err.into());
            }
        };
        let mut opening = vec![shared.opening.clone()];
        opening.extend(resume.gap);
        Ok(Subscription::new(
            Arc::clone(shared),
            sub,
            opening,
            resume.after,
            resume.header,
        ))
    }

    /// Stops taking publishes and subscriptions, lets the sequencer finish
    /// what it has, then ends every stream (after what is queued for it).
    pub async fn shutdown(&self) {
        if self.shared.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        match &self.running.writer {
            Writer::Sequencer(commands) => {
                let (done, stopped) = oneshot::channel();
                if commands.send(Command::Stop(done)).await.is_ok() {
                    let _ = stopped.await;
                }
            }
            Writer::Cluster { follower, .. } => follower.abort(),
        }
        for sub in self.shared.registry().all() {
            sub.end(End::Shutdown);
        }
    }

    /// Whether the hub takes publishes and subscriptions.
    pub fn is_serving(&self) -> bool {
        let writer_alive = match &self.running.writer {
            Writer::Sequencer(commands) => !commands.is_closed(),
            Writer::Cluster { follower, .. } => !follower.is_finished(),
        };
        !self.shared.shutting_down.load(Ordering::SeqCst) && writer_alive
    }

    /// How many subscriptions are open.
    pub fn subscription_count(&self) -> usize {
        self.shared.registry().len()
    }

    /// The retained range of history.
    pub async fn bounds(&self) -> Result<Bounds, StoreError> {
        self.shared.store_call(|s| s.bounds()).await
    }
}
