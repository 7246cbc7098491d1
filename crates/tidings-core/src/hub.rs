//! The hub: the handle transports use to publish and subscribe, and the
//! owner of the hub's threads and tasks (the sequencer thread or the
//! cluster follower, the fan-out thread, the sweeper and the recovery task).
//!
//! Imports run one way: from this handle down to the parts it starts
//! (`sequencer`, `follower`, `recovery`, `sweeper`, `subscription`, `fanout`), from them to
//! `shared`, and from there to the leaves (`registry`, `subscriber`,
//! `history`, `store`, `event`, `error`, ...). No part imports the hub.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, mpsc, oneshot};

use crate::cluster::Cluster;
use crate::config::HubConfig;
use crate::engine::EngineHealth;
use crate::error::{PublishError, SubscribeError};
use crate::event::{EventId, Published, Update};
use crate::fanout::FanOut;
use crate::follower;
use crate::presence::{ListError, Presence, PresenceConfig, SubscriptionList};
use crate::readiness::Readiness;
use crate::recovery::{self, Watched};
use crate::retained::{self, Admission, Head};
use crate::sequencer::{self, Command};
use crate::shared::Shared;
use crate::store::{Bounds, Store, StoreError, StoreErrorKind};
use crate::subscriber::{End, QueueLimit, SubscribeRequest, Subscriber};
use crate::subscription::Subscription;
use crate::sweeper;

/// Where publishes go.
#[derive(Debug)]
enum Writer {
    /// The local sequencer thread; dropping the sender stops it.
    Sequencer {
        /// Its command channel.
        commands: mpsc::Sender<Command>,
        /// The thread, joined by shutdown.
        thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    },
    /// The cluster engine; the follower task brings entries back.
    Cluster {
        /// The engine.
        engine: Arc<dyn Cluster>,
        /// The task that follows the engine's log, awaited by shutdown.
        follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
        /// What this hub knows of the engine: reachable, full, caught up.
        health: Arc<EngineHealth>,
    },
}

/// The hub's threads and tasks. Stops the tasks when the last [`Hub`]
/// handle goes without a shutdown (the sequencer thread then ends by
/// itself, its channel closed).
#[derive(Debug)]
struct Running {
    /// Where publishes go.
    writer: Writer,
    /// The fan-out thread's channel.
    fanout: FanOut,
    /// The fan-out thread, joined by shutdown.
    fanout_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The sweeper task.
    sweeper: tokio::task::JoinHandle<()>,
    /// The task that brings the store and the engine back after faults.
    recovery: tokio::task::JoinHandle<()>,
    /// Set once shutdown has finished: later calls wait for the first.
    stopped: OnceCell<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.sweeper.abort();
        self.recovery.abort();
        if let Writer::Cluster { follower, .. } = &self.writer
            && let Some(follower) = lock(follower).as_ref()
        {
            follower.abort();
        }
    }
}

fn lock<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A hub handle from weak references, while the hub lives.
fn upgrade(shared: &Weak<Shared>, running: &Weak<Running>) -> Option<Hub> {
    Some(Hub {
        shared: shared.upgrade()?,
        running: running.upgrade()?,
        presence: None,
    })
}

