//! Who is subscribed to what: the index the fan-out walks for each event.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

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

/// Subscribers indexed by selector.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Exact-topic selectors: one hash lookup per topic of an event.
    exact: HashMap<Box<str>, KeyMap>,
    /// `*` and URI templates, by source text: each distinct one is
    /// evaluated once per event, whatever the number of its subscribers.
    patterns: HashMap<Box<str>, (Selector, KeyMap)>,
    /// Everybody, for the sweeper and shutdown.
    all: KeyMap,
}

impl Registry {
    pub(crate) fn insert(&mut self, sub: &Arc<Subscriber>) {
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

    pub(crate) fn remove(&mut self, sub: &Subscriber) {
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

    /// Calls `f` for every subscriber with a selector matching one of
    /// `event`'s topics; a subscriber may come more than once (the offer
    /// deduplicates by sequence number).
    pub(crate) fn for_each_match(&self, event: &Event, mut f: impl FnMut(&Arc<Subscriber>)) {
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

    /// Every subscriber.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Subscriber>> {
        self.all.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }
}
