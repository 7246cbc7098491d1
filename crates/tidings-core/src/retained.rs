//! Retained updates: for each topic, the newest event published on it with
//! `retain`, which a new subscriber gets before anything live, and the
//! hub's head, the newest event it holds, whose id closes that snapshot.
//!
//! One structure holds both, and the writer (the sequencer thread, or the
//! cluster follower) changes both in one critical section, after the store
//! has the events and before it offers them to subscribers. A subscription
//! joins the registry first, then reads the head and the topics here: every
//! event it gets in the snapshot has a place at or before the head, and
//! every event after the head reaches it live (its fan-out starts after the
//! join), so a client that resumes from the head (the `id: HEAD` block
//! after the snapshot) loses nothing and gets nothing twice. Live events at
//! or before the head that were queued meanwhile are skipped by the
//! subscription's `last_sent`.
//!
//! Topics are kept sorted (a B-tree): an exact selector is one lookup, a
//! template looks only at the topics that start with its literal prefix,
//! and `*` at all of them. Long scans take the lock for a bounded number of
//! topics at a time, so that the writer never waits for more than that. A
//! topic whose retained update changes after the head while a snapshot is
//! being read is left out of the snapshot: its new update (or its clearing)
//! has a place after the head and arrives live.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};
use tidings_selector::SelectorKind;

use crate::error::PublishError;
use crate::event::{Event, EventId, Retain, Update};
use crate::store::RetainedUpdates;
use crate::subscriber::Subscriber;

/// Topics a template's scan examines per hold of the lock: about as many
/// template matches as the sequencer may wait for (tens of microseconds).
const SCAN_CHUNK: usize = 256;

/// The newest event the hub holds: what `id: HEAD` names.
#[derive(Debug, Clone)]
pub(crate) enum Head {
    /// That event.
    Event(Arc<Event>),
    /// Only its place is known (the history no longer holds it, or a
    /// cluster hub has not followed the log that far yet): its id is the
    /// hub-made id of the place, which resumes by place.
    Place(u64),
}

impl Head {
    /// The head's place.
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Self::Event(event) => event.seq,
            Self::Place(seq) => *seq,
        }
    }

    /// The `id: …` block that closes a snapshot.
    fn block(&self) -> Option<Bytes> {
        let block = match self {
            Self::Event(event) => tidings_codec::last_event_id(&event.id),
            Self::Place(seq) => tidings_codec::last_event_id(&EventId::format(*seq)),
        };
        // Ids were checked when they were published.
        block.ok()
    }
}

/// The retained updates and the head.
#[derive(Debug, Default)]
struct State {
    /// The retained update of each topic that has one. An event retained
    /// for several topics is here once per topic, as the same `Arc`.
    topics: BTreeMap<Box<str>, Arc<Event>>,
    /// The newest event the hub holds; `None` while it holds none.
    head: Option<Head>,
}

/// The hub's retained updates.
#[derive(Debug)]
pub(crate) struct Retained {
    /// The topics and the head, changed together.
    state: RwLock<State>,
    /// How many topics may hold a retained update.
    limit: usize,
    /// `tidings_retained_topics`.
    topics_gauge: Gauge,
    /// `tidings_retained_sent_total`.
    sent: Counter,
}

/// What the retained updates would become if the publishes accepted so far
/// in one sequencer group were applied: the group's publishes are admitted
/// one after the other, all or nothing each.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Topics given a retained update (`true`) or cleared (`false`) by the
    /// publishes admitted so far.
    changes: HashMap<Box<str>, bool>,
    /// How many topics would hold one; `None` until the first retained
    /// publish of the group.
    count: Option<usize>,
}

/// The retained-update changes of `events`, in order: (topic, kept).
pub(crate) fn changes_of_events(events: &[Arc<Event>]) -> impl Iterator<Item = (&str, bool)> {
    events
        .iter()
        .filter(|e| e.retain != Retain::No)
        .flat_map(|e| {
            e.topics
                .iter()
                .map(move |t| (&**t, e.retain == Retain::Keep))
        })
}

/// The retained-update changes of `updates`, in order: (topic, kept).
pub(crate) fn changes_of_updates(updates: &[Update]) -> impl Iterator<Item = (&str, bool)> {
    updates.iter().flat_map(|u| {
        let retain = Retain::of(u);
        let topics: &[String] = if retain == Retain::No { &[] } else { &u.topics };
        topics
            .iter()
            .map(move |t| (t.as_str(), retain == Retain::Keep))
    })
}

