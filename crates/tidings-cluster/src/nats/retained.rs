//! Retained updates on NATS: a JetStream key-value bucket beside the log
//! stream (`<stream>_RETAINED`, history 1, file storage, no limits), one
//! key per topic, whose value is the topic's newest retained update and
//! its place in the log.
//!
//! Why a bucket: the log stream's limits (`--history-*`) would drop a
//! retained update with the rest of the history, and a stream applies its
//! limits to all its subjects; a bucket is a stream of its own whose
//! per-subject "last value" is exactly "the retained update of a topic",
//! read back at start with one consumer that delivers the last value of every
//! key (a consumer that delivers the last message per subject). JetStream
//! 2.9 cannot append to two streams in one step, so the hub
//! that appended a retained update writes it into the bucket right after
//! the log acknowledged it, and only if the bucket does not hold a newer
//! place for that topic (compare-and-set on the key's revision): two hubs
//! writing the same topic at once leave the newer. A clear is written as a
//! tombstone that keeps its place, so that a slower, older write cannot
//! bring the update back.
//!
//! Keys: `t.<base64url of the topic>`, or `h.<hex SHA-256>` for topics over
//! [`MAX_INLINE`] bytes; the value names the topic either way.

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::push;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};
use tidings_core::{ClusterError, Entry, PublishError, RetainedEntries};

use crate::ConnectError;
use crate::payload;

/// The longest topic written into a key as is (encoded).
const MAX_INLINE: usize = 512;

/// How many times a write retries when another hub changed the key between
/// reading and writing it.
const RACES: usize = 16;

/// The value stored for a topic.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    /// The encoding's version: readers skip versions they do not know.
    v: u32,
    /// The update's place in the log.
    seq: u64,
    /// When the publishing hub accepted it, in Unix ms.
    time: u64,
    /// The topic (the key may be a digest of it).
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    /// The update ([`payload`]); `None` for a tombstone: the topic's
    /// retained update was cleared at `seq`.
    #[serde(borrow)]
    update: Option<&'a RawValue>,
}

/// The name of the bucket beside the stream `stream`.
pub(crate) fn bucket(stream: &str) -> String {
    format!("{stream}_RETAINED")
}

/// Opens the bucket, creating it if needed. The bucket's stream is made
/// here, as the key-value conventions have it (`KV_<bucket>` over
/// `$KV.<bucket>.>`, one value per key, rollups allowed, direct gets): the
/// client's own bucket creation first reads account information that
/// nats-server 2.9 answers in a form this client does not parse.
pub(crate) async fn open(js: &Context, stream: &str) -> Result<Bucket, ConnectError> {
    let name = bucket(stream);
    let setup = |e: &dyn std::fmt::Display| {
        ConnectError::Setup(format!(
            "cannot open the bucket {name} of retained updates: {e}"
        ))
    };
    let stream = js
        .get_or_create_stream(stream::Config {
            name: format!("KV_{name}"),
            description: Some("Tidings: the retained update of each topic".to_owned()),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            storage: StorageType::File,
            num_replicas: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: DiscardPolicy::New,
            ..stream::Config::default()
        })
        .await
        .map_err(|e| setup(&e))?;
    let store = js.get_key_value(&name).await.map_err(|e| setup(&e))?;
    Ok(Bucket {
        store,
        stream,
        name,
    })
}

/// The bucket of retained updates.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// Its keys and values.
    store: Store,
    /// Its stream, for fresh counts (the store's status is the one it
    /// was opened with) and for loading.
    stream: stream::Stream,
    /// Its name.
    name: String,
}

/// The key of `topic`.
fn key(topic: &str) -> String {
    if topic.len() <= MAX_INLINE {
        format!("t.{}", URL_SAFE_NO_PAD.encode(topic))
    } else {
        let digest = Sha256::digest(topic.as_bytes());
        let mut key = "h.".to_owned();
        for byte in digest {
            key.push_str(&format!("{byte:02x}"));
        }
        key
    }
}

/// Makes `payload` (an update's encoding, `None` to clear) the retained
/// update of `topic` at place `seq`, unless the bucket holds a newer one.
pub(crate) async fn keep(
    bucket: &Bucket,
    topic: &str,
    seq: u64,
    time: u64,
    update: Option<&[u8]>,
) -> Result<(), PublishError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        PublishError::Unavailable(format!(
            "NATS: the update is in the log, but keeping it as retained failed ({what}: {e}); publish it again with the same id"
        ))
    };
    let raw = match update {
        Some(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|e| failed("payload", &e))?;
            Some(RawValue::from_string(text.to_owned()).map_err(|e| failed("payload", &e))?)
        }
        None => None,
    };
    let value = serde_json::to_vec(&Record {
        v: 1,
        seq,
        time,
        topic: topic.into(),
        update: raw.as_deref(),
    })
    .map_err(|e| failed("encoding", &e))?;
    let value = Bytes::from(value);
    let key = key(topic);
    let store = &bucket.store;
    for _ in 0..RACES {
        let held = store
            .entry(key.as_str())
            .await
            .map_err(|e| failed("read", &e))?;
        let written = match held {
            None => store
                .create(key.as_str(), value.clone())
                .await
                .map(drop)
                .map_err(|e| (e.kind() == CreateErrorKind::AlreadyExists, e.to_string())),
            Some(held) => {
                let newer = held.operation == Operation::Put
                    && serde_json::from_slice::<Record<'_>>(&held.value)
                        .is_ok_and(|r| r.seq >= seq);
                if newer {
                    return Ok(());
                }
                store
                    .update(key.as_str(), value.clone(), held.revision)
                    .await
                    .map(drop)
                    .map_err(|e| {
                        (
                            e.kind() == UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    })
            }
        };
        match written {
            Ok(()) => return Ok(()),
            Err((true, _)) => {}
            Err((false, e)) => return Err(failed("write", &e)),
        }
    }
    Err(failed("write", &"too many concurrent writers"))
}

