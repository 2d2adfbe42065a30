//! Token buckets per client key on one shard. Runs on a shard thread; the table is plain `Cell`s,
//! allocated once at [`Limiter::new`], and time is passed in.
//!
//! Each bucket is stored as one number, its GCRA "theoretical arrival time" (`tat`): the instant
//! at which the bucket will be full again. A bucket whose `tat` has passed is full, which is the
//! same as having no bucket, so it is evicted: a sweep cursor looks at two table slots on every
//! [`Limiter::take`] (amortised O(1), no full scans) and removes such buckets.
//!
//! Memory is capped at `max_keys` buckets. When a new key arrives at the cap, the fullest of a
//! few buckets sampled at the sweep cursor (the one owing least) is evicted to make room: the cap
//! can at worst hand that client a fresh burst early, but never refuses an unknown client and
//! never grows. A flood of distinct keys thus evicts mostly its own one-request buckets, while
//! the clients deep in debt, the ones being limited, are kept.
//!
//! Rates (`rate.rs`) and client keys (`key.rs`) have files of their own; this file holds the
//! [`Limiter`], its table and its sweep.

mod admitted;
mod deny_until;
mod key;
mod rate;

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

pub use admitted::{Admitted, CountKey};
pub use deny_until::DenyUntil;
pub use key::{bytes_key, fleet_bytes_key, ip_key};
pub use rate::Rate;

use crate::policy::hash::fold_mul;

// === Limiter ===

/// The verdict on one request, with what the RateLimit-* response headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let it through; `remaining` more could pass right now, the bucket is full after `reset`.
    Allowed { remaining: u32, reset: Duration },
    /// Answer 429; one token is back after `retry_after`, the bucket is full after `reset`.
    Limited {
        retry_after: Duration,
        reset: Duration,
    },
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// One table slot; `tat == 0` marks it empty (a live bucket's `tat` is at least one interval).
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: [u64; 2],
    /// Nanoseconds after `base` at which the bucket is full again.
    tat: u64,
}

const EMPTY: Slot = Slot {
    key: [0; 2],
    tat: 0,
};
/// Slots the sweep cursor examines per `take`.
const SWEEP_PER_TAKE: usize = 2;
/// The largest `max_keys` honoured (a 3 GiB table).
pub const MAX_KEYS: usize = 1 << 26;
/// Buckets sampled to pick a victim at the cap.
const VICTIM_SAMPLE: usize = 8;

/// Token buckets for one rate-limit policy on one shard.
#[derive(Debug)]
pub struct Limiter {
    /// Nanoseconds per token.
    interval: u64,
    /// `ceil(2^64 / interval)`, to divide by `interval` with a multiplication.
    per_interval: u64,
    /// `burst × interval`: how far ahead of now a bucket's `tat` may run.
    window: u64,
    burst: u32,
    /// Origin of the nanosecond clock, the instant of the first `take`.
    base: Cell<Option<Instant>>,
    /// Open addressing with linear probing and backward-shift deletion; power-of-two sized.
    slots: Box<[Cell<Slot>]>,
    len: Cell<usize>,
    max_keys: usize,
    /// Next slot the incremental sweep looks at.
    cursor: Cell<usize>,
    /// Random per limiter, so clients choosing their keys cannot pile them into one probe run.
    seed: [u64; 2],
}

impl Limiter {
    /// `burst` (at least 1) requests may pass at once, refilled at `rate`; at most `max_keys`
    /// (clamped to `1..=MAX_KEYS`) buckets are held, in a table allocated here of 1.5 to 3 ×
    /// `max_keys` slots of 24 bytes.
    pub fn new(rate: Rate, burst: u32, max_keys: usize) -> Self {
        let per_ns = 1e9 / rate.per_second;
        let interval = if per_ns.is_nan() {
            1e18
        } else {
            per_ns.clamp(1.0, 1e18)
        } as u64;
        let burst = burst.max(1);
        let max_keys = max_keys.clamp(1, MAX_KEYS);
        let size = (max_keys + max_keys / 2 + 1).next_power_of_two();
        let s = RandomState::new();
        Limiter {
            interval,
            per_interval: (u64::MAX / interval.max(1)).wrapping_add(1),
            window: interval.saturating_mul(u64::from(burst)),
            burst,
            base: Cell::new(None),
            slots: (0..size).map(|_| Cell::new(EMPTY)).collect(),
            len: Cell::new(0),
            max_keys,
            cursor: Cell::new(0),
            seed: [s.hash_one(1u8), s.hash_one(2u8)],
        }
    }