impl Retained {
    pub(crate) fn new(limit: usize) -> Self {
        describe_gauge!(
            "tidings_retained_topics",
            "Topics holding a retained update."
        );
        describe_counter!(
            "tidings_retained_sent_total",
            "Retained updates written to new subscribers before their live events."
        );
        Self {
            state: RwLock::new(State::default()),
            limit,
            topics_gauge: gauge!("tidings_retained_topics"),
            sent: counter!("tidings_retained_sent_total"),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets what the hub holds when it starts: the retained updates its
    /// store or engine kept, and its head. Entries already here (a cluster
    /// follower may have started) are kept when newer.
    pub(crate) fn load(&self, retained: RetainedUpdates, head: Option<Head>) {
        let mut state = self.write();
        for (topic, event) in retained {
            set_newer(&mut state.topics, topic, event);
        }
        if let Some(head) = head {
            raise(&mut state.head, head);
        }
        self.topics_gauge.set(state.topics.len() as f64);
    }

    /// Admits one publish's retained-update changes (`(topic, kept)`, in
    /// order) into `admission`, or refuses the publish (and leaves
    /// `admission` as it was) when it would make more topics than the limit
    /// hold a retained update. A publish that does not add to their number
    /// is always admitted.
    pub(crate) fn admit<'a>(
        &self,
        admission: &mut Admission,
        changes: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> Result<(), PublishError> {
        let mut changes = changes.into_iter().peekable();
        if changes.peek().is_none() {
            return Ok(());
        }
        let state = self.read();
        let before = *admission.count.get_or_insert(state.topics.len());
        let mut count = before;
        let mut undo: Vec<(&str, Option<bool>)> = Vec::new();
        for (topic, keep) in changes {
            let held = admission
                .changes
                .get(topic)
                .copied()
                .unwrap_or_else(|| state.topics.contains_key(topic));
            match (held, keep) {
                (false, true) => count += 1,
                (true, false) => count = count.saturating_sub(1),
                _ => {}
            }
            undo.push((topic, admission.changes.insert(topic.into(), keep)));
        }
        if count > self.limit && count > before {
            for (topic, previous) in undo.into_iter().rev() {
                match previous {
                    Some(kept) => admission.changes.insert(topic.into(), kept),
                    None => admission.changes.remove(topic),
                };
            }
            return Err(PublishError::RetainedFull { limit: self.limit });
        }
        admission.count = Some(count);
        Ok(())
    }

    /// Applies newly stored `events` (in order): their retained-update
    /// changes, and the head. The writer calls it before it offers them to
    /// subscribers. An event older than a topic's retained update does not
    /// replace it (a cluster hub may follow entries it loaded newer).
    pub(crate) fn apply(&self, events: &[Arc<Event>]) {
        let Some(last) = events.last() else {
            return;
        };
        let mut state = self.write();
        let mut changed = false;
        for event in events {
            match event.retain {
                Retain::No => {}
                Retain::Keep => {
                    changed = true;
                    for topic in &event.topics {
                        set_newer(&mut state.topics, topic.clone(), Arc::clone(event));
                    }
                }
                Retain::Clear => {
                    changed = true;
                    for topic in &event.topics {
                        if state.topics.get(topic).is_some_and(|e| e.seq < event.seq) {
                            state.topics.remove(topic);
                        }
                    }
                }
            }
        }
        raise(&mut state.head, Head::Event(Arc::clone(last)));
        if changed {
            self.topics_gauge.set(state.topics.len() as f64);
        }
    }

    /// What a new subscriber without a resume point gets first: the
    /// retained update of every topic its selectors match that it may see,
    /// each event once, in ascending order, then the `id: HEAD` block.
    /// `sub` must have joined the registry already.
    pub(crate) fn snapshot(&self, sub: &Subscriber) -> Snapshot {
        let mut found = Vec::new();
        let mut prefixes: Vec<&str> = Vec::new();
        let head = {
            let state = self.read();
            let Some(head) = state.head.clone() else {
                return Snapshot::default();
            };
            let bound = head.seq();
            for selector in &sub.selectors {
                match selector.kind() {
                    SelectorKind::Exact => {
                        if let Some(event) = state.topics.get(selector.as_str())
                            && event.seq <= bound
                        {
                            found.push(Arc::clone(event));
                        }
                    }
                    SelectorKind::Any | SelectorKind::Template => {
                        prefixes.push(selector.literal_prefix());
                    }
                }
            }
            head
        };
        // A range inside another's is scanned with it.
        prefixes.sort_unstable();
        prefixes.dedup_by(|longer, shorter| longer.starts_with(*shorter));
        for prefix in prefixes {
            self.scan(sub, prefix, head.seq(), &mut found);
        }
        found.sort_unstable_by_key(|e| e.seq);
        found.dedup_by_key(|e| e.seq);
        found.retain(|e| sub.may_see(e));
        self.sent.increment(found.len() as u64);
        Snapshot {
            events: found.into_iter(),
            head_block: head.block(),
            head: head.seq(),
        }
    }

    /// Adds to `found` the retained updates at or before `bound` of the
    /// topics starting with `prefix` that a template (or `*`) of `sub`
    /// matches, holding the lock for [`SCAN_CHUNK`] topics at a time.
    fn scan(&self, sub: &Subscriber, prefix: &str, bound: u64, found: &mut Vec<Arc<Event>>) {
        let mut from: Bound<Box<str>> = Bound::Included(prefix.into());
        loop {
            let state = self.read();
            let mut next = None;
            for (n, (topic, event)) in state
                .topics
                .range::<Box<str>, _>((from.clone(), Bound::Unbounded))
                .enumerate()
            {
                if !topic.starts_with(prefix) {
                    break;
                }
                if n == SCAN_CHUNK {
                    next = Some(topic.clone());
                    break;
                }
                if event.seq <= bound
                    && sub
                        .selectors
                        .iter()
                        .any(|s| s.kind() != SelectorKind::Exact && s.matches(topic))
                {
                    found.push(Arc::clone(event));
                }
            }
            drop(state);
            match next {
                Some(topic) => from = Bound::Included(topic),
                None => return,
            }
        }
    }
}

/// Makes `event` the retained update of `topic` unless a newer one is.
fn set_newer(topics: &mut BTreeMap<Box<str>, Arc<Event>>, topic: Box<str>, event: Arc<Event>) {
    match topics.get_mut(&topic) {
        Some(held) if held.seq >= event.seq => {}
        Some(held) => *held = event,
        None => {
            topics.insert(topic, event);
        }
    }
}

/// Moves `head` to `new` if that is newer.
fn raise(head: &mut Option<Head>, new: Head) {
    if head.as_ref().is_none_or(|h| h.seq() < new.seq()) {
        *head = Some(new);
    }
}

/// The frames of a snapshot, handed out a batch at a time.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The retained updates still to send, in ascending order.
    events: std::vec::IntoIter<Arc<Event>>,
    /// The `id: HEAD` block, until sent.
    head_block: Option<Bytes>,
    /// The head's place (0: the hub held nothing): what the subscription
    /// has, in effect, seen once the snapshot is sent.
    pub(crate) head: u64,
}

impl Snapshot {
    /// Moves up to `max` frames into `out`; returns whether the snapshot is
    /// all sent.
    pub(crate) fn take(&mut self, out: &mut Vec<Bytes>, max: usize) -> bool {
        let before = out.len();
        while out.len() - before < max {
            match self.events.next() {
                Some(event) => out.push(event.frame.clone()),
                None => break,
            }
        }
        if out.len() - before < max
            && let Some(block) = self.head_block.take()
        {
            out.push(block);
        }
        self.events.len() == 0 && self.head_block.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tidings_selector::Selector;

    use super::*;
    use crate::subscriber::{SubscribeRequest, SubscriberAuth};

    fn event(seq: u64, topics: &[&str], data: &str, private: bool) -> Arc<Event> {
        let update = Update {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            data: data.into(),
            retain: true,
            private,
            ..Update::default()
        };
        Arc::new(Event::encode(seq, &update, 0).unwrap())
    }

    fn plain(seq: u64, topic: &str) -> Arc<Event> {
        let update = Update {
            topics: vec![topic.into()],
            data: "x".into(),
            ..Update::default()
        };
        Arc::new(Event::encode(seq, &update, 0).unwrap())
    }

    fn sub(selectors: &[&str], private: Option<&[&str]>) -> Subscriber {
        let request = SubscribeRequest {
            selectors: selectors.iter().map(|s| Selector::parse(s)).collect(),
            last_event_id: None,
            auth: private.map(|p| SubscriberAuth {
                private_selectors: p.iter().map(|s| Selector::parse(s)).collect(),
                ..SubscriberAuth::default()
            }),
        };
        let limit = crate::subscriber::QueueLimit {
            events: 16,
            bytes: 1 << 20,
        };
        Subscriber::new(1, &request, limit, None, 0)
    }

    fn taken(mut snapshot: Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        while !snapshot.take(&mut out, 2) {}
        out.iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
    }

    fn ids(frames: &[String]) -> Vec<&str> {
        frames
            .iter()
            .map(|f| f.lines().next().unwrap().trim_start_matches("id: "))
            .collect()
    }

    #[test]
    fn each_matching_event_once_in_order_then_the_head() {
        let retained = Retained::new(100);
        retained.apply(&[
            event(1, &["a/1", "b/1"], "one", false),
            event(2, &["a/2"], "two", false),
            plain(3, "a/1"),
            event(4, &["c"], "four", false),
            plain(5, "z"),
        ]);
        let frames = taken(retained.snapshot(&sub(&["a/{x}", "b/1", "*", "c"], None)));
        assert_eq!(
            ids(&frames),
            [
                "urn:tidings:1",
                "urn:tidings:2",
                "urn:tidings:4",
                "urn:tidings:5"
            ]
        );
        assert_eq!(frames.last().unwrap(), "id: urn:tidings:5\n\n");
        let frames = taken(retained.snapshot(&sub(&["b/{x}"], None)));
        assert_eq!(ids(&frames), ["urn:tidings:1", "urn:tidings:5"]);
        let frames = taken(retained.snapshot(&sub(&["nothing"], None)));
        assert_eq!(frames, ["id: urn:tidings:5\n\n"]);
    }

    #[test]
    fn an_empty_hub_sends_nothing() {
        let retained = Retained::new(100);
        assert!(taken(retained.snapshot(&sub(&["*"], None))).is_empty());
    }

    #[test]
    fn newer_replaces_clears_remove_and_older_never_wins() {
        let retained = Retained::new(100);
        retained.apply(&[event(10, &["a", "b"], "1", false)]);
        retained.apply(&[event(11, &["a"], "2", false)]);
        retained.apply(&[event(12, &["b"], "", false)]);
        let frames = taken(retained.snapshot(&sub(&["*"], None)));
        assert_eq!(ids(&frames), ["urn:tidings:11", "urn:tidings:12"]);
        // A cluster hub following entries older than what it loaded.
        retained.apply(&[event(9, &["a"], "old", false)]);
        retained.apply(&[event(8, &["a"], "", false)]);
        let frames = taken(retained.snapshot(&sub(&["a"], None)));
        assert_eq!(ids(&frames), ["urn:tidings:11", "urn:tidings:12"]);
    }

    #[test]
    fn private_ones_only_to_the_authorized() {
        let retained = Retained::new(100);
        retained.apply(&[
            event(1, &["s/1"], "secret", true),
            event(2, &["p"], "public", false),
        ]);
        let anonymous = taken(retained.snapshot(&sub(&["*"], None)));
        assert_eq!(ids(&anonymous), ["urn:tidings:2", "urn:tidings:2"]);
        let allowed = taken(retained.snapshot(&sub(&["*"], Some(&["s/{x}"]))));
        assert_eq!(
            ids(&allowed),
            ["urn:tidings:1", "urn:tidings:2", "urn:tidings:2"]
        );
    }

    #[test]
    fn a_loaded_entry_after_the_head_waits_for_the_log() {
        let retained = Retained::new(100);
        retained.load(
            vec![
                ("a".into(), event(7, &["a"], "1", false)),
                ("b".into(), event(3, &["b"], "2", false)),
            ],
            Some(Head::Place(5)),
        );
        let frames = taken(retained.snapshot(&sub(&["*"], None)));
        assert_eq!(frames.last().unwrap(), "id: urn:tidings:5\n\n");
        assert_eq!(ids(&frames), ["urn:tidings:3", "urn:tidings:5"]);
    }

    #[test]
    fn long_scans_take_the_lock_in_chunks_and_miss_nothing() {
        let retained = Retained::new(10_000);
        let events: Vec<_> = (1..=1000)
            .map(|i| event(i, &[&format!("t/{i:04}")], "x", false))
            .collect();
        retained.apply(&events);
        let started = Instant::now();
        let frames = taken(retained.snapshot(&sub(&["t/{n}", "t/0001"], None)));
        assert_eq!(frames.len(), 1001, "{:?}", started.elapsed());
        let seqs: Vec<u64> = ids(&frames[..1000])
            .iter()
            .map(|id| EventId::parse(id).unwrap())
            .collect();
        assert_eq!(seqs, (1..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn admission_counts_topics_and_refuses_whole_publishes() {
        let retained = Retained::new(2);
        retained.apply(&[event(1, &["a"], "1", false)]);
        let mut admission = Admission::default();
        // Replacing and clearing never count.
        retained.admit(&mut admission, [("a", true)]).unwrap();
        retained.admit(&mut admission, [("b", true)]).unwrap();
        let refused = retained.admit(&mut admission, [("a", false), ("c", true), ("d", true)]);
        assert!(matches!(
            refused,
            Err(PublishError::RetainedFull { limit: 2 })
        ));
        // Nothing of the refused publish stuck: "a" is still held.
        assert!(retained.admit(&mut admission, [("c", true)]).is_err());
        retained
            .admit(&mut admission, [("a", false), ("c", true)])
            .unwrap();
        retained
            .admit(&mut admission, [("c", true), ("b", false)])
            .unwrap();
        retained.admit(&mut admission, [("e", true)]).unwrap();
        assert!(retained.admit(&mut admission, [("f", true)]).is_err());
        // Ordinary publishes never look.
        retained.admit(&mut admission, []).unwrap();
    }
}