/// Every retained update the bucket holds (tombstones left out), read
/// with an ephemeral push consumer that delivers the last message of every
/// key. (The client's own key watch uses an ordered consumer, which against
/// nats-server 2.9 delivered nothing here; the log follower avoids it for
/// the same kind of reason.)
pub(crate) async fn load(
    bucket: &Bucket,
    client: &async_nats::Client,
) -> Result<RetainedEntries, ClusterError> {
    let err = |e: &dyn std::fmt::Display| ClusterError(format!("NATS: retained updates: {e}"));
    let info = bucket.stream.get_info().await.map_err(|e| err(&e))?;
    let mut out = Vec::new();
    // A consumer of an empty bucket delivers nothing, not even an end.
    if info.state.messages == 0 {
        return Ok(out);
    }
    let consumer = bucket
        .stream
        .create_consumer(push::Config {
            deliver_subject: client.new_inbox(),
            deliver_policy: DeliverPolicy::LastPerSubject,
            filter_subject: format!("$KV.{}.>", bucket.name),
            ack_policy: AckPolicy::None,
            flow_control: true,
            idle_heartbeat: Duration::from_secs(2),
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            num_replicas: 1,
            ..push::Config::default()
        })
        .await
        .map_err(|e| err(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| err(&e))?;
    loop {
        let message = tokio::time::timeout(LOAD_QUIET, messages.next())
            .await
            .map_err(|_| err(&"the bucket stopped delivering"))?
            .ok_or_else(|| err(&"the bucket's consumer ended"))?
            .map_err(|e| err(&e))?;
        let pending = message.info().map_err(|e| err(&e))?.pending;
        match decode(&message.payload) {
            Ok(Some(pair)) => out.push(pair),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(subject = %message.subject, error = %e, "skipping an unreadable retained update");
            }
        }
        if pending == 0 {
            return Ok(out);
        }
    }
}

/// The longest the bucket may stay silent while it is loaded.
const LOAD_QUIET: Duration = Duration::from_secs(10);

/// A stored value: the topic and its entry, `None` for a tombstone.
fn decode(value: &[u8]) -> Result<Option<(String, Entry)>, String> {
    let record: Record<'_> = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    if record.v != 1 {
        return Err(format!("unknown retained record version {}", record.v));
    }
    let Some(update) = record.update else {
        return Ok(None);
    };
    let update = payload::decode(update.get().as_bytes()).map_err(|e| e.to_string())?;
    Ok(Some((
        record.topic.into_owned(),
        Entry {
            seq: record.seq,
            update,
            time_ms: record.time,
        },
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tidings_core::Update;

    use super::*;

    #[test]
    fn keys_are_valid_and_distinct() {
        for topic in [
            "a",
            "https://example.com/books/1?x=y z",
            "é.*>",
            &"x".repeat(5000),
        ] {
            let key = key(topic);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{key}"
            );
            assert!(key.len() < 1024);
        }
        assert_ne!(key("a"), key("b"));
    }

    #[test]
    fn records_round_trip() {
        let update = Update {
            topics: vec!["t".into(), "u".into()],
            data: "x \"y\"".into(),
            retain: true,
            ..Update::default()
        };
        let bytes = payload::encode(&update);
        let raw = RawValue::from_string(String::from_utf8(bytes).unwrap()).unwrap();
        let value = serde_json::to_vec(&Record {
            v: 1,
            seq: 7,
            time: 9,
            topic: "u\"v".into(),
            update: Some(&raw),
        })
        .unwrap();
        let (topic, entry) = decode(&value).unwrap().unwrap();
        assert_eq!(topic, "u\"v");
        assert_eq!((entry.seq, entry.time_ms), (7, 9));
        assert_eq!(entry.update, update);
        let tombstone = serde_json::to_vec(&Record {
            v: 1,
            seq: 8,
            time: 9,
            topic: "u".into(),
            update: None,
        })
        .unwrap();
        assert!(decode(&tombstone).unwrap().is_none());
        assert!(decode(b"{}").is_err());
    }
}
