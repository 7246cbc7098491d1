//! History: the one small trait every store sits behind, and the volatile
//! in-memory store.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clock;
use crate::event::{Event, Retain};

/// The range of sequence numbers a store holds: `first..next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The oldest retained event's sequence number; equal to `next` when
    /// nothing is retained.
    pub first: u64,
    /// The sequence number the next event gets.
    pub next: u64,
}

impl Bounds {
    /// Whether resuming after `seq` loses nothing: every event after it is
    /// still retained (or not yet published).
    pub fn resumable_after(&self, seq: u64) -> bool {
        let following = seq.saturating_add(1);
        self.first <= following && following <= self.next
    }
}

/// How much history to keep. `None` is no limit on that axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many events.
    pub max_events: Option<u64>,
    /// Keep events younger than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many bytes of frames.
    pub max_bytes: Option<u64>,
}

impl Default for Retention {
    /// 1,000,000 events, 7 days, 1 GiB: whichever is reached first.
    fn default() -> Self {
        Self {
            max_events: Some(1_000_000),
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_bytes: Some(1 << 30),
        }
    }
}

/// What kind of failure a [`StoreError`] is: it decides what publishers are
/// told and whether the hub waits for the store to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    /// The store's disk is full: nothing more can be written until space
    /// is freed. Publishes get 507.
    Full,
    /// The store cannot be used now (an I/O error, a file being reopened);
    /// it may come back by itself. Publishes get 503.
    Unavailable,
    /// The store was closed: the hub is stopping.
    Closed,
    /// What the store holds is damaged (a page or record that does not
    /// read back).
    Damaged,
    /// The call itself was wrong (an append out of order): a bug, not a
    /// fault of the storage.
    Invalid,
}

impl StoreErrorKind {
    /// Whether this failure means the store cannot write now, for reasons
    /// that may pass (space freed, a file reopened): the hub then refuses
    /// publishes and tries to recover in the background.
    pub fn is_outage(self) -> bool {
        matches!(self, Self::Full | Self::Unavailable)
    }
}

/// A store failed; the hub answers publishers with an error and keeps going.
#[derive(Debug, thiserror::Error)]
#[error("history store: {message}")]
pub struct StoreError {
    /// What kind of failure: decides the answer and the recovery.
    pub kind: StoreErrorKind,
    /// What went wrong, for people.
    pub message: String,
    /// The underlying error, when there is one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind` with a message only.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(
        kind: StoreErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// An [`Unavailable`](StoreErrorKind::Unavailable) error with a message
    /// only.
    pub fn msg(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Unavailable, message)
    }

    /// An [`Unavailable`](StoreErrorKind::Unavailable) error caused by
    /// `source`.
    pub fn from_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::with_source(StoreErrorKind::Unavailable, message, source)
    }
}

/// The history of one hub: an append-only log of events in sequence order,
/// indexed by sequence number and by publisher-given id.
///
/// Only the sequencer appends, one batch at a time, in order. Reads come
/// from any task. A store that may block on I/O says so with
/// [`Store::blocking`], and the hub then calls it off the async runtime.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Appends `events` (consecutive, after everything stored). They must be
    /// durable, as far as the store promises durability, when this returns
    /// `Ok`; on `Err`, none of them may be visible. In the same step, an
    /// event whose [`retain`](Event::retain) is [`Retain::Keep`] becomes the
    /// retained update of each of its topics, and one with
    /// [`Retain::Clear`] removes theirs (see [`Store::retained`]).
    fn append(&self, events: &[Arc<Event>]) -> Result<(), StoreError>;

    /// Up to `limit` retained events with a sequence number above `after`,
    /// in order.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event>>, StoreError>;

    /// The retained event whose id is `id`.
    fn find_id(&self, id: &str) -> Result<Option<Arc<Event>>, StoreError>;

    /// The retained range.
    fn bounds(&self) -> Result<Bounds, StoreError>;

    /// Drops what the retention policy no longer keeps, as of `now_ms`
    /// (Unix milliseconds); returns how many events went. Called in the
    /// background, never on the publish path.
    fn enforce_retention(&self, now_ms: u64) -> Result<u64, StoreError>;

    /// Whether the calls above may block on I/O.
    fn blocking(&self) -> bool;

    /// The retained updates as the appends left them: for each topic that
    /// has one, the newest event appended with [`Retain::Keep`] on it
    /// (unless a later [`Retain::Clear`] removed it), as (topic, event)
    /// pairs; an event retained for several topics comes once per topic.
    /// Retention never removes them. The hub reads them once, when it
    /// starts, and keeps them in memory from then on. The default keeps
    /// none: a store that cannot keep them across restarts.
    fn retained(&self) -> Result<RetainedUpdates, StoreError> {
        Ok(Vec::new())
    }

    /// Closes the store cleanly (a durable store releases its file, marked
    /// as closed, so that the next start need not check it); every call
    /// after it fails. The hub calls it once, at the end of
    /// [`Hub::shutdown`](crate::Hub::shutdown), after the last append.
    fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Called in the background (at once, then about once a second) while
    /// the store fails with an [outage](StoreErrorKind::is_outage): makes
    /// the store usable again if it can (the durable store reopens its file
    /// after an I/O error) and returns `Ok` once it can write again, the
    /// write that failed included as far as the store can tell. Until then
    /// it may refuse writes at once. A store whose failures end with their
    /// cause keeps this default.
    fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Retained updates as (topic, event) pairs: an event retained for several
