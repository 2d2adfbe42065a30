//! Peak-EWMA latency of one endpoint, the load the `ewma` algorithm compares. Runs on a shard
//! thread: the estimate and its stamp are plain `Cell`s owned by that shard; time is passed in.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Linkerd/Finagle peak-EWMA latency of one endpoint on one shard: jumps up to a slower sample at
/// once, decays towards faster ones with time constant `tau`, and while no sample arrives decays
/// towards zero, so an endpoint that was slow once is tried again rather than starved.
#[derive(Debug)]
pub struct PeakEwma {
    /// 1 / tau, in 1/ns.
    per_tau_ns: f64,
    /// Latency estimate in nanoseconds as of `stamp`.
    estimate_ns: Cell<f64>,
    /// When the estimate was last updated; None before the first sample.
    stamp: Cell<Option<Instant>>,
}

impl PeakEwma {
    /// `initial` stands in for the latency until the first sample.
    pub fn new(tau: Duration, initial: Duration) -> Self {
        PeakEwma {
            per_tau_ns: 1.0 / (tau.as_nanos() as f64).max(1.0),
            estimate_ns: Cell::new(initial.as_nanos() as f64),
            stamp: Cell::new(None),
        }
    }

    /// Records one response time.
    pub fn observe(&self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        let prior = self.estimate_ns.get();
        if rtt > prior {
            self.estimate_ns.set(rtt);
        } else {
            let w = self.decay(now);
            self.estimate_ns.set(prior * w + rtt * (1.0 - w));
        }
        if self.stamp.get().is_none_or(|t| now > t) {
            self.stamp.set(Some(now));
        }
    }

    /// The estimate decayed to `now`, in nanoseconds, times `in_flight + 1`.
    pub fn cost(&self, now: Instant, in_flight: u32) -> f64 {
        self.estimate_ns.get() * self.decay(now) * (f64::from(in_flight) + 1.0)
    }

    /// exp(-elapsed / tau) since the last sample: 1 right after it, towards 0 long after.
    fn decay(&self, now: Instant) -> f64 {
        match self.stamp.get() {
            Some(t) if now > t => {
                (-(now.duration_since(t).as_nanos() as f64) * self.per_tau_ns).exp()
            }
            _ => 1.0,
        }
    }
}