/// Waits for a thread that has been told to stop.
async fn join(name: &str, thread: Option<std::thread::JoinHandle<()>>) {
    if let Some(thread) = thread {
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!(thread = name, "a hub thread ended abnormally");
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
    /// The active subscriptions, when the hub keeps them
    /// ([`Hub::with_presence`]).
    presence: Option<Arc<Presence>>,
}

/// How long a shutdown waits for the subscriptions to be reported
/// inactive.
const GOODBYE: Duration = Duration::from_secs(5);

impl Hub {
    /// Starts a hub on `store`: its sequencer thread, and its sweeper task
    /// on the current Tokio runtime.
    pub fn start(config: HubConfig, store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let bounds = store.bounds()?;
        let next = bounds.next;
        let kept = store.retained()?;
        // The newest event: the last stored, or only its place when
        // retention dropped it and retained updates remain.
        let last = store.read_after(next.saturating_sub(2), 1)?;
        let head = match last.into_iter().next() {
            Some(event) if event.seq + 1 == next => Some(Head::Event(event)),
            _ if bounds.first < next || !kept.is_empty() => Some(Head::Place(next - 1)),
            _ => None,
        };
        let shared = Shared::new(config, store, None);
        shared.retained.load(kept, head);
        let (fanout, fanout_thread) = FanOut::start(Arc::clone(&shared))
            .map_err(|e| StoreError::from_source("cannot start the fan-out thread", e))?;
        let (commands, rx) = mpsc::channel(4096);
        let sequencer_shared = Arc::clone(&shared);
        let sequencer_fanout = fanout.clone();
        let thread = std::thread::Builder::new()
            .name("tidings-sequencer".into())
            .spawn(move || sequencer::run(&sequencer_shared, &sequencer_fanout, next, rx))
            .map_err(|e| StoreError::from_source("cannot start the sequencer thread", e))?;
        Ok(Self::running(
            shared,
            Writer::Sequencer {
                commands,
                thread: Mutex::new(Some(thread)),
            },
            fanout,
            fanout_thread,
            None,
        ))
    }

    /// Starts a hub that shares its log with other hubs through `cluster`:
    /// publishes go to the engine, and a task follows the engine's log into
    /// `store` (which serves replays) and out to this hub's subscribers.
    pub fn start_cluster(
        config: HubConfig,
        store: Arc<dyn Store>,
        cluster: Arc<dyn Cluster>,
    ) -> Result<Self, StoreError> {
        let shared = Shared::new(config, store, Some(Arc::clone(&cluster)));
        let (fanout, fanout_thread) = FanOut::start(Arc::clone(&shared))
            .map_err(|e| StoreError::from_source("cannot start the fan-out thread", e))?;
        let health = Arc::new(EngineHealth::default());
        let follower = tokio::spawn(follower::run(
            Arc::clone(&shared),
            fanout.clone(),
            Arc::clone(&cluster),
            Arc::clone(&health),
        ));
        let watched = Watched {
            engine: Arc::clone(&cluster),
            health: Arc::clone(&health),
        };
        Ok(Self::running(
            shared,
            Writer::Cluster {
                engine: cluster,
                follower: Mutex::new(Some(follower)),
                health,
            },
            fanout,
            fanout_thread,
            Some(watched),
        ))
    }

    fn running(
        shared: Arc<Shared>,
        writer: Writer,
        fanout: FanOut,
        fanout_thread: std::thread::JoinHandle<()>,
        watched: Option<Watched>,
    ) -> Self {
        let sweeper = tokio::spawn(sweeper::run(Arc::downgrade(&shared)));
        let recovery = tokio::spawn(recovery::run(Arc::downgrade(&shared), watched));
        Self {
            shared,
            running: Arc::new(Running {
                writer,
                fanout,
                fanout_thread: Mutex::new(Some(fanout_thread)),
                sweeper,
                recovery,
                stopped: OnceCell::new(),
            }),
            presence: None,
        }
    }

    /// Keeps the list of active subscriptions and publishes subscription
    /// events (see [`ActiveSubscription`](crate::ActiveSubscription)), from
    /// now on. Call it on the hub [`Hub::start`] returned, before cloning
    /// it: clones made earlier do not track.
    #[must_use]
    pub fn with_presence(mut self, config: &PresenceConfig) -> Self {
        let shared = Arc::downgrade(&self.shared);
        let running = Arc::downgrade(&self.running);
        let publish: crate::presence::Publish = Arc::new(move |updates| {
            let hub = upgrade(&shared, &running);
            Box::pin(async move {
                match hub {
                    Some(hub) => hub.publish(updates).await,
                    None => Err(PublishError::ShuttingDown),
                }
            })
        });
        self.presence = Some(Presence::start(config, publish));
        self
    }

    /// Publishes `updates` as one unit: all get a place in the order, are
    /// stored and are offered to subscribers, or none is. An update whose
    /// id is already stored with the same content is a retry: it gets its
    /// old place back and is not delivered again.
    pub async fn publish(&self, updates: Vec<Update>) -> Result<Vec<Published>, PublishError> {
        let result = self.publish_now(updates).await;
        if let Err(err) = &result
            && err.is_refusal()
        {
            self.shared.metrics.refused(err.cause());
        }
        result
    }

    async fn publish_now(&self, updates: Vec<Update>) -> Result<Vec<Published>, PublishError> {
        for (index, update) in updates.iter().enumerate() {
            update
                .validate()
                .map_err(|error| PublishError::Invalid { index, error })?;
        }
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        if self.shared.is_shutting_down() {
            return Err(PublishError::ShuttingDown);
        }
        match &self.running.writer {
            Writer::Sequencer { commands, .. } => {
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
            Writer::Cluster { engine, health, .. } => {
                // Checked against this hub's copy of the retained updates,
                // which follows the engine's.
                self.shared.retained.admit(
                    &mut Admission::default(),
                    retained::changes_of_updates(&updates),
                )?;
                let appended = engine.append(&updates, crate::clock::unix_ms()).await;
                match &appended {
                    Ok(_) => health.took_write(),
                    Err(PublishError::Unavailable(error)) => health.unreachable(error),
                    Err(PublishError::EngineFull(error)) => health.full(error),
                    Err(_) => {}
                }
                let published = appended?;
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
    /// replayed first, with no gap and no duplicate where the two meet;
    /// if not, the retained updates of its topics come first, then an
    /// `id:` block naming the newest event the hub held (from which a
    /// client resumes exactly).
    pub async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<Subscription, SubscribeError> {
        let shared = &self.shared;
        let expires_at = request
            .auth
            .as_ref()
            .and_then(|a| a.expires_at)
            .map(|at| shared.clock.second_of(at));
        let limit = QueueLimit {
            events: shared.config.queue_capacity,
            bytes: shared.config.queue_bytes,
        };
        let sub = Arc::new(Subscriber::new(
            shared.registry.next_key(),
            &request,
            limit,
            expires_at,
            shared.clock.now(),
        ));
        // Live first, so nothing published from here on can be missed.
        shared.subscribe(&sub)?;
        // Then, unless it resumes, the retained updates up to the head:
        // what comes after the head comes live.
        let snapshot = request
            .last_event_id
            .is_none()
            .then(|| shared.retained.snapshot(&sub));
        let resume = match shared.resolve(request.last_event_id.as_deref()).await {
            Ok(resume) => resume,
            Err(err) => {
                shared.unsubscribe(&sub);
                return Err(err.into());
            }
        };
        let mut opening = vec![shared.opening.clone()];
        opening.extend(resume.gap);
        let subscription = Subscription::new(
            Arc::clone(shared),
            Arc::clone(&sub),
            opening,
            resume.after,
            snapshot,
            resume.header,
        );
        // Announced once registered: a watcher subscribed to subscription
        // events sees this one's too.
        let seat = self.presence.as_ref().and_then(|presence| {
            let payload = request
                .auth
                .as_ref()
                .and_then(|a| a.payload.clone())
                .map(Arc::new);
            presence.join(&sub.selectors, payload)
        });
        Ok(subscription.seated(seat))
    }

    /// Whether the hub keeps the list of active subscriptions.
    pub fn tracks_subscriptions(&self) -> bool {
        self.presence.is_some()
    }

    /// The active subscriptions (of every hub, in cluster mode) and the id
    /// of the newest event the hub had just before the list was taken:
    /// subscribing to subscription events from that id after reading the
    /// list misses nothing. `None` when the hub does not track them.
    pub async fn subscriptions(&self) -> Result<Option<SubscriptionList>, ListError> {
        let Some(presence) = &self.presence else {
            return Ok(None);
        };
        // The newest id first, then the list (see `presence`).
        let last_event_id = self.last_event_id().await?;
        let subscriptions = presence.list().await?;
        Ok(Some(SubscriptionList {
            last_event_id,
            subscriptions,
        }))
    }

    /// The id of the newest event of the hub (of the cluster's log, in
    /// cluster mode); `None` when there is none.
    pub async fn last_event_id(&self) -> Result<Option<String>, ListError> {
        let bounds = match &self.running.writer {
            Writer::Sequencer { .. } => self.bounds().await?,
            Writer::Cluster { engine, .. } => {
                let bounds = engine.bounds().await?;
                if bounds.first < bounds.next {
                    // Follow the log up to it (briefly), so that its own
                    // id can be read here.
                    let newest = EventId::format(bounds.next - 1);
                    let _ = self.shared.resolve(Some(&newest)).await;
                }
                bounds
            }
        };
        if bounds.first >= bounds.next {
            return Ok(None);
        }
        let newest = bounds.next - 1;
        let after = newest.saturating_sub(1);
        let page = self
            .shared
            .history
            .call(move |s| s.read_after(after, 1))
            .await?;
        Ok(Some(match page.first() {
            Some(event) if event.seq == newest => event.id.to_string(),
            _ => EventId::format(newest),
        }))
    }

    /// Stops taking publishes and subscriptions, lets the sequencer finish
    /// what it has (or stops following the cluster), ends every stream
    /// (after what is queued for it), stops the sweeper and closes the
    /// store. Returns once all of that is done; a second call waits for the
    /// first.
    pub async fn shutdown(&self) {
        self.running.stopped.get_or_init(|| self.stop()).await;
    }

    async fn stop(&self) {
        // While publishes are still taken: every subscription reported
        // inactive (and, in cluster mode, this hub out of the roster).
        if let Some(presence) = &self.presence {
            presence.goodbye(GOODBYE).await;
        }
        self.shared.begin_shutdown();
        match &self.running.writer {
            Writer::Sequencer { commands, thread } => {
                // The sequencer stops the fan-out once it has handed over
                // everything it stored.
                let (done, stopped) = oneshot::channel();
                if commands.send(Command::Stop(done)).await.is_ok() {
                    let _ = stopped.await;
                }
                let thread = lock(thread).take();
                join("sequencer", thread).await;
            }
            Writer::Cluster { follower, .. } => {
                let follower = lock(follower).take();
                if let Some(follower) = follower {
                    follower.abort();
                    let _ = follower.await;
                }
                self.running.fanout.stop().await;
            }
        }
        let thread = lock(&self.running.fanout_thread).take();
        join("fan-out", thread).await;
        self.shared.registry.apply();
        self.shared.registry.for_each(|sub| sub.end(End::Shutdown));
        self.running.sweeper.abort();
        // Stopped before the store closes: it may be reopening it.
        self.running.recovery.abort();
        if let Err(err) = self.shared.history.call(|s| s.close()).await {
            tracing::error!(error = %err, "closing the history failed");
        }
    }

    /// Whether the hub takes publishes and subscriptions.
    pub fn is_serving(&self) -> bool {
        let writer_alive = match &self.running.writer {
            Writer::Sequencer { commands, .. } => !commands.is_closed(),
            Writer::Cluster { follower, .. } => {
                lock(follower).as_ref().is_some_and(|f| !f.is_finished())
            }
        };
        !self.shared.is_shutting_down() && writer_alive
    }

    /// Whether the hub can take publishes and serve everything now, and if
    /// not, why. Subscribers are served either way (a hub that is not
    /// ready is still alive, see [`Hub::is_serving`]).
    pub fn readiness(&self) -> Readiness {
        if !self.is_serving() {
            return Readiness::ShuttingDown;
        }
        match self.shared.history.outage() {
            Some(StoreErrorKind::Full) => return Readiness::DiskFull,
            Some(_) => return Readiness::StoreFailing,
            None => {}
        }
        if let Writer::Cluster { health, .. } = &self.running.writer {
            if health.is_unreachable() {
                return Readiness::EngineUnreachable;
            }
            if !health.is_caught_up() {
                return Readiness::Loading;
            }
        }
        Readiness::Ready
    }

    /// How many subscriptions are open.
    pub fn subscription_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// The retained range of history.
    pub async fn bounds(&self) -> Result<Bounds, StoreError> {
        self.shared.history.call(|s| s.bounds()).await
    }
}
