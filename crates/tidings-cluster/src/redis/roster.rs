//! Active subscriptions on Redis ([`Roster`]): keys beside the log's, with
//! the same hash tag (one slot):
//!
//! - `{prefix}:presence:nodes`: the set of hub names;
//! - `{prefix}:presence:node:<hub>`: a hash, record key → record;
//! - `{prefix}:presence:lease:<hub>`: the hub's lease, a key with `PX`,
//!   renewed with `SET … XX` (which fails once it lapsed);
//! - `{prefix}:presence:claim:<hub>`: who cleans up after a dead hub,
//!   taken with `SET … NX PX`.
//!
//! Each step is one Lua script, which Redis runs alone: a hub writes its
//! records only while its lease is held, the list leaves out hubs whose
//! lease lapsed, and one caller claims a dead hub.

use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tidings_core::{ClusterError, DeadHub, Lease, Roster, RosterChange};

use super::engine_error;
use crate::ConnectError;

/// Starts a lease (before the hub is listed among the hubs).
const JOIN: &str = r"
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[1], ARGV[1])
return 1
";

/// Applies changes while the lease is held. ARGV: op, key, record, …
const WRITE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 3 do
  if ARGV[i] == 'put' then
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
  else
    redis.call('HDEL', KEYS[2], ARGV[i + 1])
  end
end
return 1
";

/// The records of every hub whose lease is held.
const LIST: &str = r"
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. node) == 1 then
    for _, record in ipairs(redis.call('HVALS', ARGV[1] .. 'node:' .. node)) do
      out[#out + 1] = record
    end
  end
end
return out
";

/// Claims one hub whose lease lapsed: its name, then its records.
const CLAIM: &str = r"
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. node) == 0
    and redis.call('SET', ARGV[1] .. 'claim:' .. node, ARGV[2], 'NX', 'PX', ARGV[3]) then
    local out = {node}
    for _, record in ipairs(redis.call('HVALS', ARGV[1] .. 'node:' .. node)) do
      out[#out + 1] = record
    end
    return out
  end
end
return {}
";

/// Forgets a hub.
const FORGET: &str = r"
redis.call('DEL', ARGV[1] .. 'node:' .. ARGV[2], ARGV[1] .. 'lease:' .. ARGV[2], ARGV[1] .. 'claim:' .. ARGV[2])
redis.call('SREM', KEYS[1], ARGV[2])
return 1
";

/// Active-subscription records on Redis.
#[derive(Debug)]
pub struct RedisRoster {
    /// Shared, multiplexed, reconnecting connection.
    conn: ConnectionManager,
    /// What every key starts with: `{prefix}:presence:`.
    base: String,
    /// How long a lease lasts, in milliseconds.
    lease_ms: u64,
    /// How long a claim on a dead hub lasts, in milliseconds.
    claim_ms: u64,
    /// The scripts.
    join: redis::Script,
    write: redis::Script,
    list: redis::Script,
    claim: redis::Script,
    forget: redis::Script,
}

impl RedisRoster {
    /// Connects to the Redis server at `url` (failing if it cannot be
    /// reached); keys under `prefix`, leases of `lease`.
    pub async fn connect(url: &str, prefix: &str, lease: Duration) -> Result<Self, ConnectError> {
        let unreachable = |e: redis::RedisError| ConnectError::Unreachable {
            engine: "Redis",
            message: e.to_string(),
        };
        let client = redis::Client::open(url).map_err(unreachable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unreachable)?;
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        Ok(Self {
            conn,
            base: format!("{{{prefix}}}:presence:"),
            lease_ms,
            claim_ms: lease_ms.saturating_mul(2),
            join: redis::Script::new(JOIN),
            write: redis::Script::new(WRITE),
            list: redis::Script::new(LIST),
            claim: redis::Script::new(CLAIM),
            forget: redis::Script::new(FORGET),
        })
    }

    fn nodes(&self) -> String {
        format!("{}nodes", self.base)
    }

    fn lease(&self, node: &str) -> String {
        format!("{}lease:{node}", self.base)
    }
}

impl Roster for RedisRoster {
    fn join<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        async move {
            let mut conn = self.conn.clone();
            let _: i64 = self
                .join
                .key(self.nodes())
                .key(self.lease(node))
                .arg(node)
                .arg(self.lease_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| engine_error(&e))?;
            Ok(())
        }
        .boxed()
    }

    fn renew<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Lease, ClusterError>> {
        async move {
            let mut conn = self.conn.clone();
            let set: Option<String> = redis::cmd("SET")
                .arg(self.lease(node))
                .arg("1")
                .arg("PX")
                .arg(self.lease_ms)
                .arg("XX")
                .query_async(&mut conn)
                .await
                .map_err(|e| engine_error(&e))?;
            Ok(if set.is_some() {
                Lease::Held
            } else {
                Lease::Lost
            })
        }
        .boxed()
    }

    fn write<'a>(
        &'a self,
        node: &'a str,
        changes: &'a [RosterChange],
    ) -> BoxFuture<'a, Result<Lease, ClusterError>> {
        async move {
            let mut invocation = self.write.prepare_invoke();
            invocation
                .key(self.lease(node))
                .key(format!("{}node:{node}", self.base));
            for change in changes {
                match change {
                    RosterChange::Put { key, record } => {
                        invocation.arg("put").arg(key).arg(record);
                    }
                    RosterChange::Remove { key } => {
                        invocation.arg("remove").arg(key).arg("");
                    }
                }
            }
            let mut conn = self.conn.clone();
            let held: i64 = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| engine_error(&e))?;
            Ok(if held == 1 { Lease::Held } else { Lease::Lost })
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, ClusterError>> {
        async move {
            let mut conn = self.conn.clone();
            self.list
                .key(self.nodes())
                .arg(&self.base)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| engine_error(&e))
        }
        .boxed()
    }

    fn claim_dead<'a>(
        &'a self,
        me: &'a str,
    ) -> BoxFuture<'a, Result<Option<DeadHub>, ClusterError>> {
        async move {
            let mut conn = self.conn.clone();
            let mut claimed: Vec<String> = self
                .claim
                .key(self.nodes())
                .arg(&self.base)
                .arg(me)
                .arg(self.claim_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| engine_error(&e))?;
            if claimed.is_empty() {
                return Ok(None);
            }
            let node = claimed.remove(0);
            Ok(Some((node, claimed)))
        }
        .boxed()
    }

    fn forget<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        async move {
            let mut conn = self.conn.clone();
            let _: i64 = self
                .forget
                .key(self.nodes())
                .arg(&self.base)
                .arg(node)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| engine_error(&e))?;
            Ok(())
        }
        .boxed()
    }
}
