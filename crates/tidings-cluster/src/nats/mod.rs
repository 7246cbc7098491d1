//! The NATS JetStream engine: the log is one stream over the subjects
//! `PREFIX.>`; an entry's place is `base + stream sequence`, where `base`
//! is the stream's creation time in microseconds. Places therefore start
//! from the clock like a single hub's, are the same on every hub, and keep
//! growing if the stream is deleted and created again.
//!
//! Each message's payload is the update ([`payload`](crate::payload)); the
//! header `Tidings-Time` says when the publishing hub accepted it (Unix ms).
//! Publisher ids live in the subject ([`subject`]): JetStream's per-subject
//! index finds an id's entry, and an expected last subject sequence of 0
//! makes the first entry of an id the only one, atomically. Unlike a
//! separate id index (a KV bucket), that cannot disagree with the stream
//! and is trimmed with it.
//!
//! Retained updates live in a key-value bucket beside the stream
//! ([`retained`]), written after the log acknowledged them.
//!
//! Server 2.9 has no atomic multi-message publish: a publish of several
//! updates is checked as a whole first (a conflict refuses it entirely),
//! then appended message by message; an engine failure half-way, or a race
//! with another hub publishing the same id, can leave the first part
//! appended. A retry with the same publisher ids completes it without
//! duplicates.

mod follow;
mod retained;
mod roster;
mod subject;

pub use roster::NatsRoster;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, DiscardPolicy, LastRawMessageErrorKind, StorageType};
use async_nats::jetstream::{self, Context, ContextBuilder, ErrorCode};
use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tidings_core::{
    Bounds, Cluster, ClusterError, Entry, EventId, PublishError, Published, Retain,
    RetainedEntries, Retention, Update,
};
use tokio::sync::watch;

use crate::ConnectError;
use crate::payload;

/// The header that carries an entry's time.
const TIME_HEADER: &str = "Tidings-Time";

/// How long connecting, and each request or publish acknowledgement, may
/// take: a publish fails fast instead of hanging on an absent server.
const TIMEOUT: Duration = Duration::from_secs(2);

/// JetStream's default de-duplication window; it may not exceed the
/// stream's age limit.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A cluster log on a JetStream stream.
#[derive(Debug)]
pub struct NatsCluster {
    /// The connection (it reconnects by itself).
    client: async_nats::Client,
    /// JetStream requests and publishes.
    js: Context,
    /// The stream's handle.
    stream: jetstream::stream::Stream,
    /// The stream's name.
    name: String,
    /// The subjects' prefix.
    prefix: String,
    /// Place = `base` + stream sequence.
    base: u64,
    /// Counts the client's connections: followers start over after a
    /// reconnection.
    connections: watch::Receiver<u64>,
    /// The bucket of retained updates.
    retained: retained::Bucket,
}

/// What an update of a publish came to.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Appended (or already held) at this place.
    At {
        /// The place.
        seq: u64,
        /// Already held: not appended again.
        duplicate: bool,
    },
    /// The same as the earlier update at this index of the publish.
    Same(usize),
}

