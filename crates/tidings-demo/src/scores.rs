//! Live match scores: a few pitches, each playing one fixture after
//! another, with goals at random.

use serde::Serialize;
use tidings_core::Update;

use crate::feed::{Feed, Tick, json_update};
use crate::topics;

/// The teams fixtures are drawn from.
const TEAMS: [&str; 12] = [
    "Lions", "Tigers", "Falcons", "Wolves", "Otters", "Herons", "Badgers", "Comets", "Rovers",
    "Pilots", "Ravens", "Foxes",
];

/// How many matches are played at once.
const PITCHES: u64 = 3;

/// Ticks between two updates of one match (3 s at the nominal tick); the
/// pitches take turns inside that period so their events are spread out.
const ACT_EVERY: u64 = 12;

/// Match minutes played between two updates: a 90-minute match lasts 30
/// updates, a minute and a half.
const MINUTES_PER_ACT: u8 = 3;

/// Chance that a team scores during one update: 2.7 goals a match on
/// average, about what football sees.
const GOAL_CHANCE: f64 = 0.045;

/// Updates the half-time break lasts.
const HALF_TIME_ACTS: u8 = 2;

/// Updates a final score stays up before the next fixture is announced.
const FULL_TIME_ACTS: u8 = 5;

/// Updates between the announcement of a fixture and its kick-off.
const UPCOMING_ACTS: u8 = 2;

/// The `score` event, as subscribers receive it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Score<'a> {
    /// The fixture's slug (`home-v-away`), also the last segment of the
    /// topic.
    #[serde(rename = "match")]
    pub(crate) slug: &'a str,
    /// The pitch, from 1: where a page shows the match; a new fixture on
    /// the same pitch replaces the last one.
    pub(crate) pitch: u64,
    /// The home team.
    pub(crate) home: &'a str,
    /// The away team.
    pub(crate) away: &'a str,
    /// Goals of the home team.
    pub(crate) home_score: u8,
    /// Goals of the away team.
    pub(crate) away_score: u8,
    /// The match minute, 0 to 90.
    pub(crate) minute: u8,
    /// `upcoming`, `live`, `half-time` or `full-time`.
    pub(crate) status: &'static str,
    /// The goals scored since the previous update of this match, so that a
    /// page can announce them.
    pub(crate) goals: &'a [Goal],
    /// When the update was made, milliseconds since the Unix epoch.
    pub(crate) time: u64,
}

/// One goal.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Goal {
    /// `home` or `away`.
    pub(crate) team: &'static str,
    /// The minute it was scored in.
    pub(crate) minute: u8,
}

/// Where a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Announced; kicks off after this many more updates.
    Upcoming(u8),
    /// First half, minutes 0 to 45.
    FirstHalf,
    /// The break; the second half starts after this many more updates.
    HalfTime(u8),
    /// Second half, minutes 45 to 90.
    SecondHalf,
    /// Over; the next fixture is announced after this many more updates.
    FullTime(u8),
}

/// One pitch's current fixture.
#[derive(Debug)]
struct Match {
    /// Which pitch, from 1.
    pitch: u64,
    /// The home team.
    home: &'static str,
    /// The away team.
    away: &'static str,
    /// `home-v-away`, lower case: the topic's last segment.
    slug: String,
    /// The match minute.
    minute: u8,
    /// Home goals.
    home_score: u8,
    /// Away goals.
    away_score: u8,
    /// Where the match is.
    phase: Phase,
}

/// The scores feed.
#[derive(Debug)]
pub(crate) struct Scores {
    /// One match per pitch; empty until the first tick.
    matches: Vec<Match>,
}

impl Scores {
    pub(crate) fn new() -> Self {
        Self {
            matches: Vec::new(),
        }
    }
}

