//! A bounded set: remembers the most recent `capacity` keys, forgetting the oldest first, so
//! memory stays flat however long the crawl runs.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// A set of at most `capacity` keys; inserting into a full set forgets the oldest key.
#[derive(Debug)]
pub struct BoundedSet<K> {
    set: HashSet<K>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Copy> BoundedSet<K> {
    /// An empty set holding at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        BoundedSet {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds `k`; true if it was not there.
    pub fn insert(&mut self, k: K) -> bool {
        if !self.set.insert(k) {
            return false;
        }
        self.order.push_back(k);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// True if `k` is remembered.
    pub fn contains(&self, k: &K) -> bool {
        self.set.contains(k)
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True if nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest() {
        let mut s = BoundedSet::new(3);
        assert!(s.insert(1) && s.insert(2) && s.insert(3));
        assert!(!s.insert(2));
        assert!(s.insert(4));
        assert_eq!(s.len(), 3);
        assert!(!s.contains(&1) && s.contains(&4));
        for i in 0..10_000 {
            s.insert(i);
        }
        assert_eq!(s.len(), 3);
    }
}