impl NatsCluster {
    /// Connects to the NATS server at `url` (failing if it cannot be
    /// reached), and creates the stream `name` over `prefix.>` if it does
    /// not exist, or sets its limits to `retention` if they differ. Needs
    /// JetStream (`nats-server -js`) 2.9 or later, and a Tokio runtime.
    pub async fn connect(
        url: &str,
        name: &str,
        prefix: &str,
        retention: Retention,
    ) -> Result<Self, ConnectError> {
        let unreachable = |message: String| ConnectError::Unreachable {
            engine: "NATS",
            message,
        };
        let (connected, connections) = watch::channel(0u64);
        let client = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                if matches!(event, async_nats::Event::Connected) {
                    connected.send_modify(|n| *n += 1);
                }
                std::future::ready(())
            })
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                let attempts = u32::try_from(attempts.min(5)).unwrap_or(5);
                Duration::from_millis(50 * 2u64.pow(attempts)).min(Duration::from_secs(1))
            })
            .connect(url)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let js = ContextBuilder::new().timeout(TIMEOUT).build(client.clone());
        let config = stream_config(name, prefix, retention);
        let mut stream = js
            .get_or_create_stream(config.clone())
            .await
            .map_err(|e| unreachable(format!("cannot open the stream {name}: {e}")))?;
        let info = stream
            .info()
            .await
            .map_err(|e| unreachable(format!("cannot read the stream {name}: {e}")))?
            .clone();
        let current = &info.config;
        if current.subjects != config.subjects {
            return Err(ConnectError::Setup(format!(
                "the stream {name} exists with the subjects {:?}, not {:?}",
                current.subjects, config.subjects
            )));
        }
        let limits = |c: &Config| (c.max_messages, c.max_age, c.max_bytes, c.duplicate_window);
        if limits(current) != limits(&config) {
            tracing::info!(
                stream = name,
                "setting the stream's limits to this hub's --history-* flags"
            );
            let mut updated = current.clone();
            updated.max_messages = config.max_messages;
            updated.max_age = config.max_age;
            updated.max_bytes = config.max_bytes;
            updated.duplicate_window = config.duplicate_window;
            js.update_stream(updated)
                .await
                .map_err(|e| ConnectError::Setup(format!("cannot set the stream's limits: {e}")))?;
        }
        let retained = retained::open(&js, name).await?;
        let created_us = info.created.unix_timestamp_nanos() / 1000;
        let base = u64::try_from(created_us).map_err(|_| {
            ConnectError::Setup(format!("bad stream creation time {}", info.created))
        })?;
        Ok(Self {
            client,
            js,
            stream,
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            base,
            connections,
            retained,
        })
    }

    /// Fails fast when the connection is down: the client would otherwise
    /// queue the publish and send it after reconnecting, long after the
    /// publisher was told it failed.
    fn connected(&self) -> Result<(), PublishError> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            state => Err(PublishError::Unavailable(format!("NATS: {state:?}"))),
        }
    }

    /// The place and payload of the entry of publisher id `id`.
    async fn stored(&self, id: &str) -> Result<Option<(u64, Bytes)>, ClusterError> {
        let subject = subject::of_id(&self.prefix, id);
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(Some((self.base + message.sequence, message.payload))),
            Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(err) => Err(ClusterError(format!("NATS: {err}"))),
        }
    }

    /// What the entry of `id` makes of an update with `payload`: a retry
    /// (its place), a conflict, or nothing (no entry).
    async fn check_id(&self, id: &str, payload: &[u8]) -> Result<Option<u64>, PublishError> {
        match self.stored(id).await {
            Ok(Some((seq, stored))) if stored == payload => Ok(Some(seq)),
            Ok(Some(_)) => Err(PublishError::Conflict { id: id.to_owned() }),
            Ok(None) => Ok(None),
            Err(err) => Err(PublishError::Unavailable(err.0)),
        }
    }

    async fn append_now(
        &self,
        updates: &[Update],
        time_ms: u64,
    ) -> Result<Vec<Published>, PublishError> {
        self.connected()?;
        let payloads: Vec<Bytes> = updates
            .iter()
            .map(|u| Bytes::from(payload::encode(u)))
            .collect();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; updates.len()];
        // Checked as a whole first: a conflict refuses the publish before
        // anything is appended.
        let mut fresh: HashMap<&str, usize> = HashMap::new();
        for (index, (update, payload)) in updates.iter().zip(&payloads).enumerate() {
            let Some(id) = update.id.as_deref() else {
                continue;
            };
            if let Some(&earlier) = fresh.get(id) {
                if payloads.get(earlier) != Some(payload) {
                    return Err(PublishError::Conflict { id: id.to_owned() });
                }
                set(&mut outcomes, index, Outcome::Same(earlier));
            } else if let Some(seq) = self.check_id(id, payload).await? {
                let duplicate = true;
                set(&mut outcomes, index, Outcome::At { seq, duplicate });
            } else {
                fresh.insert(id, index);
            }
        }
        // Sent in order on one connection, so appended in order.
        let time = time_ms.to_string();
        let mut acks = Vec::new();
        for (index, (update, payload)) in updates.iter().zip(&payloads).enumerate() {
            if outcomes.get(index).is_some_and(Option::is_some) {
                continue;
            }
            let mut publish = PublishMessage::build()
                .payload(payload.clone())
                .header(TIME_HEADER, time.as_str())
                .expected_stream(&self.name);
            let subject = match &update.id {
                Some(id) => {
                    publish = publish.expected_last_subject_sequence(0);
                    subject::of_id(&self.prefix, id)
                }
                None => subject::anonymous(&self.prefix),
            };
            let ack = self
                .js
                .send_publish(subject, publish)
                .await
                .map_err(|e| PublishError::Unavailable(format!("NATS: {e}")))?;
            acks.push((index, ack));
        }
        for (index, ack) in acks {
            let outcome = match ack.await {
                Ok(ack) => Outcome::At {
                    seq: self.base + ack.sequence,
                    duplicate: false,
                },
                // Another hub appended the same id between the check and
                // this publish.
                Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => {
                    let (Some(id), Some(payload)) = (
                        updates.get(index).and_then(|u| u.id.as_deref()),
                        payloads.get(index),
                    ) else {
                        return Err(PublishError::Unavailable(format!("NATS: {err}")));
                    };
                    let seq = self.check_id(id, payload).await?.ok_or_else(|| {
                        PublishError::Unavailable(format!("NATS: {err}, yet no entry for {id:?}"))
                    })?;
                    Outcome::At {
                        seq,
                        duplicate: true,
                    }
                }
                Err(err) => return Err(publish_error(&err)),
            };
            set(&mut outcomes, index, outcome);
        }
        let published = published(updates, &outcomes)?;
        // Retained ones into the bucket, in order; retries too, so that a
        // retry completes what a failure here left undone.
        for ((update, payload), at) in updates.iter().zip(&payloads).zip(&published) {
            let kept = match Retain::of(update) {
                Retain::No => continue,
                Retain::Keep => Some(&payload[..]),
                Retain::Clear => None,
            };
            for topic in &update.topics {
                retained::keep(&self.retained, topic, at.seq, time_ms, kept).await?;
            }
        }
        Ok(published)
    }
}

