//! Who is subscribed to what: the index the fan-out walks for each event.
//!
//! Joining and leaving never wait for a fan-out. A subscriber that comes or
//! goes only records the change in a short list (a mutex held for a push);
//! the index itself is changed by whoever is about to read it: the fan-out,
//! before it offers an event, and the sweeper once a second when it can do
//! so without waiting. Because the fan-out applies every recorded join
//! before it offers anything, a subscriber that joined before an event was
//! stored is offered that event: "register, then read the history" stays
//! gap-free.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tidings_selector::{Selector, SelectorKind};

use crate::event::Event;
use crate::subscriber::Subscriber;

/// Subscriber keys are handed out by the hub, so a simple hash is safe for
/// them; topic strings come from clients and keep the DoS-resistant
/// default hasher.
type KeyMap = HashMap<u64, Arc<Subscriber>, BuildHasherDefault<KeyHasher>>;

/// An identity hash for the hub's sequential subscriber keys, mixed once so
/// that consecutive keys spread over the table.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A join or a leave not yet applied to the index.
#[derive(Debug)]
enum Change {
    Join(Arc<Subscriber>),
    Leave(Arc<Subscriber>),
}

/// The subscribers, indexed, and the changes waiting to be applied.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// The index. Written only by [`Registry::apply`]; read by the fan-out
    /// and the sweeper, which never exclude each other.
    index: RwLock<Index>,
    /// Joins and leaves in the order they happened, not yet in `index`.
    pending: Mutex<Vec<Change>>,
    /// Whether `pending` may hold something: lets readers skip its mutex.
    dirty: AtomicBool,
    /// Subscribers joined and not left, applied or not.
    count: AtomicUsize,
    /// The next subscriber key.
    next_key: AtomicU64,
}

/// Subscribers indexed by selector.
#[derive(Debug, Default)]
struct Index {
    /// Exact-topic selectors: one hash lookup per topic of an event.
    exact: HashMap<Box<str>, KeyMap>,
    /// `*` and URI templates, by source text: each distinct one is
    /// evaluated once per event, whatever the number of its subscribers.
    patterns: HashMap<Box<str>, (Selector, KeyMap)>,
    /// Everybody, for the sweeper and shutdown.
    all: KeyMap,
}

impl Registry {
    /// A key no other subscriber of this hub has.
    pub(crate) fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records that `sub` joined. Never waits for a fan-out.
    pub(crate) fn join(&self, sub: &Arc<Subscriber>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.record(Change::Join(Arc::clone(sub)));
    }

    /// Records that `sub` left: it is offered nothing more. Never waits for
    /// a fan-out.
    pub(crate) fn leave(&self, sub: &Arc<Subscriber>) {
        sub.leave();
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.record(Change::Leave(Arc::clone(sub)));
    }

    fn record(&self, change: Change) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(change);
        self.dirty.store(true, Ordering::Release);
    }

    /// Subscribers joined and not left.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Applies every recorded change, waiting for readers if it must. For
    /// the fan-out (before it offers anything) and shutdown.
    pub(crate) fn apply(&self) {
        if self.dirty.load(Ordering::Acquire) {
            self.apply_to(&mut self.write());
        }
    }

    /// Applies the recorded changes if that needs no waiting; for the
    /// sweeper, which runs on the async runtime.
    pub(crate) fn try_apply(&self) {
        if !self.dirty.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut index) = self.index.try_write() {
            self.apply_to(&mut index);
        }
    }

    fn apply_to(&self, index: &mut Index) {
        self.dirty.store(false, Ordering::Release);
        let changes =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        for change in changes {
            match change {
                Change::Join(sub) => index.insert(&sub),
                Change::Leave(sub) => index.remove(&sub),
            }
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies what is recorded and holds the index for reading: what the
    /// fan-out walks for a round of events.
    pub(crate) fn applied(&self) -> Snapshot<'_> {
        self.apply();
        Snapshot(self.read())
    }

    /// Calls `f` for every subscriber in the index (changes the index
    /// could not take without waiting come at the next call).
    pub(crate) fn for_each(&self, f: impl FnMut(&Arc<Subscriber>)) {
        self.try_apply();
        self.read().all.values().for_each(f);
    }
}

/// The index, held for reading (joins and leaves meanwhile are recorded,
/// not waited for).
#[derive(Debug)]
pub(crate) struct Snapshot<'a>(RwLockReadGuard<'a, Index>);

impl Snapshot<'_> {
    /// Calls `f` for every subscriber with a selector matching one of
    /// `event`'s topics; a subscriber may come more than once (the offer
    /// deduplicates by sequence number).
    pub(crate) fn for_each_match<'s>(&'s self, event: &Event, f: impl FnMut(&'s Arc<Subscriber>)) {
        self.0.for_each_match(event, f);
    }
}