impl Feed for Scores {
    fn tick(&mut self, tick: &mut Tick<'_>, out: &mut Vec<Update>) {
        let time = tick.unix_ms();
        if self.matches.is_empty() {
            // The first fixtures: one about to kick off, the others joined
            // in progress (a live board has matches under way), so that
            // the matches do not run in step.
            for pitch in 1..=PITCHES {
                let mut fixture = Match::draw(pitch, 0, &self.matches, tick.rng);
                let minute = u8::try_from((pitch - 1) * 30).unwrap_or(0);
                fixture.join_at(minute, tick);
                out.push(fixture.event(&[], time));
                self.matches.push(fixture);
            }
            return;
        }
        let turn = tick.n % ACT_EVERY;
        let Some(index) = (0..self.matches.len()).find(|&i| {
            let slot = u64::try_from(i).unwrap_or(u64::MAX);
            turn == slot * (ACT_EVERY / PITCHES)
        }) else {
            return;
        };
        let (before, rest) = self.matches.split_at_mut(index);
        let Some((current, after)) = rest.split_first_mut() else {
            return;
        };
        let mut goals = Vec::new();
        match current.act(tick, &mut goals) {
            Act::Report => out.push(current.event(&goals, time)),
            Act::Replace => {
                // The finished match's topic keeps no state: its retained
                // update is cleared, so that a new page does not get every
                // match ever played.
                out.push(Update {
                    topics: vec![topics::score(&current.slug)],
                    event_type: Some(topics::SCORE.to_owned()),
                    retain: true,
                    ..Update::default()
                });
                let others: Vec<&Match> = before.iter().chain(after.iter()).collect();
                let fixture = Match::draw_among(current.pitch, UPCOMING_ACTS, &others, tick.rng);
                out.push(fixture.event(&[], time));
                *current = fixture;
            }
        }
    }
}

/// What one update of a match comes to.
enum Act {
    /// Publish the match as it is now. Also during breaks and countdowns:
    /// a page opened a moment ago learns of every match within one period.
    Report,
    /// The match is over and done with: draw the next fixture.
    Replace,
}

impl Match {
    /// A new fixture on `pitch` between two teams not playing elsewhere.
    fn draw(pitch: u64, wait: u8, playing: &[Match], rng: &mut fastrand::Rng) -> Self {
        let others: Vec<&Match> = playing.iter().collect();
        Self::draw_among(pitch, wait, &others, rng)
    }

    fn draw_among(pitch: u64, wait: u8, playing: &[&Match], rng: &mut fastrand::Rng) -> Self {
        let mut free: Vec<&'static str> = TEAMS
            .iter()
            .copied()
            .filter(|t| !playing.iter().any(|m| m.home == *t || m.away == *t))
            .collect();
        // Twelve teams, at most four busy: there are always two free.
        let home = take(&mut free, rng);
        let away = take(&mut free, rng);
        Self {
            pitch,
            home,
            away,
            slug: format!("{}-v-{}", home.to_lowercase(), away.to_lowercase()),
            minute: 0,
            home_score: 0,
            away_score: 0,
            phase: Phase::Upcoming(wait),
        }
    }

    /// Plays the match up to `minute` at once (goals and all, unreported):
    /// a match the demo joins in progress. Zero leaves it upcoming.
    fn join_at(&mut self, minute: u8, tick: &mut Tick<'_>) {
        if minute == 0 {
            return;
        }
        self.phase = Phase::FirstHalf;
        let mut goals = Vec::new();
        while self.minute < minute.min(90) {
            self.play(tick, &mut goals);
        }
        if self.minute >= 45 {
            self.phase = Phase::SecondHalf;
        }
    }

