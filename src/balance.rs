//! Endpoint selection algorithms, kept apart from health: a balancer picks among the endpoints the
//! caller says are usable. Pure per-shard state (`Cell`), no atomics; unit-tested without a runtime.

use std::cell::Cell;

/// Plain round-robin over endpoint indices.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl RoundRobin {
    /// The next endpoint of `n` that `usable` accepts, or `None` when none does.
    pub fn pick(&self, n: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.next.get();
        for k in 0..n {
            let i = (start + k) % n;
            if usable(i) {
                self.next.set((i + 1) % n);
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_skips_unusable() {
        let rr = RoundRobin::default();
        let picks: Vec<_> = (0..4).map(|_| rr.pick(3, |_| true).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0]);
        assert_eq!(rr.pick(3, |i| i != 1), Some(2));
        assert_eq!(rr.pick(3, |_| false), None);
    }
}