/// topics comes once per topic (see [`Store::retained`]).
pub type RetainedUpdates = Vec<(Box<str>, Arc<Event>)>;

/// The first sequence number of a brand-new history: the current time in
/// microseconds, so that ids keep growing even across a lost history and an
/// old id can never name a new event.
pub fn initial_seq() -> u64 {
    clock::unix_us().max(1)
}

/// A volatile store: a ring of recent events in memory, gone when the
/// process ends. Retention by count and bytes is enforced as events come
/// in, by age in the background.
#[derive(Debug)]
pub struct MemoryStore {
    /// What to keep.
    retention: Retention,
    /// The ring and its indexes.
    ring: RwLock<Ring>,
}

#[derive(Debug)]
struct Ring {
    /// Retained events, oldest first, consecutive sequence numbers.
    events: VecDeque<Arc<Event>>,
    /// The retained update of each topic that has one; never trimmed.
    retained: HashMap<Box<str>, Arc<Event>>,
    /// Publisher-given ids of retained events.
    ids: HashMap<Box<str>, u64>,
    /// Sum of the retained frames' lengths.
    bytes: u64,
    /// The sequence number the next event gets.
    next: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            ring: RwLock::new(Ring {
                events: VecDeque::new(),
                retained: HashMap::new(),
                ids: HashMap::new(),
                bytes: 0,
                next: initial_seq(),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Ring> {
        self.ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Ring {
    fn first(&self) -> u64 {
        self.events.front().map_or(self.next, |e| e.seq)
    }

    fn position(&self, seq: u64) -> usize {
        self.events.partition_point(|e| e.seq < seq)
    }

    fn pop_oldest(&mut self) {
        if let Some(old) = self.events.pop_front() {
            self.bytes -= old.frame.len() as u64;
            if self.ids.get(&*old.id) == Some(&old.seq) {
                self.ids.remove(&*old.id);
            }
        }
    }

    fn trim(&mut self, retention: &Retention, now_ms: Option<u64>) -> u64 {
        let mut removed = 0;
        while let Some(oldest) = self.events.front() {
            let too_many = retention
                .max_events
                .is_some_and(|max| self.events.len() as u64 > max);
            let too_big = retention.max_bytes.is_some_and(|max| self.bytes > max);
            let too_old = match (retention.max_age, now_ms) {
                (Some(age), Some(now)) => {
                    let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
                    oldest.time_ms.saturating_add(age_ms) < now
                }
                _ => false,
            };
            if !(too_many || too_big || too_old) {
                break;
            }
            self.pop_oldest();
            removed += 1;
        }
        removed
    }
}

impl Store for MemoryStore {
    fn append(&self, events: &[Arc<Event>]) -> Result<(), StoreError> {
        let mut ring = self.write();
        for event in events {
            // An empty ring takes any start: in cluster mode it fills from
            // the engine's oldest entry.
            if event.seq < ring.next && !ring.events.is_empty() {
                return Err(StoreError::new(
                    StoreErrorKind::Invalid,
                    format!("sequence number {} is not after {}", event.seq, ring.next),
                ));
            }
            ring.next = event.seq + 1;
            ring.bytes += event.frame.len() as u64;
            if EventIdKind::of(event) == EventIdKind::Publisher {
                ring.ids.insert(event.id.clone(), event.seq);
            }
            match event.retain {
                Retain::No => {}
                Retain::Keep => {
                    for topic in &event.topics {
                        ring.retained.insert(topic.clone(), Arc::clone(event));
                    }
                }
                Retain::Clear => {
                    for topic in &event.topics {
                        ring.retained.remove(topic);
                    }
                }
            }
            ring.events.push_back(Arc::clone(event));
        }
        ring.trim(&self.retention, None);
        Ok(())
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event>>, StoreError> {
        let ring = self.read();
        let start = ring.position(after.saturating_add(1));
        Ok(ring.events.range(start..).take(limit).cloned().collect())
    }

    fn find_id(&self, id: &str) -> Result<Option<Arc<Event>>, StoreError> {
        let ring = self.read();
        let Some(&seq) = ring.ids.get(id) else {
            return Ok(None);
        };
        let at = ring.position(seq);
        Ok(ring.events.get(at).filter(|e| e.seq == seq).cloned())
    }

    fn bounds(&self) -> Result<Bounds, StoreError> {
        let ring = self.read();
        Ok(Bounds {
            first: ring.first(),
            next: ring.next,
        })
    }

    fn enforce_retention(&self, now_ms: u64) -> Result<u64, StoreError> {
        Ok(self.write().trim(&self.retention, Some(now_ms)))
    }

    fn blocking(&self) -> bool {
        false
    }

    fn retained(&self) -> Result<RetainedUpdates, StoreError> {
        let ring = self.read();
        Ok(ring
            .retained
            .iter()
            .map(|(topic, event)| (topic.clone(), Arc::clone(event)))
            .collect())
    }
}

/// Who made an event's id: stores index only publishers' ids, since the
/// hub's own can be read back as a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventIdKind {
    /// `urn:tidings:<seq>` of the event's own sequence number.
    Hub,
    /// Anything else.
    Publisher,
}

impl EventIdKind {
    /// The kind of `event`'s id.
    pub fn of(event: &Event) -> Self {
        if crate::event::EventId::parse(&event.id) == Some(event.seq) {
            Self::Hub
        } else {
            Self::Publisher
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Update;

    fn event(seq: u64, id: Option<&str>, time_ms: u64) -> Arc<Event> {
        let update = Update {
            topics: vec!["t".into()],
            data: format!("event {seq}"),
            id: id.map(Into::into),
            ..Update::default()
        };
        Arc::new(Event::encode(seq, &update, time_ms).unwrap())
    }

    fn seqs(events: &[Arc<Event>]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn reads_and_finds() {
        let store = MemoryStore::new(Retention::default());
        let base = store.bounds().unwrap().next;
        let batch: Vec<_> = (0..5)
            .map(|i| event(base + i, (i == 2).then_some("mine"), 0))
            .collect();
        store.append(&batch).unwrap();
        assert_eq!(
            seqs(&store.read_after(base + 1, 2).unwrap()),
            [base + 2, base + 3]
        );
        assert_eq!(seqs(&store.read_after(0, 100).unwrap()).len(), 5);
        assert_eq!(store.find_id("mine").unwrap().unwrap().seq, base + 2);
        assert!(store.find_id("other").unwrap().is_none());
        assert_eq!(
            store.bounds().unwrap(),
            Bounds {
                first: base,
                next: base + 5
            }
        );
        assert!(store.append(&[event(base + 1, None, 0)]).is_err());
    }

    #[test]
    fn retention_by_count_bytes_and_age() {
        let store = MemoryStore::new(Retention {
            max_events: Some(3),
            max_age: Some(Duration::from_millis(100)),
            max_bytes: None,
        });
        let base = store.bounds().unwrap().next;
        let batch: Vec<_> = (0..5)
            .map(|i| event(base + i, (i == 0).then_some("old"), i * 100))
            .collect();
        store.append(&batch).unwrap();
        assert_eq!(store.bounds().unwrap().first, base + 2);
        assert!(
            store.find_id("old").unwrap().is_none(),
            "index follows trimming"
        );
        assert_eq!(store.enforce_retention(450).unwrap(), 2);
        assert_eq!(seqs(&store.read_after(0, 10).unwrap()), [base + 4]);

        // Hub-made ids of sequence numbers with as many digits as the
        // store's make frames of the same length.
        let frame_len = event(initial_seq(), None, 0).frame.len() as u64;
        let store = MemoryStore::new(Retention {
            max_events: None,
            max_age: None,
            max_bytes: Some(frame_len * 2),
        });
        let base = store.bounds().unwrap().next;
        let batch: Vec<_> = (0..4).map(|i| event(base + i, None, 0)).collect();
        store.append(&batch).unwrap();
        assert_eq!(store.read_after(0, 10).unwrap().len(), 2);
    }

    #[test]
    fn retained_updates_outlive_retention_and_clear() {
        let store = MemoryStore::new(Retention {
            max_events: Some(1),
            max_age: None,
            max_bytes: None,
        });
        let base = store.bounds().unwrap().next;
        let retained = |seq: u64, topics: &[&str], data: &str| {
            let update = Update {
                topics: topics.iter().map(|t| (*t).to_owned()).collect(),
                data: data.into(),
                retain: true,
                ..Update::default()
            };
            Arc::new(Event::encode(seq, &update, 0).unwrap())
        };
        store
            .append(&[retained(base, &["a", "b"], "1"), event(base + 1, None, 0)])
            .unwrap();
        store.append(&[retained(base + 2, &["b"], "2")]).unwrap();
        assert_eq!(store.read_after(0, 10).unwrap().len(), 1, "history trimmed");
        let mut kept: Vec<(String, u64)> = store
            .retained()
            .unwrap()
            .into_iter()
            .map(|(t, e)| (t.into(), e.seq))
            .collect();
        kept.sort();
        assert_eq!(kept, [("a".into(), base), ("b".into(), base + 2)]);
        store.append(&[retained(base + 3, &["a"], "")]).unwrap();
        let kept: Vec<_> = store.retained().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(&*kept[0].0, "b");
    }

    #[test]
    fn resumable() {
        let b = Bounds {
            first: 10,
            next: 20,
        };
        assert!(b.resumable_after(9));
        assert!(b.resumable_after(15));
        assert!(b.resumable_after(19));
        assert!(!b.resumable_after(8));
        assert!(!b.resumable_after(20));
        let empty = Bounds {
            first: 20,
            next: 20,
        };
        assert!(empty.resumable_after(19));
        assert!(!empty.resumable_after(18));
    }
}