    fn act(&mut self, tick: &mut Tick<'_>, goals: &mut Vec<Goal>) -> Act {
        match self.phase {
            Phase::Upcoming(0) => {
                self.phase = Phase::FirstHalf;
                Act::Report
            }
            Phase::Upcoming(left) => {
                self.phase = Phase::Upcoming(left - 1);
                Act::Report
            }
            Phase::FirstHalf | Phase::SecondHalf => {
                self.play(tick, goals);
                if self.phase == Phase::FirstHalf && self.minute >= 45 {
                    self.phase = Phase::HalfTime(HALF_TIME_ACTS);
                } else if self.minute >= 90 {
                    self.phase = Phase::FullTime(FULL_TIME_ACTS);
                }
                Act::Report
            }
            Phase::HalfTime(0) => {
                self.phase = Phase::SecondHalf;
                Act::Report
            }
            Phase::HalfTime(left) => {
                self.phase = Phase::HalfTime(left - 1);
                Act::Report
            }
            Phase::FullTime(0) => Act::Replace,
            Phase::FullTime(left) => {
                self.phase = Phase::FullTime(left - 1);
                Act::Report
            }
        }
    }

    /// Plays the next few minutes.
    fn play(&mut self, tick: &mut Tick<'_>, goals: &mut Vec<Goal>) {
        let start = self.minute;
        self.minute = (start + MINUTES_PER_ACT).min(90);
        for team in ["home", "away"] {
            if tick.chance(GOAL_CHANCE) {
                let minute = tick.rng.u8(start + 1..=self.minute);
                goals.push(Goal { team, minute });
                if team == "home" {
                    self.home_score += 1;
                } else {
                    self.away_score += 1;
                }
            }
        }
        goals.sort_by_key(|g| g.minute);
    }

    fn status(&self) -> &'static str {
        match self.phase {
            Phase::Upcoming(_) => "upcoming",
            Phase::FirstHalf | Phase::SecondHalf => "live",
            Phase::HalfTime(_) => "half-time",
            Phase::FullTime(_) => "full-time",
        }
    }

    fn event(&self, goals: &[Goal], time: u64) -> Update {
        let score = Score {
            slug: &self.slug,
            pitch: self.pitch,
            home: self.home,
            away: self.away,
            home_score: self.home_score,
            away_score: self.away_score,
            minute: self.minute,
            status: self.status(),
            goals,
            time,
        };
        // The latest update is the match's state: a new page gets it first.
        Update {
            retain: true,
            ..json_update(topics::score(&self.slug), topics::SCORE, &score)
        }
    }
}

