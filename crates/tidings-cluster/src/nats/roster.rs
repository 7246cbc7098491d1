//! Active subscriptions on NATS JetStream ([`Roster`]), in three key-value
//! buckets named after the log's stream:
//!
//! - `<STREAM>_LEASES` (`max_age` = the lease): one key per hub, renewed
//!   with a compare-and-set on its revision, which fails once the key aged
//!   out;
//! - `<STREAM>_CLAIMS` (`max_age` = two leases): who cleans up after a dead
//!   hub, taken with `create` (which fails if the key exists);
//! - `<STREAM>_SUBS`: `<hub>.<record key>` → record. A record that ends is
//!   purged from the bucket's stream (no delete marker is left behind), so
//!   the bucket holds exactly the records of the hubs not yet forgotten.
//!
//! Server 2.9 has no per-key TTL: leases get a bucket of their own, whose
//! `max_age` is the lease.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::push::OrderedConfig;
use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::{Context, ContextBuilder};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use tidings_core::{ClusterError, DeadHub, Lease, Roster, RosterChange};

use crate::ConnectError;

/// How long a request may take.
const TIMEOUT: Duration = Duration::from_secs(2);

fn engine(e: impl std::fmt::Display) -> ClusterError {
    ClusterError(format!("NATS: {e}"))
}

/// Active-subscription records on JetStream key-value buckets.
pub struct NatsRoster {
    /// Requests and publishes.
    js: Context,
    /// The hubs' leases.
    leases: kv::Store,
    /// Claims on dead hubs.
    claims: kv::Store,
    /// The records.
    subs: kv::Store,
    /// The revision of each lease this process renews.
    revisions: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for NatsRoster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsRoster")
            .field("subs", &self.subs.name)
            .finish_non_exhaustive()
    }
}

impl NatsRoster {
    /// Connects to the NATS server at `url` (failing if it cannot be
    /// reached) and opens (or creates) the buckets of `stream`, leases of
    /// `lease`.
    pub async fn connect(url: &str, stream: &str, lease: Duration) -> Result<Self, ConnectError> {
        let unreachable = |message: String| ConnectError::Unreachable {
            engine: "NATS",
            message,
        };
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            .max_reconnects(None)
            .connect(url)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let js = ContextBuilder::new().timeout(TIMEOUT).build(client);
        // The bucket's stream, as a key-value bucket of one revision per
        // key is made (the client's own `create_key_value` first asks for
        // account details in a form server 2.9 does not give).
        let bucket = |name: String, max_age: Duration| stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            discard: DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            storage: StorageType::File,
            num_replicas: 1,
            duplicate_window: if max_age.is_zero() {
                Duration::from_secs(120)
            } else {
                max_age.min(Duration::from_secs(120))
            },
            ..stream::Config::default()
        };
        let open = |config: stream::Config| {
            let js = js.clone();
            async move {
                let name = config.name.trim_start_matches("KV_").to_owned();
                js.get_or_create_stream(config.clone())
                    .await
                    .map_err(|e| unreachable(format!("cannot create the bucket {name}: {e}")))?;
                let store = js
                    .get_key_value(&name)
                    .await
                    .map_err(|e| unreachable(format!("cannot open the bucket {name}: {e}")))?;
                // A bucket made by a hub with another --node-ttl takes this
                // hub's: keep it the same on every hub.
                let mut stream = js
                    .get_stream(format!("KV_{name}"))
                    .await
                    .map_err(|e| unreachable(format!("cannot open the bucket {name}: {e}")))?;
                let info = stream
                    .info()
                    .await
                    .map_err(|e| unreachable(format!("cannot read the bucket {name}: {e}")))?;
                if info.config.max_age != config.max_age {
                    let mut updated = info.config.clone();
                    updated.max_age = config.max_age;
                    updated.duplicate_window = config.duplicate_window;
                    js.update_stream(updated).await.map_err(|e| {
                        ConnectError::Setup(format!("cannot set the bucket {name}'s max_age: {e}"))
                    })?;
                }
                Ok::<_, ConnectError>(store)
            }
        };
        let leases = open(bucket(format!("{stream}_LEASES"), lease)).await?;
        let claims = open(bucket(format!("{stream}_CLAIMS"), lease * 2)).await?;
        let subs = open(bucket(format!("{stream}_SUBS"), Duration::ZERO)).await?;
        Ok(Self {
            js,
            leases,
            claims,
            subs,
            revisions: Mutex::new(HashMap::new()),
        })
    }

    fn revisions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `node`'s lease is held now.
    async fn held(&self, node: &str) -> Result<bool, ClusterError> {
        Ok(self
            .leases
            .entry(node)
            .await
            .map_err(engine)?
            .is_some_and(|e| e.operation == Operation::Put))
    }

    /// Every record, with its hub: the bucket's stream read from the start
    /// (it holds one message per live record).
    async fn records(&self) -> Result<Vec<(String, String)>, ClusterError> {
        let stream = &self.subs.stream;
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_subject: self.js.client().new_inbox(),
                filter_subject: format!("{}>", self.subs.prefix),
                deliver_policy: DeliverPolicy::All,
                replay_policy: ReplayPolicy::Instant,
                ..OrderedConfig::default()
            })
            .await
            .map_err(engine)?;
        let mut out = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await.map_err(engine)?;
        loop {
            // Records purged after the consumer counted them may leave it
            // waiting for nothing: the count is read again then.
            let message =
                match tokio::time::timeout(Duration::from_millis(500), messages.next()).await {
                    Ok(Some(message)) => message.map_err(engine)?,
                    Ok(None) => return Err(engine("the records' consumer ended")),
                    Err(_) => {
                        let info = stream.get_info().await.map_err(engine)?;
                        if info.state.messages == 0 || out.len() as u64 >= info.state.messages {
                            return Ok(out);
                        }
                        continue;
                    }
                };
            let pending = message.info().map_err(engine)?.pending;
            if let Some((node, _key)) = message
                .subject
                .strip_prefix(self.subs.prefix.as_str())
                .and_then(|k| k.split_once('.'))
                && let Ok(record) = std::str::from_utf8(&message.payload)
                && !record.is_empty()
            {
                out.push((node.to_owned(), record.to_owned()));
            }
            if pending == 0 {
                return Ok(out);
            }
        }
    }

    /// The hubs whose lease is held.
    async fn live(&self) -> Result<HashSet<String>, ClusterError> {
        self.leases
            .keys()
            .await
            .map_err(engine)?
            .try_collect::<HashSet<String>>()
            .await
            .map_err(engine)
    }

    /// Purges every message of `subject` from the records' stream.
    async fn purge(&self, subject: String) -> Result<(), ClusterError> {
        self.subs
            .stream
            .purge()
            .filter(subject)
            .await
            .map_err(engine)?;
        Ok(())
    }
}

