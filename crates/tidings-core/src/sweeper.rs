//! The sweeper: once a second, ticks the hub clock and looks at every
//! subscriber for due heartbeats, stalled writers and expired tokens; every
//! few seconds, enforces retention. One task for all subscribers instead
//! of timers in each keeps an idle subscriber down to a few hundred bytes.

use std::sync::Weak;
use std::time::Duration;

use crate::shared::Shared;
use crate::subscriber::End;

pub(crate) async fn run(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention = 0u32;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = shared.clock.tick();
        let heartbeat = secs(shared.config.heartbeat);
        let write_timeout = secs(shared.config.write_timeout).max(1);
        let mut timeouts = 0u64;
        let mut expired = 0u64;
        shared
            .registry
            .for_each(|sub| match sub.sweep(now, heartbeat, write_timeout) {
                Some(End::WriteTimeout) => timeouts += 1,
                Some(End::TokenExpired) => expired += 1,
                _ => {}
            });
        if timeouts > 0 {
            shared.metrics.write_timeouts.increment(timeouts);
            tracing::debug!(timeouts, "disconnected subscribers that stopped reading");
        }
        if expired > 0 {
            tracing::debug!(expired, "closed streams whose token expired");
        }
        let every = secs(shared.config.retention_interval).max(1);
        if now.saturating_sub(last_retention) >= every {
            last_retention = now;
            match shared.enforce_retention().await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "retention dropped old events"),
                Err(err) => tracing::warn!(error = %err, "enforcing retention failed"),
            }
        }
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}
