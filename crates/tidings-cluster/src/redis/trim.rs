//! Retention by age on Redis, which trims streams by length (`MAXLEN`, done
//! on every append) or by entry id (`MINID`) but knows nothing of time:
//! every hub periodically finds the oldest entry young enough to keep and
//! trims before it. Several hubs doing so at once is harmless: trimming is
//! idempotent.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use redis::aio::ConnectionManager;

use super::follow::{entries, time_ms};
use super::{Keys, entry_seq};

/// Entries examined per `XRANGE`.
const PAGE: usize = 256;
/// `XRANGE` pages examined per round at most, so that one round stays
/// short; a backlog is worked off over several rounds.
const PAGES: usize = 16;

/// Trims entries older than `max_age`, for ever.
pub(crate) async fn run(mut conn: ConnectionManager, keys: Arc<Keys>, max_age: Duration) {
    let every = (max_age / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    loop {
        ticker.tick().await;
        let cutoff = unix_ms().saturating_sub(max_age_ms);
        match trim_before(&mut conn, &keys, cutoff).await {
            Ok(Some(first)) => tracing::debug!(first, "trimmed the cluster log by age"),
            Ok(None) => {}
            Err(err) => tracing::debug!(error = %err, "cannot trim the cluster log by age"),
        }
    }
}

/// Removes the entries before the first one published at or after
/// `cutoff_ms`; returns the first sequence number kept, if it trimmed.
pub(crate) async fn trim_before(
    conn: &mut ConnectionManager,
    keys: &Keys,
    cutoff_ms: u64,
) -> Result<Option<u64>, String> {
    let mut start = "-".to_owned();
    let mut keep = None;
    let mut oldest = None;
    'pages: for _ in 0..PAGES {
        let page: Value = redis::cmd("XRANGE")
            .arg(&keys.log)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(PAGE)
            .query_async(conn)
            .await
            .map_err(|e| e.to_string())?;
        let page = entries(page)?;
        let Some((last, _)) = page.last() else {
            // The end of the stream: everything in it is too old.
            keep = oldest.map(|seq: u64| seq + 1);
            break;
        };
        let last = entry_seq(last).ok_or("foreign entry id")?;
        for (id, fields) in &page {
            let seq = entry_seq(id).ok_or("foreign entry id")?;
            if time_ms(fields).is_some_and(|t| t >= cutoff_ms) {
                keep = Some(seq);
                break 'pages;
            }
            oldest = Some(seq);
        }
        start = format!("({last}-0");
    }
    let Some(keep) = keep else {
        // Nothing to trim, or more old entries than one round examines:
        // trim what was examined and go on next round.
        let Some(old) = oldest else { return Ok(None) };
        return trim(conn, keys, old + 1).await.map(Some);
    };
    if oldest.is_none() {
        return Ok(None);
    }
    trim(conn, keys, keep).await.map(Some)
}

/// Drops every entry (and publisher id) before `first`.
async fn trim(conn: &mut ConnectionManager, keys: &Keys, first: u64) -> Result<u64, String> {
    redis::pipe()
        .cmd("XTRIM")
        .arg(&keys.log)
        .arg("MINID")
        .arg(format!("{first}-0"))
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(&keys.ids)
        .arg("-inf")
        .arg(format!("({first}"))
        .ignore()
        .query_async::<()>(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(first)
}

fn unix_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}
