//! What one shard admitted per (route, client key) since its last report to the limits thread:
//! the shard's side of a `scope = "global"` limit. Counted per request on the shard thread with
//! no allocation once the map has grown to the shard's working set (its capacity is kept across
//! reports), drained into one batch per `sync` period.

use std::collections::HashMap;

/// A route's index in the config version and a client key (`ip_key` / `bytes_key`).
pub type CountKey = (u32, u128);

/// Admitted requests per key since the last [`Admitted::drain_into`].
#[derive(Debug, Default)]
pub struct Admitted {
    counts: HashMap<CountKey, u64>,
}

impl Admitted {
    /// Counts one admitted request.
    pub fn record(&mut self, route: u32, key: u128) {
        *self.counts.entry((route, key)).or_insert(0) += 1;
    }

    /// Moves the counts into `batch` (cleared first, both keep their capacity), for the report
    /// sent once per `sync`.
    pub fn drain_into(&mut self, batch: &mut Vec<(CountKey, u64)>) {
        batch.clear();
        batch.extend(self.counts.drain());
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Distinct (route, key) pairs counted.
    pub fn len(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_route_and_key_and_drains_keeping_capacity() {
        let mut a = Admitted::default();
        for _ in 0..3 {
            a.record(0, 7);
        }
        a.record(1, 7);
        a.record(0, 8);
        let mut batch = Vec::new();
        a.drain_into(&mut batch);
        batch.sort();
        assert_eq!(batch, [((0, 7), 3), ((0, 8), 1), ((1, 7), 1)]);
        assert!(a.is_empty());
        let cap = a.counts.capacity();
        assert!(cap >= 3);
        a.record(0, 7);
        a.drain_into(&mut batch);
        assert_eq!(batch, [((0, 7), 1)]);
        assert_eq!(a.counts.capacity(), cap);
    }
}
