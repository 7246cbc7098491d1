//! Active subscriptions, as the Mercure protocol's "Active Subscriptions"
//! section (draft-dunglas-mercure-07) describes them: who is subscribed to
//! what, as a list, and as subscription events.
//!
//! Each subscriber connection gets an id `urn:uuid:<v4>`. For each of its
//! topic selectors the hub publishes a private update on
//! `/.well-known/mercure/subscriptions/{topic}/{subscriber}` (both values
//! percent-encoded as RFC 6570 simple expansion does) when it connects, and
//! again with `"active": false` when it leaves. These are ordinary updates:
//! they go through [`Hub::publish`](crate::Hub::publish), so they get ids,
//! are kept in history, reach every hub of a cluster and only the
//! subscribers whose token covers their topic.
//!
//! The list is kept in memory on a single hub, and in the cluster engine
//! (behind [`Roster`]) in cluster mode, each hub's records under a lease;
//! the subscriptions of a hub whose lease lapses are reported inactive by
//! one surviving hub.
//!
//! Order is what makes "fetch the list, then subscribe from its
//! `lastEventID`" lose nothing: a subscription enters the list before its
//! active event is published and leaves it before its inactive event is;
//! the list is read after the newest event id. Joining and leaving only
//! record the change and queue it (a mutex held for a map insert): the
//! writes to the engine and the publishes are done by one task, in order,
//! many changes at a time.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tidings_selector::Selector;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::ClusterError;
use crate::error::PublishError;
use crate::event::{Published, Update};
use crate::roster::{Lease, Roster, RosterChange};
use crate::store::StoreError;

/// Where the subscriptions API and the subscription events live.
pub const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// The JSON-LD context of subscription documents.
pub const JSONLD_CONTEXT: &str = "https://mercure.rocks/";

/// Changes one round of the task takes at most.
const MAX_ROUND: usize = 1024;

/// Dead hubs cleaned up per tick at most.
const MAX_REAPS: usize = 16;

/// How a hub tracks active subscriptions.
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// Where the hubs of a cluster keep their subscriptions, each hub's
    /// under a lease; `None`: a single hub, the list in memory.
    pub roster: Option<Arc<dyn Roster>>,
    /// How soon the subscriptions of a hub that died without a goodbye are
    /// reported inactive (and leave every hub's list).
    pub node_ttl: Duration,
}

impl PresenceConfig {
    /// How long a lease lasts: half the TTL, so that a lapse is noticed
    /// (within a renewal period) and reported well within the TTL.
    pub fn lease(&self) -> Duration {
        self.node_ttl / 2
    }

    /// How often a hub renews its lease and looks for dead hubs: three
    /// times per lease.
    pub fn renew_every(&self) -> Duration {
        (self.node_ttl / 6).max(Duration::from_millis(100))
    }
}

/// One active subscription: one topic selector of one subscriber
/// connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveSubscription {
    /// `/.well-known/mercure/subscriptions/{topic}/{subscriber}`, expanded:
    /// its JSON-LD id, and the topic of its events.
    pub id: String,
    /// The topic selector.
    pub topic: String,
    /// The connection's id, `urn:uuid:…`.
    pub subscriber: String,
    /// The `mercure.payload` of the subscriber's token.
    pub payload: Option<Arc<serde_json::Value>>,
}

impl ActiveSubscription {
    /// The subscription of `subscriber` to `topic`.
    pub fn new(topic: &str, subscriber: &str, payload: Option<Arc<serde_json::Value>>) -> Self {
        Self {
            id: format!(
                "{SUBSCRIPTIONS_PATH}/{}/{}",
                expand(topic),
                expand(subscriber)
            ),
            topic: topic.to_owned(),
            subscriber: subscriber.to_owned(),
            payload,
        }
    }

