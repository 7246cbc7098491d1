//! The hub: the handle transports use to publish and subscribe, and the
//! owner of the hub's threads and tasks (the sequencer thread or the
//! cluster follower, and the sweeper).
//!
//! Imports run one way: from this handle down to the parts it starts
//! (`sequencer`, `follower`, `sweeper`, `subscription`), from them to
//! `shared`, and from there to the leaves (`registry`, `subscriber`,
//! `history`, `store`, `event`, `error`, ...). No part imports the hub.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::{OnceCell, mpsc, oneshot};

use crate::cluster::Cluster;
use crate::config::HubConfig;
use crate::error::{PublishError, SubscribeError};
use crate::event::{Published, Update};
use crate::follower;
use crate::retained::{self, Admission, Head};
use crate::sequencer::{self, Command};
use crate::shared::Shared;
use crate::store::{Bounds, Store, StoreError};
use crate::subscriber::{End, SubscribeRequest, Subscriber};
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
    },
}

/// The hub's threads and tasks. Stops the tasks when the last [`Hub`]
/// handle goes without a shutdown (the sequencer thread then ends by
/// itself, its channel closed).
#[derive(Debug)]
struct Running {
    /// Where publishes go.
    writer: Writer,
    /// The sweeper task.
    sweeper: tokio::task::JoinHandle<()>,
    /// Set once shutdown has finished: later calls wait for the first.
    stopped: OnceCell<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.sweeper.abort();
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
        let (commands, rx) = mpsc::channel(4096);
        let sequencer_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tidings-sequencer".into())
            .spawn(move || sequencer::run(&sequencer_shared, next, rx))
            .map_err(|e| StoreError::from_source("cannot start the sequencer thread", e))?;
        Ok(Self::running(
            shared,
            Writer::Sequencer {
                commands,
                thread: Mutex::new(Some(thread)),
            },
        ))
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
                follower: Mutex::new(Some(follower)),
            },
        )
    }

    fn running(shared: Arc<Shared>, writer: Writer) -> Self {
        let sweeper = tokio::spawn(sweeper::run(Arc::downgrade(&shared)));
        Self {
            shared,
            running: Arc::new(Running {
                writer,
                sweeper,
                stopped: OnceCell::new(),
            }),
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
            Writer::Cluster { engine, .. } => {
                // Checked against this hub's copy of the retained updates,
                // which follows the engine's.
                self.shared.retained.admit(
                    &mut Admission::default(),
                    retained::changes_of_updates(&updates),
                )?;
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
        let sub = Arc::new(Subscriber::new(
            shared.registry.next_key(),
            &request,
            shared.config.queue_capacity,
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
        Ok(Subscription::new(
            Arc::clone(shared),
            sub,
            opening,
            resume.after,
            snapshot,
            resume.header,
        ))
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
        self.shared.begin_shutdown();
        match &self.running.writer {
            Writer::Sequencer { commands, thread } => {
                let (done, stopped) = oneshot::channel();
                if commands.send(Command::Stop(done)).await.is_ok() {
                    let _ = stopped.await;
                }
                let thread = lock(thread).take();
                if let Some(thread) = thread {
                    // It has answered the stop, so it is returning.
                    let joined = tokio::task::spawn_blocking(move || thread.join()).await;
                    if !matches!(joined, Ok(Ok(()))) {
                        tracing::error!("the sequencer thread ended abnormally");
                    }
                }
            }
            Writer::Cluster { follower, .. } => {
                let follower = lock(follower).take();
                if let Some(follower) = follower {
                    follower.abort();
                    let _ = follower.await;
                }
            }
        }
        self.shared.registry.apply();
        self.shared.registry.for_each(|sub| sub.end(End::Shutdown));
        self.running.sweeper.abort();
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

    /// How many subscriptions are open.
    pub fn subscription_count(&self) -> usize {
        self.shared.registry.len()
    }

    /// The retained range of history.
    pub async fn bounds(&self) -> Result<Bounds, StoreError> {
        self.shared.history.call(|s| s.bounds()).await
    }
}
