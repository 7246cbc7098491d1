//! The server clock: one event per wall-clock second, the "hello world" of
//! Server-Sent Events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tidings_core::Update;

use crate::feed::{Feed, Tick, json_update};
use crate::topics;

/// The `clock` event, as subscribers receive it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClockTick {
    /// The server's time, milliseconds since the Unix epoch: what a page
    /// formats in its own time zone.
    pub(crate) unix_ms: u64,
    /// The same time as RFC 3339 UTC, for people reading the raw stream.
    pub(crate) iso: String,
    /// Seconds since the demo started.
    pub(crate) uptime: u64,
}

/// The clock feed.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// When the feed first ticked: second zero of `uptime`.
    started: Option<SystemTime>,
    /// The Unix second last announced: the feed speaks once per second
    /// whatever the tick rate.
    last_second: Option<u64>,
}

impl Feed for Clock {
    fn tick(&mut self, tick: &mut Tick<'_>, out: &mut Vec<Update>) {
        let since_epoch = tick.now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since_epoch.as_secs();
        if self.last_second == Some(second) {
            return;
        }
        self.last_second = Some(second);
        let started = *self.started.get_or_insert(tick.now);
        let uptime = tick.now.duration_since(started).unwrap_or_default();
        let body = ClockTick {
            unix_ms: tick.unix_ms(),
            iso: humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(second))
                .to_string(),
            uptime: uptime.as_secs(),
        };
        out.push(json_update(
            topics::CLOCK_TOPIC.to_owned(),
            topics::CLOCK,
            &body,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_wall_clock_second() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut clock = Clock::default();
        let mut out = Vec::new();
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_900);
        // Ticks every 250 ms for 10 s: the seconds 1_700_000_000 to
        // 1_700_000_010 each once.
        for n in 0..40 {
            let mut tick = Tick {
                n,
                now: start + Duration::from_millis(250 * n),
                rng: &mut rng,
            };
            clock.tick(&mut tick, &mut out);
        }
        assert_eq!(out.len(), 11);
        let first: serde_json::Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(first["unixMs"], 1_700_000_000_900_u64);
        assert_eq!(first["iso"], "2023-11-14T22:13:20Z");
        assert_eq!(first["uptime"], 0);
        let last: serde_json::Value = serde_json::from_str(&out[10].data).unwrap();
        assert_eq!(last["iso"], "2023-11-14T22:13:30Z");
        assert_eq!(last["uptime"], 9);
        assert_eq!(out[0].topics, ["https://demo.tidings.dev/clock"]);
        assert_eq!(out[0].event_type.as_deref(), Some("clock"));
    }
}
