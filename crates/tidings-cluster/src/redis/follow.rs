//! Following the Redis log: `XREAD BLOCK` on a connection of its own (a
//! blocking read on the shared multiplexed connection would stall every
//! other command), reconnecting with backoff and resuming from the last
//! entry read.
//!
//! The replies are taken apart by hand rather than through redis-rs's
//! `StreamReadReply`, which copies the whole reply twice and builds a hash
//! map per entry: this is every hub's read path for every event.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tidings_core::{ClusterError, Entry};

use super::{Keys, engine_error, entry_seq};
use crate::backoff::Backoff;
use crate::payload;

/// How long one `XREAD` blocks on the server when there is nothing new.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries one `XREAD` returns at most.
const COUNT: usize = 1000;
/// How long the follower's connection waits for a reply: longer than
/// [`BLOCK`] (redis-rs's default, 500 ms, would fail every idle read), but
/// bounded, so that a Redis that vanished without closing the connection
/// is noticed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A raw stream entry: its id and its field/value pairs.
pub(crate) type RawEntry = (Vec<u8>, Vec<Value>);

/// Every entry after `after`, for ever.
pub(crate) fn stream(
    client: redis::Client,
    keys: Arc<Keys>,
    after: u64,
) -> BoxStream<'static, Result<Entry, ClusterError>> {
    let follower = Follower {
        client,
        keys,
        last: after,
        conn: None,
        ready: VecDeque::new(),
        backoff: Backoff::default(),
        pause: None,
    };
    futures_util::stream::unfold(follower, |mut f| async move {
        let item = f.next().await;
        Some((item, f))
    })
    .boxed()
}

/// The state of one follower.
struct Follower {
    /// Opens the follower's own connection.
    client: redis::Client,
    /// The key names.
    keys: Arc<Keys>,
    /// The sequence number of the last entry read: where to resume.
    last: u64,
    /// The follower's own connection, while it works.
    conn: Option<MultiplexedConnection>,
    /// Entries read and not yet handed out.
    ready: VecDeque<Entry>,
    /// Waits between failed attempts.
    backoff: Backoff,
    /// The wait before the next attempt, after a failure.
    pause: Option<Duration>,
}

impl Follower {
    async fn next(&mut self) -> Result<Entry, ClusterError> {
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Ok(entry);
            }
            if let Some(pause) = self.pause.take() {
                tokio::time::sleep(pause).await;
            }
            if let Err(err) = self.read().await {
                self.conn = None;
                self.pause = Some(self.backoff.fail());
                return Err(err);
            }
        }
    }

    /// One `XREAD`: fills `ready` with what came (perhaps nothing).
    async fn read(&mut self) -> Result<(), ClusterError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(super::CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| engine_error(&e))?;
                self.conn.insert(conn)
            }
        };
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.keys.log)
            .arg(format!("{}-0", self.last))
            .query_async(conn)
            .await
            .map_err(|e| engine_error(&e))?;
        self.backoff.reset();
        for (id, fields) in read_reply(reply).map_err(ClusterError)? {
            let Some(seq) = entry_seq(&id) else {
                tracing::error!(id = %String::from_utf8_lossy(&id), "skipping a log entry with a foreign id");
                continue;
            };
            if seq <= self.last {
                continue;
            }
            self.last = seq;
            match decode(seq, &fields) {
                Ok(entry) => self.ready.push_back(entry),
                Err(err) => tracing::error!(seq, error = %err, "skipping an unreadable log entry"),
            }
        }
        Ok(())
    }
}

/// The entries of an `XREAD` reply for one stream (RESP2 or RESP3); none
/// when the read timed out.
fn read_reply(reply: Value) -> Result<Vec<RawEntry>, String> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(pair) => {
                    let mut pair = pair.into_iter();
                    match (pair.next(), pair.next()) {
                        (Some(_key), Some(entries)) => Ok(entries),
                        _ => Err(format!("Redis: bad XREAD stream {pair:?}")),
                    }
                }
                other => Err(format!("Redis: bad XREAD stream {other:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_key, entries)| entries).collect(),
        other => return Err(format!("Redis: bad XREAD reply {other:?}")),
    };
    let mut out = Vec::new();
    for entries in streams {
        out.extend(entries_of(entries)?);
    }
    Ok(out)
}

/// The entries of an `XRANGE` reply (the same shape as one stream of an
/// `XREAD` reply).
pub(crate) fn entries(reply: Value) -> Result<Vec<RawEntry>, String> {
    entries_of(reply)
}

fn entries_of(entries: Value) -> Result<Vec<RawEntry>, String> {
    let Value::Array(entries) = entries else {
        return Err(format!("Redis: bad stream entries {entries:?}"));
    };
    entries
        .into_iter()
        .map(|entry| {
            let Value::Array(parts) = entry else {
                return Err(format!("Redis: bad stream entry {entry:?}"));
            };
            let mut parts = parts.into_iter();
            match (parts.next(), parts.next()) {
                (Some(Value::BulkString(id)), Some(Value::Array(fields))) => Ok((id, fields)),
                (id, fields) => Err(format!("Redis: bad stream entry {id:?} {fields:?}")),
            }
        })
        .collect()
}

/// A field's bytes.
fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// The value of the field `name` among an entry's field/value pairs.
pub(crate) fn field<'a>(fields: &'a [Value], name: &[u8]) -> Option<&'a [u8]> {
    fields.chunks_exact(2).find_map(|pair| match pair {
        [key, value] if bytes(key) == Some(name) => bytes(value),
        _ => None,
    })
}

/// The time field of an entry (Unix ms).
pub(crate) fn time_ms(fields: &[Value]) -> Option<u64> {
    std::str::from_utf8(field(fields, b"t")?).ok()?.parse().ok()
}

/// The entry at `seq` with `fields` (`u`: the update, `t`: the time).
fn decode(seq: u64, fields: &[Value]) -> Result<Entry, String> {
    let update = field(fields, b"u").ok_or("no update field")?;
    let update = payload::decode(update).map_err(|e| e.to_string())?;
    let time_ms = time_ms(fields).ok_or("no or bad time field")?;
    Ok(Entry {
        seq,
        update,
        time_ms,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use tidings_core::Update;

    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, update: &Update) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(vec![
                bulk("u"),
                Value::BulkString(payload::encode(update)),
                bulk("t"),
                bulk("1234"),
            ]),
        ])
    }

    #[test]
    fn reads_resp2_and_resp3_replies() {
        let update = Update {
            topics: vec!["t".into()],
            data: "x".into(),
            ..Update::default()
        };
        let entries = Value::Array(vec![entry("5-0", &update), entry("7-0", &update)]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("k"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("k"), entries)]);
        for reply in [resp2, resp3] {
            let raw = read_reply(reply).unwrap();
            assert_eq!(raw.len(), 2);
            assert_eq!(entry_seq(&raw[1].0), Some(7));
            let decoded = decode(7, &raw[1].1).unwrap();
            assert_eq!(decoded.update, update);
            assert_eq!(decoded.time_ms, 1234);
        }
        assert!(read_reply(Value::Nil).unwrap().is_empty());
        assert!(read_reply(Value::Int(3)).is_err());
        assert!(decode(1, &[bulk("t"), bulk("1")]).is_err());
        assert!(decode(1, &[bulk("u"), bulk("{}"), bulk("t"), bulk("1")]).is_err());
    }
}