impl Roster for NatsRoster {
    fn join<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        async move {
            let revision = self
                .leases
                .put(node, Bytes::from_static(b"1"))
                .await
                .map_err(engine)?;
            self.revisions().insert(node.to_owned(), revision);
            Ok(())
        }
        .boxed()
    }

    fn renew<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Lease, ClusterError>> {
        async move {
            let Some(revision) = self.revisions().get(node).copied() else {
                return Ok(Lease::Lost);
            };
            match self
                .leases
                .update(node, Bytes::from_static(b"1"), revision)
                .await
            {
                Ok(revision) => {
                    self.revisions().insert(node.to_owned(), revision);
                    Ok(Lease::Held)
                }
                Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => {
                    self.revisions().remove(node);
                    Ok(Lease::Lost)
                }
                Err(err) => Err(engine(err)),
            }
        }
        .boxed()
    }

    fn write<'a>(
        &'a self,
        node: &'a str,
        changes: &'a [RosterChange],
    ) -> BoxFuture<'a, Result<Lease, ClusterError>> {
        async move {
            if !self.held(node).await? {
                return Ok(Lease::Lost);
            }
            for change in changes {
                match change {
                    RosterChange::Put { key, record } => {
                        self.subs
                            .put(format!("{node}.{key}"), Bytes::from(record.clone()))
                            .await
                            .map_err(engine)?;
                    }
                    RosterChange::Remove { key } => {
                        self.purge(format!("{}{node}.{key}", self.subs.prefix))
                            .await?;
                    }
                }
            }
            Ok(Lease::Held)
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>> {
        async move {
            let live = self.live().await?;
            Ok(self
                .records()
                .await?
                .into_iter()
                .filter(|(node, _)| live.contains(node))
                .map(|(_, record)| record)
                .collect())
        }
        .boxed()
    }

    fn claim_dead<'a>(
        &'a self,
        me: &'a str,
    ) -> BoxFuture<'a, Result<Option<DeadHub>, ClusterError>> {
        async move {
            let records = self.records().await?;
            let live = self.live().await?;
            let mut dead: HashMap<String, Vec<String>> = HashMap::new();
            for (node, record) in records {
                if !live.contains(&node) {
                    dead.entry(node).or_default().push(record);
                }
            }
            for (node, records) in dead {
                match self.claims.create(&node, Bytes::from(me.to_owned())).await {
                    Ok(_) => return Ok(Some((node, records))),
                    Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {}
                    Err(err) => return Err(engine(err)),
                }
            }
            Ok(None)
        }
        .boxed()
    }

    fn forget<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        async move {
            self.purge(format!("{}{node}.>", self.subs.prefix)).await?;
            self.revisions().remove(node);
            self.leases.purge(node).await.map_err(engine)?;
            Ok(())
        }
        .boxed()
    }
}
