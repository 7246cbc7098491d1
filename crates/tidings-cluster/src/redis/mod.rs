//! The Redis engine: the log is one Redis Stream whose entry ids are
//! `<seq>-0`, so that a sequence number is the entry's place in the stream.
//!
//! Keys (with the prefix as a hash tag, so that they share a slot):
//! - `{prefix}:log`: the stream; each entry has the fields `u` (the update,
//!   [`payload`](crate::payload)) and `t` (when the publishing hub accepted
//!   it, Unix ms).
//! - `{prefix}:ids`: a sorted set of publisher ids scored by their entry's
//!   sequence number, trimmed with the stream.
//! - `{prefix}:seq`: the last sequence number given.
//! - `{prefix}:retained`: a hash of the retained updates, topic →
//!   `<seq> <time> <update>`, which the stream's trimming never touches.
//!
//! Publishes run one Lua script (`append.lua`), which Redis runs alone:
//! checking ids, numbering, appending and keeping the retained updates are
//! one atomic step.

mod follow;
mod roster;
mod trim;

pub use roster::RedisRoster;

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tidings_core::{
    Bounds, Cluster, ClusterError, Entry, EventId, PublishError, Published, Retain,
    RetainedEntries, Retention, Update,
};

use crate::ConnectError;
use crate::payload;

/// How long a connection attempt may take. Publishes fail within about
/// twice this when Redis is down (one attempt and one retry).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an ordinary command may wait for its answer: a publish fails
/// fast instead of hanging on a Redis that stopped answering.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The names of the cluster's keys.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The stream.
    pub(crate) log: String,
    /// The sorted set of publisher ids.
    pub(crate) ids: String,
    /// The sequence counter.
    pub(crate) seq: String,
    /// The hash of retained updates.
    pub(crate) retained: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            log: format!("{{{prefix}}}:log"),
            ids: format!("{{{prefix}}}:ids"),
            seq: format!("{{{prefix}}}:seq"),
            retained: format!("{{{prefix}}}:retained"),
        }
    }
}

/// A cluster log on Redis Streams.
#[derive(Debug)]
pub struct RedisCluster {
    /// Opens the dedicated connections of followers.
    client: redis::Client,
    /// Shared, multiplexed, reconnecting connection for everything but
    /// blocking reads.
    conn: ConnectionManager,
    /// The key names.
    keys: Arc<Keys>,
    /// The append script (sent by hash; loaded again after a restart).
    script: redis::Script,
    /// `MAXLEN ~` of the stream: the history's event limit.
    max_len: Option<u64>,
    /// Trims entries older than the history's age limit; stopped on drop.
    trimmer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        if let Some(trimmer) = &self.trimmer {
            trimmer.abort();
        }
    }
}

