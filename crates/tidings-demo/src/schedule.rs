//! The demo's heartbeat: every tick, each feed is asked for what is due,
//! and whatever is due is published as one batch through the hub.
//!
//! The feeds count time in ticks of nominally [`TICK`] (250 ms); at that
//! rate the demo publishes about 4 events a second on average:
//!
//! | feed | events per second |
//! |---|---|
//! | prices | 2 (5 symbols, each trading with chance 0.085 per tick, and at least every 5 s) |
//! | clock | 1 |
//! | scores | 1 (3 matches, one update every 3 s each) |
//! | notifications | 1/6 |
//!
//! which comes to about 15,000 events and 2.4 MB of encoded frames an hour
//! (the test `an_hour_of_demo` below measures it), before the store's own
//! overhead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tidings_core::{Hub, PublishError, Update};
use tokio::time::MissedTickBehavior;

use crate::clock::Clock;
use crate::feed::{Feed, Tick};
use crate::notifications::Notifications;
use crate::scores::Scores;
use crate::ticker::Ticker;

/// The nominal tick: the rates above assume it.
pub const TICK: Duration = Duration::from_millis(250);

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Time between two ticks. [`TICK`] in `tidings serve --demo`; tests
    /// shorten it to see many events quickly.
    pub tick: Duration,
    /// The random seed; `None` seeds from the clock, so that each run of
    /// the demo differs. A fixed seed replays the same prices and matches.
    pub seed: Option<u64>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            tick: TICK,
            seed: None,
        }
    }
}

/// Runs the demo feeds, publishing through `hub`, until the hub shuts down.
///
/// A publish that fails for another reason (a store error) is logged and
/// the demo goes on: the next tick may succeed.
pub async fn run(hub: Hub, config: DemoConfig) {
    let seed = config.seed.unwrap_or_else(clock_seed);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut feeds = feeds();
    let mut interval = tokio::time::interval(config.tick.max(Duration::from_millis(1)));
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tracing::info!(
        topics = ?crate::topics::SELECTORS,
        "demo feeds running: prices, scores, notifications, clock"
    );
    let mut updates = Vec::new();
    for n in 0_u64.. {
        interval.tick().await;
        let mut tick = Tick {
            n,
            now: SystemTime::now(),
            rng: &mut rng,
        };
        collect(&mut feeds, &mut tick, &mut updates);
        if updates.is_empty() {
            continue;
        }
        match hub.publish(std::mem::take(&mut updates)).await {
            Ok(_) => {}
            Err(PublishError::ShuttingDown) => break,
            Err(err) => tracing::warn!(error = %err, "a demo publish failed"),
        }
    }
    tracing::debug!("demo feeds stopped");
}

/// Every feed, in the order their updates are published within a tick.
fn feeds() -> Vec<Box<dyn Feed>> {
    vec![
        Box::new(Clock::default()),
        Box::new(Ticker::new()),
        Box::new(Scores::new()),
        Box::new(Notifications),
    ]
}

/// Asks every feed for what is due at `tick`.
fn collect(feeds: &mut [Box<dyn Feed>], tick: &mut Tick<'_>, out: &mut Vec<Update>) {
    for feed in feeds {
        feed.tick(tick, out);
    }
}

/// A seed from the wall clock.
fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    // The low 64 bits are the ones that differ between runs.
    #[allow(clippy::cast_possible_truncation)]
    let seed = nanos as u64;
    seed
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::Event;

    /// Runs the feeds over `seconds` of simulated time at the nominal tick;
    /// returns (events, bytes of encoded frames, events by type).
    fn simulate(seconds: u64, seed: u64) -> (u64, u64, std::collections::BTreeMap<String, u64>) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut feeds = feeds();
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ticks = seconds * 1000 / u64::try_from(TICK.as_millis()).unwrap();
        let (mut events, mut bytes) = (0, 0);
        let mut by_type = std::collections::BTreeMap::new();
        let mut out = Vec::new();
        for n in 0..ticks {
            let mut tick = Tick {
                n,
                now: start + TICK * u32::try_from(n).unwrap(),
                rng: &mut rng,
            };
            collect(&mut feeds, &mut tick, &mut out);
            for update in out.drain(..) {
                // Encoded as the hub encodes it, with an id of the length
                // the hub gives after a million events.
                let event = Event::encode(1_000_000 + events, &update, 0).unwrap();
                events += 1;
                bytes += event.frame.len() as u64;
                let mut kind = update.event_type.unwrap();
                if update.data.is_empty() {
                    kind.push_str(" cleared");
                }
                *by_type.entry(kind).or_insert(0) += 1;
            }
        }
        (events, bytes, by_type)
    }

    #[test]
    fn an_hour_of_demo() {
        let (events, bytes, by_type) = simulate(3600, 1);
        eprintln!("an hour of demo: {events} events, {bytes} bytes of frames, {by_type:?}");
        // About 4 events a second, 15,000 an hour; about 2.4 MB.
        assert!(
            (14_000..16_000).contains(&events),
            "{events} events: {by_type:?}"
        );
        assert!(bytes < 2_700_000, "{bytes} bytes");
        assert_eq!(by_type["clock"], 3600);
        assert!((6_800..7_600).contains(&by_type["price"]), "{by_type:?}");
        assert!((3_590..3_610).contains(&by_type["score"]), "{by_type:?}");
        assert!((450..750).contains(&by_type["notification"]), "{by_type:?}");
        // Every finished match clears its retained score: about 3 pitches
        // times one match per 40-odd updates of 3 s.
        assert!((60..110).contains(&by_type["score cleared"]), "{by_type:?}");
    }

    #[test]
    fn the_same_seed_replays_the_same_demo() {
        assert_eq!(simulate(120, 77), simulate(120, 77));
        assert_ne!(simulate(120, 77).1, simulate(120, 78).1);
    }
}
