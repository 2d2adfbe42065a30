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

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::hash::{fold_mul, hash_bytes};

// === Rate ===

/// A sustained request rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
}

const RATE_FORMS: &str =
    "expected a positive rate as N/s, N/m or N/h, like \"100/s\", \"6000/m\" or \"36000/h\"";

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let bad = || format!("invalid rate {s:?}: {RATE_FORMS}");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        let n: f64 = n.trim().parse().map_err(|_| bad())?;
        if !(n.is_finite() && n > 0.0) {
            return Err(bad());
        }
        Ok(Rate {
            per_second: n / seconds,
        })
    }
}

impl Rate {
    /// This shard's share when every shard limits on its own.
    pub fn per_shard(self, shards: usize) -> Rate {
        Rate {
            per_second: self.per_second / shards.max(1) as f64,
        }
    }
}

// === keys ===

/// The key of a client address; v4 and v4-mapped v6 give the same key.
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6),
        },
    }
}

/// The key of a value such as an API-key header: a 128-bit hash keyed by a random secret drawn
/// once per process, so clients cannot aim collisions at someone else's bucket.
pub fn bytes_key(v: &[u8]) -> u128 {
    thread_local! {
        static SECRET: (u64, u64) = secret();
    }
    SECRET.with(|&(a, b)| u128::from(hash_bytes(a, v)) << 64 | u128::from(hash_bytes(b, v)))
}

