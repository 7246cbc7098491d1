//! What a feed is: something asked, once per tick, for the updates it
//! wants published now.

use std::time::{SystemTime, UNIX_EPOCH};

use tidings_core::Update;

/// The moment a feed is asked for updates.
#[derive(Debug)]
pub(crate) struct Tick<'a> {
    /// How many ticks came before this one: feeds count time in ticks, so
    /// that a test can run an hour of demo in a moment.
    pub(crate) n: u64,
    /// The wall-clock time, for the `time` field of the events and for the
    /// clock feed.
    pub(crate) now: SystemTime,
    /// The demo's one random source, seeded once, so that a fixed seed
    /// replays the same demo.
    pub(crate) rng: &'a mut fastrand::Rng,
}

impl Tick<'_> {
    /// `now` in milliseconds since the Unix epoch (0 before it).
    pub(crate) fn unix_ms(&self) -> u64 {
        let ms = self
            .now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.rng.f64() < p
    }
}

/// A producer of demo events.
pub(crate) trait Feed: Send {
    /// Appends the updates due at `tick` to `out`.
    fn tick(&mut self, tick: &mut Tick<'_>, out: &mut Vec<Update>);
}

/// A typed update: `body` as compact JSON on `topic`, with SSE type
/// `event_type`. Feeds whose latest event is the current state of its topic
/// (a price, a score) set `retain` on it, so that a page opened at any
/// moment shows that state at once.
pub(crate) fn json_update(topic: String, event_type: &str, body: &impl serde::Serialize) -> Update {
    Update {
        topics: vec![topic],
        // Serializing these plain structs cannot fail; an empty object
        // would still be a valid event.
        data: serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()),
        event_type: Some(event_type.to_owned()),
        ..Update::default()
    }
}
