//! What the hub's parts share: the configuration, the history, the
//! registry of subscribers, the clock and the counters, and the few
//! operations more than one part needs (the fan-out, resolving where a
//! subscription starts).
//!
//! It sits below every part that holds it (the [`Hub`](crate::Hub) handle,
//! the sequencer, the follower, the sweeper, subscriptions) and above the
//! leaves it is made of; it imports none of the parts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::HubConfig;
use crate::error::SubscribeError;
use crate::event::Event;
use crate::history::History;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::replay::{self, Lookup};
use crate::retained::Retained;
use crate::store::{Bounds, Store, StoreError};
use crate::subscriber::{Offer, Subscriber};

/// What the hub's parts share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// How subscribers are treated.
    pub(crate) config: HubConfig,
    /// The history, and the one way to call it.
    pub(crate) history: History,
    /// Who is subscribed to what.
    pub(crate) registry: Registry,
    /// The retained update of each topic, and the newest event held: what
    /// a subscription that does not resume starts with.
    pub(crate) retained: Retained,
    /// Seconds since start, for timeouts.
    pub(crate) clock: Clock,
    /// Counters.
    pub(crate) metrics: Metrics,
    /// Set once shutdown began: no new publishes or subscriptions.
    shutting_down: AtomicBool,
    /// The frames every stream opens with: a comment, so that proxies and
    /// clients see the response start at once, and the `retry` time.
    pub(crate) opening: Bytes,
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
    pub(crate) fn new(
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
        let retained = Retained::new(config.retained_topics);
        Arc::new(Self {
            config,
            history: History::new(store),
            registry: Registry::default(),
            retained,
            clock: Clock::new(),
            metrics: Metrics::new(),
            shutting_down: AtomicBool::new(false),
            opening: opening.freeze(),
            offered: watch::Sender::new(0),
            cluster,
        })
    }

    /// Whether shutdown began.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Begins shutdown; returns whether it had begun already.
    pub(crate) fn begin_shutdown(&self) -> bool {
        self.shutting_down.swap(true, Ordering::SeqCst)
    }

    /// Adds `sub` to the registry unless the hub is shutting down. Never
    /// waits for a fan-out.
    pub(crate) fn subscribe(&self, sub: &Arc<Subscriber>) -> Result<(), SubscribeError> {
        self.registry.join(sub);
        self.metrics.subscriptions.increment(1.0);
        // Checked after joining: shutdown sets the flag, then ends every
        // subscriber that joined, so either it ends this one or this one
        // sees the flag.
        if self.is_shutting_down() {
            self.unsubscribe(sub);
            return Err(SubscribeError::ShuttingDown);
        }
        Ok(())
    }

    /// Removes `sub` from the registry. Never waits for a fan-out.
    pub(crate) fn unsubscribe(&self, sub: &Arc<Subscriber>) {
        self.registry.leave(sub);
        self.metrics.subscriptions.decrement(1.0);
    }

    /// Offers newly stored `events` (in order) to the subscribers that match
    /// them, and adds to `to_flush` each whose queue was empty: the fan-out
    /// [flushes](Subscriber::flush) those next (written straight to the
    /// connection when it takes them, else the task is woken). `received`
    /// says when the hub got each event, for the latency metric. Never
    /// blocks on a subscriber.
    pub(crate) fn offer(
        &self,
        events: &[Arc<Event>],
        received: &[Instant],
        to_flush: &mut VecDeque<Arc<Subscriber>>,
    ) {
        let now = self.clock.now();
        let mut lagged = 0u64;
        {
            let index = self.registry.applied();
            for (i, event) in events.iter().enumerate() {
                let received = received.get(i).copied().unwrap_or_else(Instant::now);
                index.for_each_match(event, |sub| match sub.offer(event, received, now) {
                    Offer::Queued { first: true } => to_flush.push_back(Arc::clone(sub)),
                    Offer::Lagged => lagged += 1,
                    Offer::Queued { first: false } | Offer::Skipped => {}
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

    /// Where a subscription that asked for `requested` starts.
    pub(crate) async fn resolve(
        &self,
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
                    let found = self.history.call(move |s| s.find_id(&owned)).await?;
                    match found {
                        Some(event) => Some(Lookup::Found(event.seq)),
                        None => Some(self.find_in_cluster(id).await),
                    }
                }
            },
        };
        let bounds: Bounds = self.history.call(|s| s.bounds()).await?;
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

    /// Drops the history the retention policy no longer keeps. Not during
    /// an outage of the store: it cannot write, and the recovery part is
    /// bringing it back.
    pub(crate) async fn enforce_retention(&self) -> Result<u64, StoreError> {
        if self.history.outage().is_some() {
            return Ok(0);
        }
        let now_ms = crate::clock::unix_ms();
        self.history
            .call(move |s| s.enforce_retention(now_ms))
            .await
    }
}