fn secret() -> (u64, u64) {
    static SECRET: OnceLock<(u64, u64)> = OnceLock::new();
    *SECRET.get_or_init(|| {
        let s = RandomState::new();
        (s.hash_one(1u8), s.hash_one(2u8))
    })
}

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
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limiter(burst: u32, max_keys: usize) -> Limiter {
        Limiter::new(Rate { per_second: 10.0 }, burst, max_keys) // a token every 100 ms
    }

    #[test]
    fn rates_parse() {
        let cases = [
            ("100/s", 100.0),
            ("6000/m", 100.0),
            ("36000/h", 10.0),
            (" 0.5 / s ", 0.5),
        ];
        for (text, want) in cases {
            assert_eq!(
                text.parse::<Rate>(),
                Ok(Rate { per_second: want }),
                "{text}"
            );
        }
        for bad in [
            "", "100", "100/d", "/s", "-1/s", "0/s", "abc/s", "inf/s", "NaN/s", "1/s/s",
        ] {
            let err = bad.parse::<Rate>().unwrap_err();
            assert!(
                err.contains(r#""100/s", "6000/m" or "36000/h""#),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(Rate { per_second: 100.0 }.per_shard(4).per_second, 25.0);
        assert_eq!(Rate { per_second: 100.0 }.per_shard(0).per_second, 100.0);
    }

    #[test]
    fn burst_then_limited_then_refilled() {
        let (l, t) = (limiter(3, 10), Instant::now());
        let allowed = |remaining, reset_ms| Decision::Allowed {
            remaining,
            reset: reset_ms * MS,
        };
        let limited = |retry_ms, reset_ms| Decision::Limited {
            retry_after: retry_ms * MS,
            reset: reset_ms * MS,
        };
        let steps = [
            (0, allowed(2, 100)),
            (0, allowed(1, 200)),
            (0, allowed(0, 300)),
            (0, limited(100, 300)),
            (40, limited(60, 260)),
            (100, allowed(0, 300)), // one token back after 100 ms
            (100, limited(100, 300)),
            (1000, allowed(2, 100)), // full again long after
        ];
        for (at_ms, want) in steps {
            assert_eq!(l.take(7, t + at_ms * MS), want, "at {at_ms} ms");
        }
        assert_eq!(l.limit(), 3);
    }

    #[test]
    fn remaining_tokens_are_exact() {
        for (interval_ns, burst) in [
            (1, 10),
            (3, 1000),
            (7, 100_000),
            (100_000_000, 50),
            (999_999_937, 3),
        ] {
            let l = Limiter::new(
                Rate {
                    per_second: 1e9 / interval_ns as f64,
                },
                burst,
                1,
            );
            assert_eq!(l.interval, interval_ns);
            for ns in (0..=l.window)
                .step_by((l.window / 997).max(1) as usize)
                .chain([l.window])
            {
                let want = (ns / interval_ns).min(u64::from(burst)) as u32;
                for ns in [ns, ns.saturating_sub(1), ns + 1] {
                    let want = (ns / interval_ns).min(u64::from(burst)) as u32;
                    assert_eq!(l.tokens_in(ns), want, "{ns} / {interval_ns}");
                }
                assert_eq!(l.tokens_in(ns), want);
            }
        }
        let l = Limiter::new(Rate { per_second: 1e9 }, u32::MAX, 1);
        assert_eq!(l.tokens_in(u64::MAX), u32::MAX);
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let (l, t) = (limiter(1, 10), Instant::now());
        assert!(l.take(1, t).allowed());
        assert!(!l.take(1, t).allowed());
        assert!(l.take(2, t).allowed());
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn ip_keys() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ip_key(ip("10.1.2.3")), ip_key(ip("::ffff:10.1.2.3")));
        assert_ne!(ip_key(ip("10.1.2.3")), ip_key(ip("10.1.2.4")));
        assert_ne!(ip_key(ip("10.1.2.3")), ip_key(ip("::10.1.2.3")));
    }

    #[test]
    fn bytes_keys_are_stable_and_distinct() {
        assert_eq!(bytes_key(b"key-1"), bytes_key(b"key-1"));
        let other = std::thread::spawn(|| bytes_key(b"key-1")).join().unwrap();
        assert_eq!(other, bytes_key(b"key-1"), "one secret per process");
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            assert!(seen.insert(bytes_key(format!("api-key-{i}").as_bytes())));
        }
    }

    #[test]
    fn full_buckets_are_swept_away_by_later_takes() {
        let (l, t) = (limiter(2, 1000), Instant::now());
        for k in 0..1000 {
            l.take(k, t);
        }
        assert_eq!(l.len(), 1000);
        // 200 ms later every bucket is full again; a hot key's takes sweep them out.
        let later = t + 200 * MS;
        for _ in 0..l.slots.len() {
            l.take(u128::MAX, later);
        }
        assert_eq!(l.len(), 1);
        for k in 0..10 {
            l.take(k, later);
        }
        assert_eq!(l.sweep(later + 200 * MS, usize::MAX / 2), 11);
        assert!(l.is_empty());
    }

    #[test]
    fn buckets_still_owing_are_not_swept() {
        let (l, t) = (limiter(2, 100), Instant::now());
        for k in 0..100 {
            l.take(k, t);
        }
        assert_eq!(l.sweep(t + 99 * MS, usize::MAX / 2), 0);
        assert_eq!(l.len(), 100);
    }

    #[test]
    fn cap_holds_under_a_flood_and_keeps_limited_clients() {
        let (l, t) = (limiter(5, 1000), Instant::now());
        for _ in 0..6 {
            l.take(u128::MAX, t);
        }
        assert!(!l.take(u128::MAX, t).allowed());
        for k in 0..100_000u128 {
            l.take(k, t + (k as u32) * Duration::from_nanos(10));
            assert!(l.len() <= 1000);
        }
        assert_eq!(l.len(), 1000);
        assert!(
            !l.take(u128::MAX, t + MS).allowed(),
            "the flood evicted the limited client"
        );
        // Every key still in the table is found again (no probe run was broken by eviction).
        let held: Vec<[u64; 2]> = (0..l.slots.len())
            .map(|i| l.slots[i].get())
            .filter(|s| s.tat != 0)
            .map(|s| s.key)
            .collect();
        let before = l.len();
        for k in held {
            l.take(u128::from(k[0]) | u128::from(k[1]) << 64, t + MS);
        }
        assert_eq!(l.len(), before);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let t = Instant::now();
        for per_second in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-30, 1e30] {
            for burst in [0, 1, u32::MAX] {
                let l = Limiter::new(Rate { per_second }, burst, 0);
                for k in 0..4 {
                    l.take(k, t + Duration::from_secs(k as u64));
                    l.take(k, t); // time going backwards
                }
                assert!(l.len() <= 1);
            }
        }
        let l = limiter(1, 1);
        l.take(1, t + Duration::from_secs(1_000_000_000));
        l.take(2, t);
        assert_eq!(l.len(), 1);
    }
}