impl Index {
    fn insert(&mut self, sub: &Arc<Subscriber>) {
        for selector in &sub.selectors {
            let key = Box::<str>::from(selector.as_str());
            let map = match selector.kind() {
                SelectorKind::Exact => self.exact.entry(key).or_default(),
                SelectorKind::Any | SelectorKind::Template => {
                    &mut self
                        .patterns
                        .entry(key)
                        .or_insert_with(|| (selector.clone(), KeyMap::default()))
                        .1
                }
            };
            map.insert(sub.key, Arc::clone(sub));
        }
        self.all.insert(sub.key, Arc::clone(sub));
    }

    fn remove(&mut self, sub: &Subscriber) {
        for selector in &sub.selectors {
            let key = selector.as_str();
            match selector.kind() {
                SelectorKind::Exact => {
                    if let Some(map) = self.exact.get_mut(key) {
                        map.remove(&sub.key);
                        if map.is_empty() {
                            self.exact.remove(key);
                        }
                    }
                }
                SelectorKind::Any | SelectorKind::Template => {
                    if let Some((_, map)) = self.patterns.get_mut(key) {
                        map.remove(&sub.key);
                        if map.is_empty() {
                            self.patterns.remove(key);
                        }
                    }
                }
            }
        }
        self.all.remove(&sub.key);
    }

    fn for_each_match<'a>(&'a self, event: &Event, mut f: impl FnMut(&'a Arc<Subscriber>)) {
        for topic in &event.topics {
            if let Some(map) = self.exact.get(&**topic) {
                map.values().for_each(&mut f);
            }
        }
        for (selector, map) in self.patterns.values() {
            if event.topics.iter().any(|t| selector.matches(t)) {
                map.values().for_each(&mut f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::event::Update;
    use crate::subscriber::{Offer, SubscribeRequest};

    fn subscriber(registry: &Registry, selector: &str) -> Arc<Subscriber> {
        let request = SubscribeRequest {
            selectors: vec![Selector::parse(selector)],
            ..SubscribeRequest::default()
        };
        let limit = crate::subscriber::QueueLimit {
            events: 16,
            bytes: 1 << 20,
        };
        Arc::new(Subscriber::new(
            registry.next_key(),
            &request,
            limit,
            None,
            0,
        ))
    }

    fn event(seq: u64, topic: &str) -> Arc<Event> {
        let update = Update {
            topics: vec![topic.into()],
            data: "x".into(),
            ..Update::default()
        };
        Arc::new(Event::encode(seq, &update, 0).unwrap())
    }

    fn matched(registry: &Registry, event: &Arc<Event>) -> Vec<u64> {
        let mut keys = Vec::new();
        registry
            .applied()
            .for_each_match(event, |sub| keys.push(sub.key));
        keys.sort_unstable();
        keys
    }

    #[test]
    fn joins_are_offered_the_next_event_and_leaves_nothing() {
        let registry = Registry::default();
        let exact = subscriber(&registry, "a");
        let template = subscriber(&registry, "{x}");
        registry.join(&exact);
        registry.join(&template);
        assert_eq!(registry.len(), 2);
        assert_eq!(
            matched(&registry, &event(1, "a")),
            [exact.key, template.key]
        );
        registry.leave(&exact);
        assert_eq!(registry.len(), 1);
        assert_eq!(
            exact.offer(&event(2, "a"), Instant::now(), 0),
            Offer::Skipped,
            "a subscriber that left is offered nothing, applied or not"
        );
        assert_eq!(matched(&registry, &event(3, "a")), [template.key]);
        registry.leave(&template);
        assert!(matched(&registry, &event(4, "a")).is_empty());
        let mut all = 0;
        registry.for_each(|_| all += 1);
        assert_eq!(all, 0);
    }

    /// Joining and leaving while a fan-out walks the index (holding it for
    /// reading) return at once: they never wait for the fan-out.
    #[test]
    fn joining_and_leaving_never_wait_for_a_fan_out() {
        let registry = Arc::new(Registry::default());
        let first = subscriber(&registry, "a");
        registry.join(&first);
        let mut churned = None;
        registry.applied().for_each_match(&event(1, "a"), |_| {
            let (done, finished) = mpsc::channel();
            let churner = Arc::clone(&registry);
            std::thread::spawn(move || {
                let newcomer = subscriber(&churner, "a");
                churner.join(&newcomer);
                churner.leave(&newcomer);
                let _ = done.send(newcomer.key);
            });
            churned = finished.recv_timeout(Duration::from_secs(5)).ok();
        });
        assert!(churned.is_some(), "join and leave waited for the fan-out");
        // The sweeper does not wait either: with the index busy it leaves
        // the changes for later.
        let pending = subscriber(&registry, "a");
        registry.join(&pending);
        let guard = registry.read();
        registry.try_apply();
        drop(guard);
        assert_eq!(matched(&registry, &event(2, "a")), [first.key, pending.key]);
    }
}
