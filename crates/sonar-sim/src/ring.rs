//! A bounded, append-only log addressed by sequence numbers.
//!
//! Messages and webhook deliveries grow with every request; under a load test that is tens of
//! thousands a second. [`Ring`] keeps only the newest `capacity` entries, so the simulator's
//! memory stays bounded however long a benchmark runs. Entries keep their sequence number for
//! life; looking up an evicted one yields `None`.

use std::collections::VecDeque;
use std::ops::{Index, IndexMut};

use serde::{Serialize, Serializer};

#[derive(Debug)]
pub(crate) struct Ring<T> {
    items: VecDeque<T>,
    /// The sequence number of `items[0]`.
    first: u64,
    capacity: usize,
}

impl<T> Ring<T> {
    /// An empty ring keeping at most `capacity` (at least 1) entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            first: 0,
            capacity: capacity.max(1),
        }
    }

    /// Appends `item`; returns its sequence number and the entry evicted to make room.
    pub(crate) fn push(&mut self, item: T) -> (u64, Option<T>) {
        let evicted = if self.items.len() == self.capacity {
            self.first += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        (self.next_seq() - 1, evicted)
    }

    /// The sequence number the next pushed entry gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.first + self.items.len() as u64
    }

    fn position(&self, seq: u64) -> Option<usize> {
        usize::try_from(seq.checked_sub(self.first)?).ok()
    }

    /// Entry `seq`, unless evicted or not yet pushed.
    pub(crate) fn get(&self, seq: u64) -> Option<&T> {
        self.items.get(self.position(seq)?)
    }

    pub(crate) fn get_mut(&mut self, seq: u64) -> Option<&mut T> {
        let position = self.position(seq)?;
        self.items.get_mut(position)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

/// For entries known to be retained: the newest one, and those reached through an index that
/// drops evicted entries. Panics otherwise, like slice indexing.
impl<T> Index<u64> for Ring<T> {
    type Output = T;

    fn index(&self, seq: u64) -> &T {
        match self.get(seq) {
            Some(item) => item,
            None => panic!("ring entry {seq} is not retained"),
        }
    }
}

impl<T> IndexMut<u64> for Ring<T> {
    fn index_mut(&mut self, seq: u64) -> &mut T {
        match self.get_mut(seq) {
            Some(item) => item,
            None => panic!("ring entry {seq} is not retained"),
        }
    }
}

impl<T: Serialize> Serialize for Ring<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.items.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_entries() {
        let mut ring = Ring::new(2);
        assert_eq!(ring.push('a'), (0, None));
        assert_eq!(ring.push('b'), (1, None));
        assert_eq!(ring.push('c'), (2, Some('a')));
        assert_eq!(ring.get(0), None);
        assert_eq!(ring.get(1), Some(&'b'));
        assert_eq!(ring[2], 'c');
        assert_eq!(ring.get(3), None);
        assert_eq!(ring.len(), 2);
        if let Some(entry) = ring.get_mut(2) {
            *entry = 'C';
        }
        assert_eq!(
            serde_json::to_value(&ring).ok(),
            Some(serde_json::json!(["b", "C"]))
        );
    }
}