    /// The JSON-LD document of a subscription event (`@context` first,
    /// then `id`, `type`, `topic`, `subscriber`, `active`, `payload`).
    pub fn event_data(&self, active: bool) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"@context\":");
        push_json(&mut out, JSONLD_CONTEXT);
        out.push_str(",\"id\":");
        push_json(&mut out, &self.id);
        out.push_str(",\"type\":\"Subscription\",\"topic\":");
        push_json(&mut out, &self.topic);
        out.push_str(",\"subscriber\":");
        push_json(&mut out, &self.subscriber);
        out.push_str(if active {
            ",\"active\":true"
        } else {
            ",\"active\":false"
        });
        if let Some(payload) = &self.payload {
            out.push_str(",\"payload\":");
            out.push_str(&payload.to_string());
        }
        out.push('}');
        out
    }

    /// Its subscription event: a private update on its id.
    pub fn update(&self, active: bool) -> Update {
        Update {
            topics: vec![self.id.clone()],
            data: self.event_data(active),
            private: true,
            ..Update::default()
        }
    }

    /// The record kept in a [`Roster`].
    fn record(&self) -> String {
        let mut record = serde_json::json!({
            "topic": self.topic,
            "subscriber": self.subscriber,
        });
        if let (Some(payload), Some(object)) = (&self.payload, record.as_object_mut()) {
            object.insert("payload".to_owned(), (**payload).clone());
        }
        record.to_string()
    }

    /// A subscription from its [`Roster`] record.
    fn from_record(record: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(record).ok()?;
        let topic = value.get("topic")?.as_str()?;
        let subscriber = value.get("subscriber")?.as_str()?;
        let payload = value.get("payload").cloned().map(Arc::new);
        Some(Self::new(topic, subscriber, payload))
    }
}

fn push_json(out: &mut String, text: &str) {
    // Serializing a string cannot fail.
    out.push_str(&serde_json::Value::from(text).to_string());
}

/// RFC 6570 simple string expansion of one value: every byte of its UTF-8
/// but the unreserved characters (`A-Z a-z 0-9 - . _ ~`) percent-encoded,
/// reserved ones (`:` `/` `{` `}` `?` `#` …) and `%` included.
pub fn expand(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// What the subscriptions API shows at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionList {
    /// The id of the newest event the hub had when the list was taken;
    /// `None`: no event (the API says `earliest`). Subscribing from it
    /// after reading the list misses no subscription event.
    pub last_event_id: Option<String>,
    /// Every active subscription (of every hub, in cluster mode).
    pub subscriptions: Vec<ActiveSubscription>,
}

/// Why the list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The history failed while finding the newest event.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cluster engine cannot be reached.
    #[error("the cluster engine is unavailable: {0}")]
    Engine(#[from] ClusterError),
}

/// A `urn:uuid:` with a random (version 4) UUID.
fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: still unique within this process and
        // across restarts, which is what an id needs.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let low = n ^ (u64::from(std::process::id()) << 32);
        bytes = ((u128::from(crate::clock::unix_us()) << 64) | u128::from(low)).to_be_bytes();
    }
    let mut uuid = u128::from_be_bytes(bytes);
    // Version 4, variant RFC 4122.
    uuid = (uuid & !(0xF << 76)) | (0x4 << 76);
    uuid = (uuid & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{uuid:032x}");
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        hex.get(0..8).unwrap_or_default(),
        hex.get(8..12).unwrap_or_default(),
        hex.get(12..16).unwrap_or_default(),
        hex.get(16..20).unwrap_or_default(),
        hex.get(20..32).unwrap_or_default()
    )
}

/// A hub's name in the roster: a fresh UUID's 32 hex digits.
fn new_node() -> String {
    new_uuid().trim_start_matches("urn:uuid:").replace('-', "")
}

/// The roster key of selector `index` of `subscriber`.
fn record_key(subscriber: &str, index: usize) -> String {
    format!("{}-{index}", subscriber.trim_start_matches("urn:uuid:"))
}

/// One subscriber connection.
#[derive(Debug)]
struct Seated {
    /// Its id (changed only when the hub rejoins the roster).
    subscriber: String,
    /// Its distinct topic selectors.
    topics: Box<[Box<str>]>,
    /// Its token's `mercure.payload`.
    payload: Option<Arc<serde_json::Value>>,
}