impl RedisCluster {
    /// Connects to the Redis server at `url` (failing if it cannot be
    /// reached) and keeps the log under `prefix`, with `retention`. Needs
    /// Redis 6.2 or later, and a Tokio runtime.
    pub async fn connect(
        url: &str,
        prefix: &str,
        retention: Retention,
    ) -> Result<Self, ConnectError> {
        let unreachable = |e: redis::RedisError| ConnectError::Unreachable {
            engine: "Redis",
            message: e.to_string(),
        };
        let client = redis::Client::open(url).map_err(unreachable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(unreachable)?;
        let keys = Arc::new(Keys::new(prefix));
        let trimmer = retention
            .max_age
            .map(|age| tokio::spawn(trim::run(conn.clone(), Arc::clone(&keys), age)));
        if retention.max_bytes.is_some() {
            tracing::info!(
                "Redis has no byte limit for streams: --history-bytes applies to each hub's own history only"
            );
        }
        Ok(Self {
            client,
            conn,
            keys,
            script: redis::Script::new(include_str!("append.lua")),
            max_len: retention.max_events,
            trimmer,
        })
    }

    async fn append_now(
        &self,
        updates: &[Update],
        time_ms: u64,
    ) -> Result<Vec<Published>, PublishError> {
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(&self.keys.log)
            .key(&self.keys.ids)
            .key(&self.keys.seq)
            .key(&self.keys.retained)
            .arg(self.max_len.map(|n| n.to_string()).unwrap_or_default())
            .arg(time_ms)
            .arg(updates.len());
        for update in updates {
            match &update.id {
                Some(id) => invocation.arg("1").arg(id.as_str()),
                None => invocation.arg("0").arg(""),
            };
            invocation.arg(payload::encode(update));
            match Retain::of(update) {
                Retain::No => invocation.arg("0").arg(0),
                Retain::Keep => invocation.arg("1").arg(update.topics.len()),
                Retain::Clear => invocation.arg("2").arg(update.topics.len()),
            };
            if update.retain {
                for topic in &update.topics {
                    invocation.arg(topic.as_str());
                }
            }
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| publish_error(&e))?;
        parse_reply(updates, &reply)
    }
}

/// A failed publish: Redis out of memory (`maxmemory` reached with the
/// `noeviction` policy, or a full disk under its append-only file) is a
/// full engine; anything else, an engine that cannot be used now.
fn publish_error(e: &redis::RedisError) -> PublishError {
    let message = format!("Redis: {e}");
    let out_of_memory = e.code() == Some("OOM");
    let disk_full = e.code() == Some("MISCONF") && message.contains("No space left");
    if out_of_memory || disk_full {
        PublishError::EngineFull(message)
    } else {
        PublishError::Unavailable(message)
    }
}

/// The script's answer, as the hub's publish outcome.
fn parse_reply(updates: &[Update], reply: &[String]) -> Result<Vec<Published>, PublishError> {
    let nonsense =
        || PublishError::Unavailable(format!("Redis: unexpected script reply {reply:?}"));
    match reply.split_first() {
        Some((status, rest)) if status == "ok" && rest.len() == updates.len() * 2 => updates
            .iter()
            .zip(rest.chunks_exact(2))
            .map(|(update, pair)| {
                let (Some(seq), Some(dup)) = (pair.first(), pair.get(1)) else {
                    return Err(nonsense());
                };
                let seq: u64 = seq.parse().map_err(|_| nonsense())?;
                Ok(Published {
                    id: update.id.clone().unwrap_or_else(|| EventId::format(seq)),
                    seq,
                    duplicate: dup == "1",
                })
            })
            .collect(),
        Some((status, [id])) if status == "conflict" => {
            Err(PublishError::Conflict { id: id.clone() })
        }
        _ => Err(nonsense()),
    }
}

/// A Redis error as the trait reports it.
pub(crate) fn engine_error(e: &redis::RedisError) -> ClusterError {
    ClusterError(format!("Redis: {e}"))
}

/// The sequence number of a stream entry id `<seq>-<n>`.
pub(crate) fn entry_seq(id: &[u8]) -> Option<u64> {
    let digits = id.split(|&b| b == b'-').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Entries read per `HSCAN` of the retained updates.
const RETAINED_PAGE: usize = 1000;

impl RedisCluster {
    /// Every retained update in the hash, by `HSCAN` pages (not one
    /// consistent snapshot, which the [`Cluster::retained`] contract
    /// allows: a field present throughout is returned, as it was or is).
    async fn retained_now(&self) -> Result<RetainedEntries, ClusterError> {
        let mut conn = self.conn.clone();
        let mut cursor = 0u64;
        let mut out = Vec::new();
        loop {
            let (next, pairs): (u64, Vec<(String, Vec<u8>)>) = redis::cmd("HSCAN")
                .arg(&self.keys.retained)
                .arg(cursor)
                .arg("COUNT")
                .arg(RETAINED_PAGE)
                .query_async(&mut conn)
                .await
                .map_err(|e| engine_error(&e))?;
            for (topic, value) in pairs {
                match retained_entry(&value) {
                    Ok(entry) => out.push((topic, entry)),
                    Err(err) => {
                        tracing::error!(topic, error = %err, "skipping an unreadable retained update");
                    }
                }
            }
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }
}

/// A retained update as the script writes it: `<seq> <time> <payload>`.
fn retained_entry(value: &[u8]) -> Result<Entry, String> {
    let mut parts = value.splitn(3, |&b| b == b' ');
    let number = |part: Option<&[u8]>| -> Result<u64, String> {
        std::str::from_utf8(part.ok_or("truncated")?)
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string())
    };
    let seq = number(parts.next())?;
    let time_ms = number(parts.next())?;
    let update = payload::decode(parts.next().ok_or("no update")?).map_err(|e| e.to_string())?;
    Ok(Entry {
        seq,
        update,
        time_ms,
    })
}

impl Cluster for RedisCluster {
    fn append<'a>(
        &'a self,
        updates: &'a [Update],
        time_ms: u64,
    ) -> BoxFuture<'a, Result<Vec<Published>, PublishError>> {
        self.append_now(updates, time_ms).boxed()
    }

