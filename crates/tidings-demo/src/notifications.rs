//! Notifications: a short phrase every few seconds, as a social site or a
//! build server would push them.

use serde::Serialize;
use tidings_core::Update;

use crate::feed::{Feed, Tick, json_update};
use crate::topics;

/// Who does things.
const PEOPLE: [&str; 8] = [
    "Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances",
];

/// What they do: a level and a phrase in which `{who}` is replaced by a
/// name.
const PHRASES: [(&str, &str); 10] = [
    ("info", "{who} started following you"),
    ("info", "{who} commented on your post"),
    ("info", "{who} shared a link with you"),
    ("success", "{who} merged your pull request"),
    ("success", "{who} starred tidings"),
    ("success", "{who} approved your expense report"),
    ("warning", "{who} requested changes on your review"),
    ("warning", "{who} mentioned you in an incident"),
    ("info", "{who} invited you to a meeting"),
    ("success", "{who} liked your photo"),
];

/// Chance of a notification in one tick: one every 6 s on average, at
/// random moments.
const CHANCE: f64 = 1.0 / 24.0;

/// The `notification` event, as subscribers receive it. The demo page's
/// form publishes the same shape with `from: "you"`.
#[derive(Debug, Serialize)]
pub(crate) struct Notification<'a> {
    /// What happened, for display.
    pub(crate) text: &'a str,
    /// `info`, `success` or `warning`: how a page colours it.
    pub(crate) level: &'a str,
    /// Who published it: `demo` for this feed.
    pub(crate) from: &'a str,
    /// When, milliseconds since the Unix epoch.
    pub(crate) time: u64,
}

/// The notifications feed.
#[derive(Debug, Default)]
pub(crate) struct Notifications;

impl Feed for Notifications {
    fn tick(&mut self, tick: &mut Tick<'_>, out: &mut Vec<Update>) {
        if !tick.chance(CHANCE) {
            return;
        }
        let who = PEOPLE
            .get(tick.rng.usize(..PEOPLE.len()))
            .copied()
            .unwrap_or("Someone");
        let (level, phrase) = PHRASES
            .get(tick.rng.usize(..PHRASES.len()))
            .copied()
            .unwrap_or(("info", "{who} waved"));
        let text = phrase.replace("{who}", who);
        let body = Notification {
            text: &text,
            level,
            from: "demo",
            time: tick.unix_ms(),
        };
        out.push(json_update(
            topics::NOTIFICATIONS.to_owned(),
            topics::NOTIFICATION,
            &body,
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn a_phrase_every_few_seconds() {
        let mut rng = fastrand::Rng::with_seed(9);
        let mut feed = Notifications;
        let mut out = Vec::new();
        for n in 0..24_000 {
            let mut tick = Tick {
                n,
                now: UNIX_EPOCH,
                rng: &mut rng,
            };
            feed.tick(&mut tick, &mut out);
        }
        // 24,000 ticks at 1/24: 1,000 on average.
        assert!((880..1120).contains(&out.len()), "{}", out.len());
        let mut texts = std::collections::HashSet::new();
        for update in &out {
            assert_eq!(update.topics, ["https://demo.tidings.dev/notifications"]);
            assert_eq!(update.event_type.as_deref(), Some("notification"));
            let v: serde_json::Value = serde_json::from_str(&update.data).unwrap();
            let text = v["text"].as_str().unwrap();
            assert!(!text.contains("{who}"), "{text}");
            assert!(PEOPLE.iter().any(|p| text.starts_with(p)), "{text}");
            assert!(["info", "success", "warning"].contains(&v["level"].as_str().unwrap()));
            assert_eq!(v["from"], "demo");
            texts.insert(text.to_owned());
        }
        assert!(texts.len() > 50, "varied: {}", texts.len());
    }
}
