//! Retry budget of one route on one shard: retries may add at most `ratio` of the recent
//! request load plus a small reserve, so that retries cannot multiply an overload. Runs on a shard
//! thread; counters are plain `Cell`s in a fixed ring, time is passed in.
//!
//! The window is kept as ten slots of `window / 10`: the current slot and the nine before it, so
//! it spans between nine and ten tenths of `window` and slides a tenth at a time.

use std::cell::Cell;
use std::time::{Duration, Instant};

const SLOTS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    requests: u64,
    retries: u64,
}

#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    /// `min_per_sec × window`: retries allowed however few requests there were.
    reserve: f64,
    slot_ns: u64,
    /// Origin of the slot clock, the instant of the first call.
    base: Cell<Option<Instant>>,
    /// Number of the current slot (nanoseconds since `base` / `slot_ns`).
    head: Cell<u64>,
    /// Slot `n` is kept at `ring[n % SLOTS]`.
    ring: [Cell<Counts>; SLOTS],
    /// Sum over the ring.
    total: Cell<Counts>,
}

impl RetryBudget {
    /// Typically `(0.2, 10, 10 s)`: retries up to 20 % of requests plus 10 per second.
    pub fn new(ratio: f64, min_per_sec: u32, window: Duration) -> Self {
        let ratio = if ratio >= 0.0 { ratio } else { 0.0 }; // NaN too
        RetryBudget {
            ratio,
            reserve: f64::from(min_per_sec) * window.as_secs_f64(),
            slot_ns: (window.as_nanos() / SLOTS as u128).clamp(1, u128::from(u64::MAX)) as u64,
            base: Cell::new(None),
            head: Cell::new(0),
            ring: Default::default(),
            total: Cell::new(Counts::default()),
        }
    }

    /// Counts one original request (not a retry).
    pub fn on_request(&self, now: Instant) {
        self.add(now, 1, 0);
    }

    /// true = a retry may be sent (and is counted); retries within the window stay <=
    /// ratio × requests + min_per_sec × window.
    pub fn try_retry(&self, now: Instant) -> bool {
        let allowed = self.allows(now);
        if allowed {
            self.add(now, 0, 1);
        }
        allowed
    }

    /// Whether `try_retry(now)` would allow a retry; counts nothing.
    pub fn allows(&self, now: Instant) -> bool {
        self.advance(now);
        let t = self.total.get();
        let earned = if t.requests == 0 {
            0.0
        } else {
            self.ratio * t.requests as f64
        };
        (t.retries + 1) as f64 <= earned + self.reserve
    }

    fn add(&self, now: Instant, requests: u64, retries: u64) {
        self.advance(now);
        let bump = |c: Counts| Counts {
            requests: c.requests.saturating_add(requests),
            retries: c.retries.saturating_add(retries),
        };
        let slot = &self.ring[(self.head.get() % SLOTS as u64) as usize];
        slot.set(bump(slot.get()));
        self.total.set(bump(self.total.get()));
    }

    /// Moves the current slot up to `now`, dropping the slots that fall out of the window.
    fn advance(&self, now: Instant) {
        let base = match self.base.get() {
            Some(base) => base,
            None => {
                self.base.set(Some(now));
                now
            }
        };
        let ns = now.saturating_duration_since(base).as_nanos();
        let slot = (ns / u128::from(self.slot_ns)).min(u128::from(u64::MAX)) as u64;
        let head = self.head.get();
        if slot <= head {
            return; // same slot, or time went backwards: count into the current one
        }
        for n in head + 1..=head + (slot - head).min(SLOTS as u64) {
            let old = self.ring[(n % SLOTS as u64) as usize].take();
            let t = self.total.get();
            self.total.set(Counts {
                requests: t.requests.saturating_sub(old.requests),
                retries: t.retries.saturating_sub(old.retries),
            });
        }
        self.head.set(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// How many retries in a row `try_retry` allows at `now` (stops at 10 000).
    fn retries(b: &RetryBudget, now: Instant) -> usize {
        (0..10_000).take_while(|_| b.try_retry(now)).count()
    }

    #[test]
    fn allowance_is_ratio_of_requests_plus_reserve() {
        let cases = [
            // ratio, min_per_sec, window, requests, allowed retries
            (0.2, 10, 10 * S, 0, 100),
            (0.2, 10, 10 * S, 100, 120),
            (0.2, 0, 10 * S, 100, 20),
            (0.2, 0, 10 * S, 4, 0),
            (0.5, 1, 2 * S, 7, 5),
            (0.0, 0, 10 * S, 1000, 0),
            (f64::NAN, 3, S, 1000, 3),
        ];
        for (ratio, min, window, requests, want) in cases {
            let (b, t) = (RetryBudget::new(ratio, min, window), Instant::now());
            for _ in 0..requests {
                b.on_request(t);
            }
            assert_eq!(retries(&b, t), want, "{ratio} {min} {window:?} {requests}");
        }
    }

    #[test]
    fn requests_earn_retries_as_they_come() {
        let (b, t) = (RetryBudget::new(0.2, 0, 10 * S), Instant::now());
        for _ in 0..10 {
            b.on_request(t);
        }
        assert_eq!(retries(&b, t), 2);
        for _ in 0..5 {
            b.on_request(t);
        }
        assert_eq!(retries(&b, t), 1);
    }

    #[test]
    fn window_slides() {
        let (b, t) = (RetryBudget::new(0.2, 0, 10 * S), Instant::now());
        let requests = |n, at| (0..n).for_each(|_| b.on_request(at));
        requests(100, t);
        assert_eq!(retries(&b, t), 20);
        assert_eq!(
            retries(&b, t + 9 * S),
            0,
            "retries spent in the window stay spent"
        );
        requests(50, t + 9 * S);
        assert_eq!(retries(&b, t + 9 * S), 10, "150 requests allow 30");
        assert_eq!(
            retries(&b, t + 10 * S),
            0,
            "the first second left: 50 allow 10, all spent"
        );
        requests(5, t + 10 * S);
        assert_eq!(retries(&b, t + 10 * S), 1);
        assert_eq!(retries(&b, t + 1000 * S), 0, "everything expired");
        requests(5, t + 1000 * S);
        assert_eq!(retries(&b, t + 1000 * S), 1);
        requests(5, t + 999 * S); // an older instant counts into the current slot
        assert_eq!(retries(&b, t + 1000 * S), 1);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let t = Instant::now();
        for window in [Duration::ZERO, Duration::from_nanos(3), Duration::MAX] {
            let b = RetryBudget::new(f64::INFINITY, u32::MAX, window);
            b.on_request(t + S);
            b.on_request(t); // time going backwards
            let reserve = window > Duration::ZERO; // u32::MAX per second over the window
            assert_eq!(b.try_retry(t + 2 * S), reserve, "{window:?}");
        }
    }
}