/// Removes and returns a random team of `free`.
fn take(free: &mut Vec<&'static str>, rng: &mut fastrand::Rng) -> &'static str {
    if free.is_empty() {
        return "Strays";
    }
    free.swap_remove(rng.usize(..free.len()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::UNIX_EPOCH;

    use super::*;

    fn run(ticks: u64, seed: u64) -> Vec<serde_json::Value> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut scores = Scores::new();
        let mut events = Vec::new();
        for n in 0..ticks {
            let mut tick = Tick {
                n,
                now: UNIX_EPOCH,
                rng: &mut rng,
            };
            let mut out = Vec::new();
            scores.tick(&mut tick, &mut out);
            for update in out {
                assert_eq!(update.event_type.as_deref(), Some("score"));
                assert!(update.retain, "scores are retained");
                if update.data.is_empty() {
                    // A finished match's retained update cleared: it was
                    // the last one reported, at full time.
                    let last = events
                        .iter()
                        .rev()
                        .find(|e: &&serde_json::Value| {
                            update.topics[0].ends_with(e["match"].as_str().unwrap())
                        })
                        .unwrap();
                    assert_eq!(last["status"], "full-time");
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&update.data).unwrap();
                assert_eq!(
                    update.topics,
                    [format!(
                        "https://demo.tidings.dev/scores/{}",
                        v["match"].as_str().unwrap()
                    )]
                );
                events.push(v);
            }
        }
        events
    }

    #[test]
    fn the_first_tick_announces_a_fixture_per_pitch() {
        let events = run(1, 1);
        assert_eq!(events.len(), 3);
        let mut teams: Vec<&str> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["pitch"], i + 1);
            // One about to start, two joined in progress.
            let (status, minute) = [("upcoming", 0), ("live", 30), ("live", 60)][i];
            assert_eq!(e["status"], status);
            assert_eq!(e["minute"], minute);
            teams.push(e["home"].as_str().unwrap());
            teams.push(e["away"].as_str().unwrap());
        }
        teams.sort_unstable();
        teams.dedup();
        assert_eq!(teams.len(), 6, "a team plays one match at a time");
    }

    #[test]
    fn matches_progress_and_scores_add_up() {
        // About ten hours of demo.
        let events = run(150_000, 42);
        let mut last: HashMap<u64, serde_json::Value> = HashMap::new();
        let mut finished = 0;
        let mut goals_total = 0;
        for e in &events {
            let pitch = e["pitch"].as_u64().unwrap();
            let goals = e["goals"].as_array().unwrap();
            let prev = last.get(&pitch);
            // A new fixture follows a final score (the same two teams may
            // meet again).
            let same_fixture = prev.is_some_and(|prev| {
                prev["match"] == e["match"]
                    && !(prev["status"] == "full-time" && e["status"] == "upcoming")
            });
            if let Some(prev) = prev
                && same_fixture
            {
                assert!(
                    e["minute"].as_u64() >= prev["minute"].as_u64(),
                    "{prev} then {e}"
                );
                let scored = |side: &str| {
                    e[format!("{side}Score")].as_u64().unwrap()
                        - prev[format!("{side}Score")].as_u64().unwrap()
                };
                let listed = |side: &str| goals.iter().filter(|g| g["team"] == side).count();
                assert_eq!(scored("home"), listed("home") as u64, "{e}");
                assert_eq!(scored("away"), listed("away") as u64, "{e}");
                for g in goals {
                    let m = g["minute"].as_u64().unwrap();
                    assert!(
                        m > prev["minute"].as_u64().unwrap() && m <= e["minute"].as_u64().unwrap()
                    );
                }
            } else if prev.is_some() {
                assert_eq!(
                    e["status"], "upcoming",
                    "a new fixture is announced first: {e}"
                );
            }
            if e["status"] == "full-time" {
                assert_eq!(e["minute"], 90);
            }
            if e["status"] == "full-time" && prev.is_some_and(|p| p["status"] == "live") {
                finished += 1;
                goals_total += e["homeScore"].as_u64().unwrap() + e["awayScore"].as_u64().unwrap();
            }
            last.insert(pitch, e.clone());
        }
        assert!(finished > 250, "{finished}");
        let per_match = goals_total as f64 / f64::from(finished);
        assert!((2.0..3.4).contains(&per_match), "{per_match} goals a match");
    }

    #[test]
    fn statuses_follow_the_match() {
        let events = run(2_000, 5);
        let pitch1: Vec<(&str, u64)> = events
            .iter()
            .filter(|e| e["pitch"] == 1)
            .map(|e| (e["status"].as_str().unwrap(), e["minute"].as_u64().unwrap()))
            .collect();
        let half = pitch1.iter().position(|&(s, _)| s == "half-time").unwrap();
        assert_eq!(pitch1[half].1, 45);
        let breaks = usize::from(HALF_TIME_ACTS) + 1;
        assert!(
            pitch1[half..half + breaks]
                .iter()
                .all(|&p| p == ("half-time", 45))
        );
        assert_eq!(
            pitch1[half + breaks],
            ("live", 45),
            "the second half starts"
        );
        let full = pitch1.iter().position(|&(s, _)| s == "full-time").unwrap();
        assert_eq!(pitch1[full].1, 90);
        let rest = usize::from(FULL_TIME_ACTS) + 1;
        assert!(
            pitch1[full..full + rest]
                .iter()
                .all(|&p| p == ("full-time", 90))
        );
        assert_eq!(pitch1[full + rest], ("upcoming", 0), "the next fixture");
        assert!(
            pitch1[..half]
                .iter()
                .all(|&(s, m)| s == "upcoming" || (s == "live" && m < 45))
        );
    }
}