impl Seated {
    /// Its subscriptions, with their roster keys.
    fn subscriptions(&self) -> Vec<(String, ActiveSubscription)> {
        self.topics
            .iter()
            .enumerate()
            .map(|(i, topic)| {
                (
                    record_key(&self.subscriber, i),
                    ActiveSubscription::new(topic, &self.subscriber, self.payload.clone()),
                )
            })
            .collect()
    }
}

/// This hub's subscribers.
#[derive(Debug)]
struct Local {
    /// Taking joins: false once the hub said goodbye.
    open: bool,
    /// The next seat key.
    next: u64,
    /// The connections, by seat key.
    seats: HashMap<u64, Seated>,
    /// This hub's name in the roster (changes when it rejoins).
    node: String,
}

/// What the task is asked to do, in order.
enum Change {
    /// Subscriptions began.
    Join(Vec<(String, ActiveSubscription)>),
    /// Subscriptions ended.
    Leave(Vec<(String, ActiveSubscription)>),
    /// Report every subscription inactive and leave the roster; then say
    /// so.
    Goodbye(oneshot::Sender<()>),
}

/// How the task publishes: [`Hub::publish`](crate::Hub::publish), through a
/// handle that does not keep the hub alive.
pub(crate) type Publish = Arc<
    dyn Fn(Vec<Update>) -> BoxFuture<'static, Result<Vec<Published>, PublishError>> + Send + Sync,
>;

/// A hub's active subscriptions.
pub(crate) struct Presence {
    /// This hub's subscribers.
    local: Mutex<Local>,
    /// The task's queue (unbounded: joining and leaving never wait).
    changes: mpsc::UnboundedSender<Change>,
    /// The cluster-wide records, in cluster mode.
    roster: Option<Arc<dyn Roster>>,
}

impl fmt::Debug for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presence")
            .field("roster", &self.roster)
            .finish_non_exhaustive()
    }
}

/// A subscriber connection's place in the list; dropping it (with its
/// [`Subscription`](crate::Subscription)) reports its subscriptions
/// inactive.
#[derive(Debug)]
pub(crate) struct Seat {
    /// The list it is in.
    presence: Weak<Presence>,
    /// Its key there.
    key: u64,
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(presence) = self.presence.upgrade() {
            presence.leave(self.key);
        }
    }
}

