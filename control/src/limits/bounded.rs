//! A map that holds at most a fixed number of keys. When it is full, a new
//! key takes the place of the key used least recently: a flood of new keys
//! pushes out idle ones (the flood's own first) instead of locking every
//! newcomer out, and memory stays the same whatever clients send.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub struct Bounded<V> {
    capacity: usize,
    /// Each key's value and the tick of its last use.
    entries: HashMap<Arc<str>, (u64, V)>,
    /// Keys by the tick of their last use, least recent first.
    by_use: BTreeMap<u64, Arc<str>>,
    tick: u64,
}

/// A key pushed out to make room, with its value.
pub type Evicted<V> = Option<(Arc<str>, V)>;

impl<V> Bounded<V> {
    /// A map of at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Bounded<V> {
        Bounded {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `key`, now the most recently used. A key not there
    /// yet gets `fresh()`; when the map is full, the least recently used
    /// key makes room and is returned with its value.
    pub fn entry(&mut self, key: &str, fresh: impl FnOnce() -> V) -> (&mut V, Evicted<V>) {
        self.tick += 1;
        let tick = self.tick;
        let evicted = if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            self.evict_least_recent()
        } else {
            None
        };
        let key: Arc<str> = Arc::from(key);
        self.by_use.insert(tick, key.clone());
        let slot = self.entries.entry(key).or_insert_with(|| (tick, fresh()));
        if slot.0 != tick {
            self.by_use.remove(&slot.0);
            slot.0 = tick;
        }
        (&mut slot.1, evicted)
    }

    /// The value under `key`, without counting as a use.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let (tick, v) = self.entries.remove(key)?;
        self.by_use.remove(&tick);
        Some(v)
    }

    /// Removes and returns every entry `pick` chooses.
    pub fn take_where(&mut self, mut pick: impl FnMut(&V) -> bool) -> Vec<(Arc<str>, V)> {
        let keys: Vec<Arc<str>> = self
            .entries
            .iter()
            .filter(|(_, (_, v))| pick(v))
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.remove(&k).map(|v| (k, v)))
            .collect()
    }

    fn evict_least_recent(&mut self) -> Evicted<V> {
        let (_, key) = self.by_use.pop_first()?;
        self.entries.remove_entry(&key).map(|(k, (_, v))| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_lets_the_newcomer_in_and_pushes_out_the_least_recent() {
        let mut m = Bounded::new(3);
        for k in ["a", "b", "c"] {
            let (_, out) = m.entry(k, || 0);
            assert!(out.is_none());
        }
        // "a" is used again, so "b" is now the least recent.
        *m.entry("a", || 0).0 += 1;
        let (v, out) = m.entry("d", || 7);
        assert_eq!(*v, 7);
        assert_eq!(out.map(|(k, _)| k.to_string()), Some("b".into()));
        assert_eq!(m.len(), 3);
        assert_eq!(m.get("a"), Some(&1));
        assert!(m.get("b").is_none());
    }

    #[test]
    fn memory_stays_at_the_cap_whatever_the_flood() {
        let mut m = Bounded::new(100);
        for i in 0..10_000 {
            m.entry(&i.to_string(), || i);
        }
        assert_eq!(m.len(), 100);
        assert_eq!(m.by_use.len(), 100, "the use order holds no stale keys");
        assert_eq!(m.get("9999"), Some(&9999));
        assert!(m.get("9899").is_none());
    }

    #[test]
    fn removal_and_take_keep_the_order_consistent() {
        let mut m = Bounded::new(4);
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            m.entry(k, || i);
        }
        assert_eq!(m.remove("a"), Some(0));
        let taken = m.take_where(|v| *v >= 2);
        assert_eq!(taken.len(), 2);
        assert_eq!(m.len(), 1);
        assert_eq!(m.by_use.len(), 1);
        m.entry("e", || 9);
        m.entry("f", || 9);
        assert_eq!(m.len(), 3, "room freed by removal is reused, not evicted");
    }
}