/// A publish JetStream refused: out of room (the stream at a limit with
/// discard-new, the server or the account out of storage) is a full
/// engine; anything else, an engine that cannot be used now.
fn publish_error(err: &async_nats::jetstream::context::PublishError) -> PublishError {
    let message = format!("NATS: {err}");
    let code = std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .map(jetstream::Error::error_code);
    let full = match code {
        Some(
            ErrorCode::INSUFFICIENT_RESOURCES
            | ErrorCode::STORAGE_RESOURCES_EXCEEDED
            | ErrorCode::ACCOUNT_RESOURCES_EXCEEDED,
        ) => true,
        // "maximum bytes exceeded", "maximum messages exceeded": a stream
        // limit reached with discard-new.
        Some(ErrorCode::STREAM_STORE_FAILED) => {
            message.contains("maximum") && message.contains("exceeded")
        }
        _ => false,
    };
    if full {
        PublishError::EngineFull(message)
    } else {
        PublishError::Unavailable(message)
    }
}

fn set(outcomes: &mut [Option<Outcome>], index: usize, outcome: Outcome) {
    if let Some(slot) = outcomes.get_mut(index) {
        *slot = Some(outcome);
    }
}

/// The publish's result from each update's outcome.
fn published(
    updates: &[Update],
    outcomes: &[Option<Outcome>],
) -> Result<Vec<Published>, PublishError> {
    let missing = || PublishError::Unavailable("NATS: an update got no place".to_owned());
    updates
        .iter()
        .zip(outcomes)
        .map(|(update, outcome)| {
            let (seq, duplicate) = match outcome.ok_or_else(missing)? {
                Outcome::At { seq, duplicate } => (seq, duplicate),
                Outcome::Same(earlier) => match outcomes.get(earlier).copied().flatten() {
                    Some(Outcome::At { seq, .. }) => (seq, true),
                    _ => return Err(missing()),
                },
            };
            Ok(Published {
                id: update.id.clone().unwrap_or_else(|| EventId::format(seq)),
                seq,
                duplicate,
            })
        })
        .collect()
}

/// The stream as this hub wants it.
fn stream_config(name: &str, prefix: &str, retention: Retention) -> Config {
    let limit = |v: Option<u64>| v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
    let max_age = retention.max_age.unwrap_or(Duration::ZERO);
    Config {
        name: name.to_owned(),
        subjects: vec![format!("{prefix}.>")],
        max_messages: limit(retention.max_events),
        max_bytes: limit(retention.max_bytes),
        max_age,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        num_replicas: 1,
        duplicate_window: if max_age.is_zero() {
            DUPLICATE_WINDOW
        } else {
            DUPLICATE_WINDOW.min(max_age)
        },
        ..Config::default()
    }
}

impl Cluster for NatsCluster {
    fn append<'a>(
        &'a self,
        updates: &'a [Update],
        time_ms: u64,
    ) -> BoxFuture<'a, Result<Vec<Published>, PublishError>> {
        self.append_now(updates, time_ms).boxed()
    }

    fn follow(&self, after: u64) -> BoxStream<'static, Result<Entry, ClusterError>> {
        follow::stream(
            self.client.clone(),
            self.stream.clone(),
            self.base,
            after,
            self.connections.clone(),
        )
    }

    fn find_id<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<u64>, ClusterError>> {
        async move { Ok(self.stored(id).await?.map(|(seq, _)| seq)) }.boxed()
    }

    fn retained(&self) -> BoxFuture<'_, Result<RetainedEntries, ClusterError>> {
        retained::load(&self.retained, &self.client).boxed()
    }

    fn bounds(&self) -> BoxFuture<'_, Result<Bounds, ClusterError>> {
        async move {
            let info = self
                .stream
                .get_info()
                .await
                .map_err(|e| ClusterError(format!("NATS: {e}")))?;
            let state = info.state;
            let next = self.base + state.last_sequence + 1;
            let first = if state.messages == 0 {
                next
            } else {
                self.base + state.first_sequence
            };
            Ok(Bounds { first, next })
        }
        .boxed()
    }
}
