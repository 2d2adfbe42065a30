//! Endpoint selection for one cluster, kept apart from health: a [`Balancer`] picks among the
//! endpoints its caller says are usable ([`Candidates`]: health and breaker decide that, the
//! algorithm never does). Runs on a shard thread: cursors, weights, the PRNG and each endpoint's
//! [`PeakEwma`] are plain `Cell`s owned by that shard; a pick never allocates, never reads the clock
//! (time is passed in) and never panics.
//!
//! One concept per file: [`Algorithm`] (its config spelling) in `algorithm.rs`, the round-robin
//! pickers in `round_robin.rs`, Maglev hashing in `maglev.rs`, [`PeakEwma`] in `ewma.rs`; this file
//! holds the [`Candidates`] view and the [`Balancer`] that dispatches among them.

mod algorithm;
mod ewma;
mod maglev;
mod round_robin;

use std::cell::Cell;
use std::time::Instant;

pub use algorithm::{Algorithm, HashOn};
pub use ewma::PeakEwma;
pub use round_robin::RoundRobin;

use crate::policy::hash::fold_mul;
use maglev::Maglev;
use round_robin::smooth_weighted;

// === Candidates ===

/// The caller's view of one cluster's endpoints on this shard, indexed `0..len()` in the same
/// order as the `ids` given to [`Balancer::new`].
pub trait Candidates {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Health and breaker both allow a request to endpoint `i` now.
    fn usable(&self, i: usize) -> bool;
    /// Requests outstanding to endpoint `i` from this shard.
    fn in_flight(&self, i: usize) -> u32;
    /// Load of endpoint `i` for [`Algorithm::PeakEwma`], usually [`PeakEwma::cost`]; only that
    /// algorithm calls it.
    fn ewma_cost(&self, i: usize, now: Instant) -> f64;
}

// === Balancer ===

/// One cluster's endpoint picker on one shard.
#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    /// Round-robin cursor, also the fallback of a hash balancer given no key.
    rr: RoundRobin,
    /// wyrand state for `Random` and the two random choices of `LeastRequest` / `PeakEwma`.
    rng: Cell<u64>,
}

#[derive(Debug)]
enum Policy {
    RoundRobin,
    LeastRequest,
    PeakEwma,
    Random,
    /// nginx's smooth weighted round-robin: `weights` fixed, `current` the running scores.
    Weighted {
        weights: Box<[i64]>,
        current: Box<[Cell<i64>]>,
    },
    Hash(Maglev),
}

impl Balancer {
    /// ids: stable endpoint identities ("10.0.0.1:80") used by consistent hashing; weights >= 1
    /// (0 counts as 1, a missing weight as 1). `seed` seeds the shard's PRNG; give each shard its
    /// own so that shards do not pick in lock-step.
    pub fn new(alg: &Algorithm, ids: &[&str], weights: &[u32], seed: u64) -> Balancer {
        let weight = |i: usize| weights.get(i).copied().unwrap_or(1).max(1);
        let policy = match alg {
            Algorithm::RoundRobin => Policy::RoundRobin,
            Algorithm::LeastRequest => Policy::LeastRequest,
            Algorithm::PeakEwma => Policy::PeakEwma,
            Algorithm::Random => Policy::Random,
            Algorithm::Weighted => Policy::Weighted {
                weights: (0..ids.len()).map(|i| i64::from(weight(i))).collect(),
                current: (0..ids.len()).map(|_| Cell::new(0)).collect(),
            },
            Algorithm::Hash(_) => {
                let w: Vec<u32> = (0..ids.len()).map(weight).collect();
                Policy::Hash(Maglev::new(ids, &w))
            }
        };
        Balancer {
            policy,
            rr: RoundRobin::default(),
            rng: Cell::new(seed),
        }
    }

    /// Chooses only among usable endpoints; None when none is usable. `key` is the hash key
    /// (client IP octets, header or cookie value) for Hash; a Hash balancer given None falls
    /// back to round-robin. Weighted and Hash never pick an index beyond the `ids` given to
    /// [`Balancer::new`].
    pub fn pick<C: Candidates>(&self, c: &C, key: Option<&[u8]>, now: Instant) -> Option<usize> {
        match &self.policy {
            Policy::RoundRobin => self.rr.pick(c.len(), |i| c.usable(i)),
            Policy::LeastRequest => self.two_choices(c, |i| f64::from(c.in_flight(i))),
            Policy::PeakEwma => self.two_choices(c, |i| c.ewma_cost(i, now)),
            Policy::Random => self.draw_usable(c, None),
            Policy::Weighted { weights, current } => smooth_weighted(c, weights, current),
            Policy::Hash(maglev) => match key {
                Some(key) => maglev.pick(c, key),
                None => self.rr.pick(c.len(), |i| c.usable(i)),
            },
        }
    }

    /// Power of two choices: two distinct usable endpoints at random, the cheaper one wins.
    fn two_choices<C: Candidates>(&self, c: &C, cost: impl Fn(usize) -> f64) -> Option<usize> {
        let a = self.draw_usable(c, None)?;
        match self.draw_usable(c, Some(a)) {
            Some(b) if cost(b) < cost(a) => Some(b),
            _ => Some(a),
        }
    }

    /// A usable endpoint other than `except`, uniformly at random: a few random draws, then (when
    /// most endpoints are down) a scan from a random start, so a lone usable one is always found.
    fn draw_usable<C: Candidates>(&self, c: &C, except: Option<usize>) -> Option<usize> {
        let n = c.len();
        let pool = n - usize::from(except.is_some_and(|e| e < n));
        if pool == 0 {
            return None;
        }
        let skip = |i: usize| match except {
            Some(e) if i >= e => i + 1,
            _ => i,
        };
        for _ in 0..3 {
            let i = skip(self.below(pool));
            if c.usable(i) {
                return Some(i);
            }
        }
        let start = self.below(pool);
        (0..pool)
            .map(|k| skip((start + k) % pool))
            .find(|&i| c.usable(i))
    }

    /// Uniform in `0..n` (n > 0) from wyrand, by multiply-high instead of a division.
    fn below(&self, n: usize) -> usize {
        let s = self.rng.get().wrapping_add(0xa076_1d64_78bd_642f);
        self.rng.set(s);
        let r = fold_mul(s, s ^ 0xe703_7ed1_a0b4_28db);
        ((u128::from(r) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests;