    /// The bucket size (this shard's burst; `RateLimit-Policy` states the process-wide one).
    pub fn limit(&self) -> u32 {
        self.burst
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.len.get()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a token from `key`'s bucket.
    pub fn take(&self, key: u128, now: Instant) -> Decision {
        let now = self.clock(now);
        self.sweep_at(now, SWEEP_PER_TAKE);
        let key = [key as u64, (key >> 64) as u64];
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let slot = self.slots[i].get();
            if slot.tat == 0 {
                break;
            }
            if slot.key == key {
                let (decision, tat) = self.decide(slot.tat, now);
                self.slots[i].set(Slot { key, tat });
                return decision;
            }
            i = (i + 1) & mask;
        }
        let (decision, tat) = self.decide(0, now);
        if self.len.get() >= self.max_keys {
            self.evict_one(now);
            i = self.home(key);
            while self.slots[i].get().tat != 0 {
                i = (i + 1) & mask;
            }
        }
        self.slots[i].set(Slot { key, tat });
        self.len.set(self.len.get() + 1);
        decision
    }

    /// Looks at up to `slots` table slots from the sweep cursor and evicts full buckets; returns
    /// how many it evicted. `take` does this for two slots; a timer may call it for more.
    pub fn sweep(&self, now: Instant, slots: usize) -> usize {
        let now = self.clock(now);
        // Each eviction re-examines its slot: this many looks cover the whole table.
        self.sweep_at(now, slots.min(self.slots.len() + self.len()))
    }

    /// GCRA: the decision for a bucket at `tat` (0 = none), and the bucket's new `tat`.
    fn decide(&self, tat: u64, now: u64) -> (Decision, u64) {
        let start = tat.max(now);
        let next = start.saturating_add(self.interval);
        let ahead = next - now;
        let ns = Duration::from_nanos;
        if ahead > self.window {
            let limited = Decision::Limited {
                retry_after: ns(ahead - self.window),
                reset: ns(start - now),
            };
            return (limited, tat);
        }
        let allowed = Decision::Allowed {
            remaining: self.tokens_in(self.window - ahead),
            reset: ns(ahead),
        };
        (allowed, next)
    }

    /// `ns / interval` (at most `burst`), by multiplying with a precomputed reciprocal and one
    /// exact correction: a 64-bit division would cost more than the rest of `take`.
    fn tokens_in(&self, ns: u64) -> u32 {
        let q = match self.interval {
            0 | 1 => ns,
            // `per_interval` ≥ 2^64 / interval, too much by less than 2^64 / 2^64: at most one over.
            d => {
                let q = ((u128::from(ns) * u128::from(self.per_interval)) >> 64) as u64;
                q - u64::from(q.saturating_mul(d) > ns)
            }
        };
        q.min(u64::from(self.burst)) as u32
    }

    fn clock(&self, now: Instant) -> u64 {
        let base = match self.base.get() {
            Some(base) => base,
            None => {
                self.base.set(Some(now));
                now
            }
        };
        now.saturating_duration_since(base)
            .as_nanos()
            .min(u128::from(u64::MAX)) as u64
    }

    fn home(&self, key: [u64; 2]) -> usize {
        let h = fold_mul(key[0] ^ self.seed[0], key[1] ^ self.seed[1]);
        h as usize & (self.slots.len() - 1)
    }

    fn sweep_at(&self, now: u64, budget: usize) -> usize {
        let mut evicted = 0;
        for _ in 0..budget {
            let i = self.cursor.get();
            let tat = self.slots[i].get().tat;
            if tat != 0 && tat <= now {
                self.remove(i); // a later bucket may shift into i: look at i again
                evicted += 1;
            } else {
                self.cursor.set((i + 1) & (self.slots.len() - 1));
            }
        }
        evicted
    }

    /// At the cap: evicts the bucket owing least among a few at the sweep cursor.
    fn evict_one(&self, now: u64) {
        let mask = self.slots.len() - 1;
        let mut victim: Option<(u64, usize)> = None;
        let mut seen = 0;
        let mut i = self.cursor.get();
        for _ in 0..self.slots.len() {
            let tat = self.slots[i].get().tat;
            if tat != 0 {
                if victim.is_none_or(|(t, _)| tat < t) {
                    victim = Some((tat, i));
                }
                seen += 1;
                if seen == VICTIM_SAMPLE || tat <= now {
                    break;
                }
            }
            i = (i + 1) & mask;
        }
        self.cursor.set((i + 1) & mask);
        if let Some((_, i)) = victim {
            self.remove(i);
        }
    }

    /// Backward-shift deletion: later buckets of the probe run move up into the hole.
    fn remove(&self, mut hole: usize) {
        let mask = self.slots.len() - 1;
        let mut j = (hole + 1) & mask;
        loop {
            let slot = self.slots[j].get();
            if slot.tat == 0 {
                break;
            }
            let home = self.home(slot.key);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole].set(slot);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole].set(EMPTY);
        self.len.set(self.len.get() - 1);
    }
}

#[cfg(test)]
mod tests;