impl Presence {
    /// Starts tracking, with the task that writes and publishes (on the
    /// current Tokio runtime).
    pub(crate) fn start(config: &PresenceConfig, publish: Publish) -> Arc<Self> {
        let (changes, rx) = mpsc::unbounded_channel();
        let presence = Arc::new(Self {
            local: Mutex::new(Local {
                open: true,
                next: 0,
                seats: HashMap::new(),
                node: new_node(),
            }),
            changes,
            roster: config.roster.clone(),
        });
        let task = Task {
            presence: Arc::downgrade(&presence),
            roster: config.roster.clone(),
            renew_every: config.renew_every(),
            publish,
        };
        // The task ends when the queue closes, that is when the hub's last
        // handle (and so this) is gone.
        tokio::spawn(task.run(rx));
        presence
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new subscriber connection with `selectors` and queues its
    /// active events; `None` once the hub said goodbye.
    pub(crate) fn join(
        self: &Arc<Self>,
        selectors: &[Selector],
        payload: Option<Arc<serde_json::Value>>,
    ) -> Option<Seat> {
        let mut topics: Vec<Box<str>> = Vec::with_capacity(selectors.len());
        for selector in selectors {
            if !topics.iter().any(|t| &**t == selector.as_str()) {
                topics.push(selector.as_str().into());
            }
        }
        let seated = Seated {
            subscriber: new_uuid(),
            topics: topics.into_boxed_slice(),
            payload,
        };
        let mut local = self.local();
        if !local.open {
            return None;
        }
        local.next += 1;
        let key = local.next;
        // Sent under the lock: the queue's order is the list's.
        let _ = self.changes.send(Change::Join(seated.subscriptions()));
        local.seats.insert(key, seated);
        Some(Seat {
            presence: Arc::downgrade(self),
            key,
        })
    }

    /// A connection left: out of the list, and its inactive events queued.
    fn leave(&self, key: u64) {
        let mut local = self.local();
        if let Some(seated) = local.seats.remove(&key) {
            let _ = self.changes.send(Change::Leave(seated.subscriptions()));
        }
    }

    /// This hub's subscriptions.
    fn local_list(&self) -> Vec<ActiveSubscription> {
        self.local()
            .seats
            .values()
            .flat_map(|s| s.subscriptions().into_iter().map(|(_, sub)| sub))
            .collect()
    }

    /// Every active subscription: this hub's, or in cluster mode every
    /// live hub's. Read it after the newest event id (see the module
    /// docs).
    pub(crate) async fn list(&self) -> Result<Vec<ActiveSubscription>, ClusterError> {
        match &self.roster {
            None => Ok(self.local_list()),
            Some(roster) => Ok(roster
                .list()
                .await?
                .iter()
                .filter_map(|r| ActiveSubscription::from_record(r))
                .collect()),
        }
    }

    /// Reports every subscription of this hub inactive (and leaves the
    /// roster) after what is queued, waiting up to `wait`; later joins are
    /// refused and later leaves ignored.
    pub(crate) async fn goodbye(&self, wait: Duration) {
        let (done, finished) = oneshot::channel();
        {
            let _local = self.local();
            if self.changes.send(Change::Goodbye(done)).is_err() {
                return;
            }
        }
        if tokio::time::timeout(wait, finished).await.is_err() {
            tracing::warn!("active subscriptions: the goodbye did not finish in time");
        }
    }
}

/// The task that writes the roster and publishes subscription events.
struct Task {
    /// The list (not kept alive by the task).
    presence: Weak<Presence>,
    /// The cluster-wide records, in cluster mode.
    roster: Option<Arc<dyn Roster>>,
    /// How often the lease is renewed and dead hubs looked for.
    renew_every: Duration,
    /// How updates are published.
    publish: Publish,
}

/// What a failed step means for the task.
enum Stop {
    /// The hub is shutting down, or gone.
    Hub,
}

impl Task {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Change>) {
        let mut node = match self.presence.upgrade() {
            Some(p) => p.local().node.clone(),
            None => return,
        };
        if let Some(roster) = &self.roster {
            let mut wait = Duration::from_millis(50);
            while let Err(err) = roster.join(&node).await {
                tracing::warn!(error = %err, "active subscriptions: cannot join the roster; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            tracing::info!(node, "active subscriptions: joined the cluster roster");
        }
        let mut tick = tokio::time::interval(self.renew_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = rx.recv() => {
                    let Some(first) = change else { return };
                    let mut round = vec![first];
                    while round.len() < MAX_ROUND {
                        match rx.try_recv() {
                            Ok(change) => round.push(change),
                            Err(_) => break,
                        }
                    }
                    match self.round(&mut node, round, &mut rx).await {
                        Ok(true) => {}
                        Ok(false) | Err(Stop::Hub) => return,
                    }
                }
                _ = tick.tick(), if self.roster.is_some() => {
                    if self.keep(&mut node, &mut rx).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Handles changes in order, joins and leaves between two goodbyes in
    /// one roster write and one publish. `Ok(false)`: the hub said goodbye.
    async fn round(
        &self,
        node: &mut String,
        round: Vec<Change>,
        rx: &mut mpsc::UnboundedReceiver<Change>,
    ) -> Result<bool, Stop> {
        let mut writes = Vec::new();
        let mut updates = Vec::new();
        for change in round {
            match change {
                Change::Join(subs) => {
                    for (key, sub) in subs {
                        updates.push(sub.update(true));
                        writes.push(RosterChange::Put {
                            key,
                            record: sub.record(),
                        });
                    }
                }
                Change::Leave(subs) => {
                    for (key, sub) in subs {
                        updates.push(sub.update(false));
                        writes.push(RosterChange::Remove { key });
                    }
                }
                Change::Goodbye(done) => {
                    self.flush(node, &mut writes, &mut updates, rx).await?;
                    self.farewell(node).await;
                    let _ = done.send(());
                    return Ok(false);
                }
            }
        }
        self.flush(node, &mut writes, &mut updates, rx).await?;
        Ok(true)
    }

    /// Writes then publishes what a round gathered.
    async fn flush(
        &self,
        node: &mut String,
        writes: &mut Vec<RosterChange>,
        updates: &mut Vec<Update>,
        rx: &mut mpsc::UnboundedReceiver<Change>,
    ) -> Result<(), Stop> {
        if updates.is_empty() {
            return Ok(());
        }
        if let Some(roster) = &self.roster {
            let mut wait = Duration::from_millis(50);
            loop {
                match roster.write(node, writes).await {
                    Ok(Lease::Held) => break,
                    Ok(Lease::Lost) => {
                        // What was gathered belongs to the lost name: the
                        // rejoin announces every subscription afresh.
                        writes.clear();
                        updates.clear();
                        return self.rejoin(node, rx).await;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "active subscriptions: cannot write the roster; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
        writes.clear();
        self.publish(std::mem::take(updates)).await
    }

    /// Publishes `updates` as one unit, retrying while the history or the
    /// engine fails.
    async fn publish(&self, updates: Vec<Update>) -> Result<(), Stop> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut wait = Duration::from_millis(50);
        loop {
            match (self.publish)(updates.clone()).await {
                Ok(_) => return Ok(()),
                Err(PublishError::ShuttingDown) => return Err(Stop::Hub),
                Err(err @ (PublishError::Invalid { .. } | PublishError::Conflict { .. })) => {
                    tracing::error!(error = %err, "active subscriptions: a subscription event was refused");
                    return Ok(());
                }
                Err(err) => {
                    tracing::warn!(error = %err, "active subscriptions: cannot publish subscription events; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Renews the lease; cleans up after dead hubs.
    async fn keep(
        &self,
        node: &mut String,
        rx: &mut mpsc::UnboundedReceiver<Change>,
    ) -> Result<(), Stop> {
        let Some(roster) = &self.roster else {
            return Ok(());
        };
        match roster.renew(node).await {
            Ok(Lease::Held) => {}
            Ok(Lease::Lost) => self.rejoin(node, rx).await?,
            Err(err) => {
                tracing::warn!(error = %err, "active subscriptions: cannot renew the lease");
                return Ok(());
            }
        }
        for _ in 0..MAX_REAPS {
            let (dead, records) = match roster.claim_dead(node).await {
                Ok(Some(claimed)) => claimed,
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "active subscriptions: cannot look for dead hubs");
                    break;
                }
            };
            let updates: Vec<Update> = records
                .iter()
                .filter_map(|r| ActiveSubscription::from_record(r))
                .map(|sub| sub.update(false))
                .collect();
            tracing::info!(
                hub = dead,
                subscriptions = updates.len(),
                "active subscriptions: a hub stopped renewing its lease; reporting its subscriptions inactive"
            );
            self.publish(updates).await?;
            if let Err(err) = roster.forget(&dead).await {
                tracing::warn!(error = %err, hub = dead, "active subscriptions: cannot forget a dead hub");
            }
        }
        Ok(())
    }

    /// The lease lapsed while this hub lives (it was cut off from the
    /// engine, or stalled): another hub reports, or will report, its
    /// subscriptions inactive. It joins again under a new name, with new
    /// subscriber ids, and announces every subscription afresh, so that
    /// whatever order the two reports arrive in, the list ends right.
    async fn rejoin(
        &self,
        node: &mut String,
        rx: &mut mpsc::UnboundedReceiver<Change>,
    ) -> Result<(), Stop> {
        let Some(roster) = &self.roster else {
            return Ok(());
        };
        let Some(presence) = self.presence.upgrade() else {
            return Err(Stop::Hub);
        };
        let (writes, updates, goodbye) = {
            let mut local = presence.local();
            // What is queued was made under the old name; the fresh
            // announcement below covers it. A goodbye is kept for after.
            let mut goodbye = None;
            while let Ok(change) = rx.try_recv() {
                if let Change::Goodbye(done) = change {
                    goodbye = Some(done);
                }
            }
            local.node = new_node();
            *node = local.node.clone();
            let mut writes = Vec::new();
            let mut updates = Vec::new();
            for seated in local.seats.values_mut() {
                seated.subscriber = new_uuid();
                for (key, sub) in seated.subscriptions() {
                    updates.push(sub.update(true));
                    writes.push(RosterChange::Put {
                        key,
                        record: sub.record(),
                    });
                }
            }
            (writes, updates, goodbye)
        };
        drop(presence);
        tracing::warn!(
            node = %node,
            subscriptions = updates.len(),
            "active subscriptions: this hub's lease lapsed; joining again under a new name"
        );
        let mut wait = Duration::from_millis(50);
        loop {
            let joined = match roster.join(node).await {
                Ok(()) => roster.write(node, &writes).await,
                Err(err) => Err(err),
            };
            match joined {
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "active subscriptions: cannot join the roster again; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        }
        self.publish(updates).await?;
        if let Some(done) = goodbye {
            self.farewell(node).await;
            let _ = done.send(());
            return Err(Stop::Hub);
        }
        Ok(())
    }

    /// Leaves: every subscription out of the roster, then reported
    /// inactive; joins from now on are refused.
    async fn farewell(&self, node: &str) {
        let Some(presence) = self.presence.upgrade() else {
            return;
        };
        let updates: Vec<Update> = {
            let mut local = presence.local();
            local.open = false;
            local
                .seats
                .drain()
                .flat_map(|(_, s)| s.subscriptions())
                .map(|(_, sub)| sub.update(false))
                .collect()
        };
        drop(presence);
        if let Some(roster) = &self.roster
            && let Err(err) = roster.forget(node).await
        {
            tracing::warn!(error = %err, "active subscriptions: cannot leave the roster");
        }
        let _ = self.publish(updates).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn expansion_encodes_everything_but_unreserved() {
        assert_eq!(expand("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(
            expand("https://example.com/{selector}"),
            "https%3A%2F%2Fexample.com%2F%7Bselector%7D"
        );
        assert_eq!(
            expand("urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6"),
            "urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"
        );
        assert_eq!(
            expand("a b%2F?#[]@!$&'()*+,;=é"),
            "a%20b%252F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%C3%A9"
        );
    }

    #[test]
    fn ids_are_random_v4_urns() {
        let a = new_uuid();
        let b = new_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), "urn:uuid:".len() + 36);
        let hex = a.trim_start_matches("urn:uuid:");
        assert_eq!(&hex[14..15], "4");
        assert!(matches!(&hex[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_eq!(new_node().len(), 32);
    }

    #[test]
    fn documents_as_the_spec_shows_them() {
        let sub = ActiveSubscription::new(
            "https://example.com/{selector}",
            "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
            Some(Arc::new(serde_json::json!({"foo": "bar"}))),
        );
        assert_eq!(
            sub.id,
            "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2F%7Bselector%7D/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"
        );
        let data: serde_json::Value = serde_json::from_str(&sub.event_data(true)).unwrap();
        assert_eq!(
            data,
            serde_json::json!({
                "@context": "https://mercure.rocks/",
                "id": sub.id,
                "type": "Subscription",
                "topic": "https://example.com/{selector}",
                "subscriber": "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
                "active": true,
                "payload": {"foo": "bar"},
            })
        );
        assert!(sub.event_data(false).contains("\"active\":false"));
        let update = sub.update(false);
        assert!(update.private);
        assert_eq!(update.topics.as_slice(), std::slice::from_ref(&sub.id));
        assert_eq!(ActiveSubscription::from_record(&sub.record()), Some(sub));
        let bare = ActiveSubscription::new("t\"\n", "urn:uuid:x", None);
        assert!(!bare.event_data(true).contains("payload"));
        assert_eq!(ActiveSubscription::from_record(&bare.record()), Some(bare));
        assert_eq!(ActiveSubscription::from_record("nonsense"), None);
    }
}