    fn follow(&self, after: u64) -> BoxStream<'static, Result<Entry, ClusterError>> {
        follow::stream(self.client.clone(), Arc::clone(&self.keys), after)
    }

    fn find_id<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<u64>, ClusterError>> {
        async move {
            let mut conn = self.conn.clone();
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg(&self.keys.ids)
                .arg(id)
                .query_async(&mut conn)
                .await
                .map_err(|e| engine_error(&e))?;
            score
                .map(|s| {
                    // Scores are integers below 2^53, exact as doubles.
                    let exact = s.is_finite() && s >= 0.0 && s.fract() == 0.0 && s < 9.0e15;
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let seq = s as u64;
                    if exact {
                        Ok(seq)
                    } else {
                        Err(ClusterError(format!("Redis: bad id score {s}")))
                    }
                })
                .transpose()
        }
        .boxed()
    }

    fn retained(&self) -> BoxFuture<'_, Result<RetainedEntries, ClusterError>> {
        self.retained_now().boxed()
    }

    fn bounds(&self) -> BoxFuture<'_, Result<Bounds, ClusterError>> {
        async move {
            let mut conn = self.conn.clone();
            let (first, last): (redis::Value, Option<u64>) = redis::pipe()
                .cmd("XRANGE")
                .arg(&self.keys.log)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .cmd("GET")
                .arg(&self.keys.seq)
                .query_async(&mut conn)
                .await
                .map_err(|e| engine_error(&e))?;
            let first = follow::entries(first)
                .map_err(ClusterError)?
                .first()
                .and_then(|(id, _)| entry_seq(id));
            // Nothing published yet: every place to come is after 0.
            let next = last.map_or(1, |last| last + 1);
            Ok(Bounds {
                first: first.unwrap_or(next).min(next),
                next,
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn updates() -> Vec<Update> {
        vec![
            Update {
                topics: vec!["t".into()],
                id: Some("mine".into()),
                ..Update::default()
            },
            Update {
                topics: vec!["t".into()],
                ..Update::default()
            },
        ]
    }

    #[test]
    fn replies() {
        let reply: Vec<String> = ["ok", "10", "1", "11", "0"].map(String::from).into();
        let published = parse_reply(&updates(), &reply).unwrap();
        assert_eq!(
            published,
            [
                Published {
                    id: "mine".into(),
                    seq: 10,
                    duplicate: true
                },
                Published {
                    id: "urn:tidings:11".into(),
                    seq: 11,
                    duplicate: false
                }
            ]
        );
        let conflict: Vec<String> = ["conflict", "mine"].map(String::from).into();
        assert!(matches!(
            parse_reply(&updates(), &conflict),
            Err(PublishError::Conflict { id }) if id == "mine"
        ));
        for bad in [
            &["ok", "10", "1"][..],
            &["ok", "x", "1", "11", "0"],
            &[],
            &["what"],
        ] {
            let bad: Vec<String> = bad.iter().map(|s| (*s).to_owned()).collect();
            assert!(matches!(
                parse_reply(&updates(), &bad),
                Err(PublishError::Unavailable(_))
            ));
        }
    }

    #[test]
    fn retained_values() {
        let update = Update {
            topics: vec!["t".into()],
            data: "a b".into(),
            retain: true,
            ..Update::default()
        };
        let mut value = b"1763718000000001 1234 ".to_vec();
        value.extend_from_slice(&payload::encode(&update));
        let entry = retained_entry(&value).unwrap();
        assert_eq!(entry.seq, 1_763_718_000_000_001);
        assert_eq!(entry.time_ms, 1234);
        assert_eq!(entry.update, update);
        assert!(retained_entry(b"1 2").is_err());
        assert!(retained_entry(b"x 2 {}").is_err());
    }

    #[test]
    fn entry_ids() {
        assert_eq!(
            entry_seq(b"1763718000000001-0"),
            Some(1_763_718_000_000_001)
        );
        assert_eq!(entry_seq(b"x-0"), None);
    }
}
