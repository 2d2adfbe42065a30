//! Circuit breaker of one endpoint on one shard: after `failures` consecutive failures it stops
//! traffic for an open timeout, then lets a few probes through and closes again once enough of
//! them succeed. Runs on a shard thread; state is plain `Cell`s, time is passed in.
//!
//! ```text
//!   Closed ──failures in a row──► Open ──timeout passed, admit()──► HalfOpen ──successes──► Closed
//!                                  ▲                                    │
//!                                  └──── any failure (timeout doubled) ─┘
//! ```
//!
//! The caller takes a [`Breaker::ticket`] when it admits a request and reports that request
//! exactly once with it: `on_success_for`, `on_failure_for`, or `on_abandoned_for` when it ended
//! without a verdict (client gone). A probe nobody reports is presumed lost after the current
//! open timeout, so a shard cannot stay half-open for ever.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Breaker thresholds; `Default` gives 5 failures, 30 s doubling up to 5 min, 1 probe, 2 successes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failures: u32,
    /// How long the breaker first stays open.
    pub open_timeout: Duration,
    /// Cap on the open timeout as failed probes double it.
    pub max_open_timeout: Duration,
    /// Probes allowed in flight at once while half-open.
    pub half_open_requests: u32,
    /// Successful probes that close a half-open breaker.
    pub successes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            open_timeout: Duration::from_secs(30),
            max_open_timeout: Duration::from_secs(300),
            half_open_requests: 1,
            successes: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Traffic flows; consecutive failures are counted.
    Closed,
    /// Traffic is refused until the open timeout has passed.
    Open,
    /// A few probe requests test whether the endpoint has recovered.
    HalfOpen,
}

/// A change of state, for logs and for telling other shards (outlier events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    HalfOpened,
    Closed,
}

#[derive(Debug)]
pub struct Breaker {
    state: Cell<State>,
    /// Closed: failures in a row. HalfOpen: successful probes so far.
    count: Cell<u32>,
    /// HalfOpen: probes admitted and not yet reported.
    probes: Cell<u32>,
    /// Open: when probing may start. HalfOpen: when unreported probes are presumed lost.
    until: Cell<Option<Instant>>,
    /// The open timeout now in force: doubles on each failed probe, reset on closing.
    timeout: Cell<Duration>,
    /// Bumped on every state change: a request remembers it at admission (`ticket`), so the
    /// late result of a request admitted before the current HalfOpen is not taken for a probe's.
    epoch: Cell<u32>,
    cfg: BreakerConfig,
}

impl Breaker {
    /// Zero thresholds count as 1; a `max_open_timeout` below `open_timeout` is raised to it.
    pub fn new(cfg: BreakerConfig) -> Self {
        let cfg = BreakerConfig {
            failures: cfg.failures.max(1),
            max_open_timeout: cfg.max_open_timeout.max(cfg.open_timeout),
            half_open_requests: cfg.half_open_requests.max(1),
            successes: cfg.successes.max(1),
            ..cfg
        };
        Breaker {
            state: Cell::new(State::Closed),
            count: Cell::new(0),
            probes: Cell::new(0),
            until: Cell::new(None),
            timeout: Cell::new(cfg.open_timeout),
            epoch: Cell::new(0),
            cfg,
        }
    }

    /// What a request keeps from its admission and reports its result with.
    #[inline]
    pub fn ticket(&self) -> u32 {
        self.epoch.get()
    }

    /// A result of a request admitted before this HalfOpen began: not a probe's.
    #[inline]
    fn stale(&self, ticket: u32) -> bool {
        self.state.get() == State::HalfOpen && ticket != self.epoch.get()
    }

    /// The request admitted with `ticket` succeeded: HalfOpen closes after `successes` of them,
    /// Closed forgets its failure run. Ignored if it was admitted before the current HalfOpen.
    #[inline]
    pub fn on_success_for(&self, ticket: u32, _now: Instant) -> Option<Transition> {
        if self.stale(ticket) {
            return None;
        }
        self.succeeded()
    }

    /// The request admitted with `ticket` failed: Closed opens after `failures` CONSECUTIVE
    /// failures; HalfOpen reopens at once with the open timeout doubled (capped); an Open breaker
    /// ignores late failures. Ignored if it was admitted before the current HalfOpen.
    pub fn on_failure_for(&self, ticket: u32, now: Instant) -> Option<Transition> {
        if self.stale(ticket) {
            return None;
        }
        self.failed(now)
    }

    /// The request admitted with `ticket` ended with no verdict on the endpoint: frees its probe
    /// slot. Ignored if it was admitted before the current HalfOpen.
    pub fn on_abandoned_for(&self, ticket: u32) {
        if !self.stale(ticket) {
            self.abandoned();
        }
    }

    pub fn state(&self) -> State {
        self.state.get()
    }

    /// The state as a scrape reports it at `now`, with no side effect: an Open breaker whose
    /// open timeout has passed is HalfOpen (the next request is let through as a probe), although
    /// the breaker itself moves only when that request comes.
    pub fn state_at(&self, now: Instant) -> State {
        match self.state.get() {
            State::Open if self.passed(now) => State::HalfOpen,
            s => s,
        }
    }

    /// No side effect: Closed; Open whose timeout passed; HalfOpen with a free probe slot.
    #[inline]
    pub fn usable(&self, now: Instant) -> bool {
        self.state.get() == State::Closed || self.usable_slow(now)
    }

    #[cold]
    fn usable_slow(&self, now: Instant) -> bool {
        match self.state.get() {
            State::Closed => true,
            State::Open => self.passed(now),
            State::HalfOpen => self.probes.get() < self.cfg.half_open_requests || self.passed(now),
        }
    }

    /// Call when a request is sent: Open→HalfOpen after the timeout, HalfOpen counts probes in
    /// flight. `false` means the request must not go to this endpoint.
    #[inline]
    pub fn admit(&self, now: Instant) -> (bool, Option<Transition>) {
        if self.state.get() == State::Closed {
            return (true, None);
        }
        self.admit_slow(now)
    }

    #[cold]
    fn admit_slow(&self, now: Instant) -> (bool, Option<Transition>) {
        match self.state.get() {
            State::Closed => (true, None),
            State::Open if self.passed(now) => {
                self.set(State::HalfOpen, 0);
                self.probe(now);
                (true, Some(Transition::HalfOpened))
            }
            State::Open => (false, None),
            State::HalfOpen => {
                if self.passed(now) {
                    self.probes.set(0); // the probes in flight are presumed lost
                }
                if self.probes.get() >= self.cfg.half_open_requests {
                    return (false, None);
                }
                self.probe(now);
                (true, None)
            }
        }
    }

    #[inline]
    fn succeeded(&self) -> Option<Transition> {
        match self.state.get() {
            State::Closed => {
                self.count.set(0);
                None
            }
            State::Open => None,
            State::HalfOpen => {
                self.probes.set(self.probes.get().saturating_sub(1));
                let ok = self.count.get().saturating_add(1);
                self.count.set(ok);
                (ok >= self.cfg.successes).then(|| self.close())
            }
        }
    }

    fn failed(&self, now: Instant) -> Option<Transition> {
        match self.state.get() {
            State::Closed => {
                let failed = self.count.get().saturating_add(1);
                self.count.set(failed);
                (failed >= self.cfg.failures).then(|| self.open(now))
            }
            State::Open => None,
            State::HalfOpen => {
                let doubled = self.timeout.get().saturating_mul(2);
                self.timeout.set(doubled.min(self.cfg.max_open_timeout));
                Some(self.open(now))
            }
        }
    }

    fn abandoned(&self) {
        if self.state.get() == State::HalfOpen {
            self.probes.set(self.probes.get().saturating_sub(1));
        }
    }

    /// Close now, as a fresh breaker: a health probe found the endpoint up again
    /// (`Shard::apply_health`), so passive ejection ends with it.
    pub fn force_close(&self) -> Option<Transition> {
        (self.state.get() != State::Closed).then(|| self.close())
    }

    fn open(&self, now: Instant) -> Transition {
        self.set(State::Open, 0);
        self.until.set(now.checked_add(self.timeout.get()));
        Transition::Opened
    }

    fn close(&self) -> Transition {
        self.set(State::Closed, 0);
        self.until.set(None);
        self.timeout.set(self.cfg.open_timeout);
        Transition::Closed
    }

    fn set(&self, state: State, count: u32) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        self.state.set(state);
        self.count.set(count);
        self.probes.set(0);
    }

    fn probe(&self, now: Instant) {
        self.probes.set(self.probes.get() + 1);
        self.until.set(now.checked_add(self.timeout.get()));
    }

    /// The deadline in `until` has passed (an unrepresentable deadline never does).
    fn passed(&self, now: Instant) -> bool {
        self.until.get().is_some_and(|t| now >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            open_timeout: 10 * S,
            max_open_timeout: 35 * S,
            half_open_requests: 1,
            successes: 2,
        })
    }

    /// Reports a request admitted in the breaker's current state (so its ticket is the current
    /// one): a success, a failure, no verdict.
    fn ok(b: &Breaker, t: Instant) -> Option<Transition> {
        b.on_success_for(b.ticket(), t)
    }

    fn fail(b: &Breaker, t: Instant) -> Option<Transition> {
        b.on_failure_for(b.ticket(), t)
    }

    fn gone(b: &Breaker) {
        b.on_abandoned_for(b.ticket())
    }

    /// Drives a fresh breaker from Closed to Open at `t`.
    fn opened(b: &Breaker, t: Instant) {
        for _ in 0..2 {
            assert_eq!(fail(b, t), None);
        }
        assert_eq!(fail(b, t), Some(Transition::Opened));
    }

    #[test]
    fn a_late_result_from_before_half_open_is_not_a_probe() {
        let b = breaker();
        let t0 = Instant::now();
        assert!(b.admit(t0).0);
        let early = b.ticket();
        opened(&b, t0);
        let t1 = t0 + 10 * S;
        assert_eq!(b.admit(t1), (true, Some(Transition::HalfOpened)));
        let probe = b.ticket();
        // The request admitted while Closed ends now: it neither frees the probe slot nor counts.
        assert_eq!(b.on_success_for(early, t1), None);
        assert_eq!(b.on_failure_for(early, t1), None);
        b.on_abandoned_for(early);
        assert!(!b.usable(t1), "the one probe slot is still taken");
        assert_eq!(b.state(), State::HalfOpen);
        // The probe's own results do count.
        assert_eq!(b.on_success_for(probe, t1), None);
        assert!(b.admit(t1).0);
        assert_eq!(b.on_success_for(b.ticket(), t1), Some(Transition::Closed));
    }

    #[test]
    fn defaults() {
        let c = BreakerConfig::default();
        assert_eq!((c.failures, c.half_open_requests, c.successes), (5, 1, 2));
        assert_eq!((c.open_timeout, c.max_open_timeout), (30 * S, 300 * S));
    }

    #[test]
    fn opens_only_after_consecutive_failures() {
        let (b, t) = (breaker(), Instant::now());
        fail(&b, t);
        fail(&b, t);
        ok(&b, t);
        assert_eq!(fail(&b, t), None, "a success resets the run");
        assert_eq!(fail(&b, t), None);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(fail(&b, t), Some(Transition::Opened));
        assert_eq!(b.state(), State::Open);
        assert_eq!(fail(&b, t), None, "late failures change nothing");
    }

    #[test]
    fn open_refuses_until_timeout_then_half_opens_on_admit() {
        let (b, t) = (breaker(), Instant::now());
        opened(&b, t);
        let cases = [(Duration::ZERO, false), (9 * S, false), (10 * S, true)];
        for (after, want) in cases {
            assert_eq!(b.usable(t + after), want, "{after:?}");
            assert_eq!(b.state(), State::Open, "usable has no side effect");
        }
        assert_eq!(b.admit(t + 5 * S), (false, None));
        assert_eq!(b.admit(t + 10 * S), (true, Some(Transition::HalfOpened)));
        assert_eq!(b.state(), State::HalfOpen);
    }

    #[test]
    fn state_at_reports_an_expired_open_as_half_open_without_changing_it() {
        let (b, t) = (breaker(), Instant::now());
        assert_eq!(b.state_at(t), State::Closed);
        opened(&b, t);
        assert_eq!(b.state_at(t + 9 * S), State::Open);
        assert_eq!(b.state_at(t + 10 * S), State::HalfOpen);
        assert_eq!(b.state(), State::Open, "state_at has no side effect");
        assert_eq!(b.admit(t + 10 * S), (true, Some(Transition::HalfOpened)));
        assert_eq!(b.state_at(t + 10 * S), State::HalfOpen);
    }

    #[test]
    fn half_open_limits_probes_in_flight() {
        let (b, t) = (breaker(), Instant::now());
        opened(&b, t);
        let t = t + 10 * S;
        b.admit(t);
        assert!(!b.usable(t));
        assert_eq!(b.admit(t), (false, None));
        gone(&b);
        assert!(b.usable(t), "an abandoned probe frees its slot");
        assert_eq!(b.admit(t), (true, None));
        assert_eq!(ok(&b, t), None);
        assert_eq!(b.admit(t), (true, None), "a reported probe frees its slot");
    }

    #[test]
    fn half_open_closes_after_successes() {
        let (b, t) = (breaker(), Instant::now());
        opened(&b, t);
        let t = t + 10 * S;
        b.admit(t);
        assert_eq!(ok(&b, t), None);
        b.admit(t);
        assert_eq!(ok(&b, t), Some(Transition::Closed));
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(t), (true, None));
    }

    #[test]
    fn failed_probe_reopens_with_doubled_capped_timeout_and_closing_resets_it() {
        let (b, t0) = (breaker(), Instant::now());
        opened(&b, t0);
        let mut t = t0 + 10 * S;
        for want in [20 * S, 35 * S, 35 * S] {
            assert_eq!(b.admit(t).1, Some(Transition::HalfOpened));
            assert_eq!(fail(&b, t), Some(Transition::Opened), "one failure reopens");
            assert!(!b.usable(t + want - Duration::from_millis(1)), "{want:?}");
            assert!(b.usable(t + want), "{want:?}");
            t += want;
        }
        b.admit(t);
        ok(&b, t);
        b.admit(t);
        assert_eq!(ok(&b, t), Some(Transition::Closed));
        opened(&b, t);
        assert!(b.usable(t + 10 * S), "backoff reset to the open timeout");
    }

    #[test]
    fn lost_probe_is_presumed_failed_after_the_timeout() {
        let (b, t) = (breaker(), Instant::now());
        opened(&b, t);
        b.admit(t + 10 * S);
        assert_eq!(b.admit(t + 19 * S), (false, None));
        assert!(b.usable(t + 20 * S));
        assert_eq!(b.admit(t + 20 * S), (true, None));
    }

    #[test]
    fn force_close_closes_as_fresh_and_keeps_a_closed_run() {
        let (b, t) = (breaker(), Instant::now());
        assert_eq!(b.force_close(), None);
        opened(&b, t);
        assert_eq!(b.force_close(), Some(Transition::Closed));
        assert_eq!(b.state(), State::Closed);
        assert!(b.usable(t));
        // From HalfOpen too, and a failed probe's doubled timeout goes back to the open timeout.
        opened(&b, t);
        let t = t + 10 * S;
        assert_eq!(b.admit(t).1, Some(Transition::HalfOpened));
        assert_eq!(fail(&b, t), Some(Transition::Opened));
        assert_eq!(b.admit(t + 20 * S).1, Some(Transition::HalfOpened));
        assert_eq!(b.force_close(), Some(Transition::Closed));
        opened(&b, t);
        assert!(b.usable(t + 10 * S), "backoff reset to the open timeout");
        assert_eq!(b.force_close(), Some(Transition::Closed));
        b.admit(t);
        fail(&b, t);
        fail(&b, t);
        assert_eq!(b.force_close(), None);
        assert_eq!(
            fail(&b, t),
            Some(Transition::Opened),
            "force_close of Closed keeps the run"
        );
    }

    #[test]
    fn odd_configs_do_not_wedge() {
        let b = Breaker::new(BreakerConfig {
            failures: 0,
            open_timeout: Duration::MAX,
            max_open_timeout: Duration::ZERO,
            half_open_requests: 0,
            successes: 0,
        });
        let t = Instant::now();
        assert_eq!(fail(&b, t), Some(Transition::Opened));
        assert!(
            !b.usable(t + 1000 * S),
            "an unrepresentable deadline never passes"
        );
        assert_eq!(b.force_close(), Some(Transition::Closed));
        let b = Breaker::new(BreakerConfig {
            failures: 1,
            successes: 0,
            half_open_requests: 0,
            ..BreakerConfig::default()
        });
        fail(&b, t);
        assert_eq!(b.admit(t + 30 * S), (true, Some(Transition::HalfOpened)));
        assert_eq!(ok(&b, t), Some(Transition::Closed));
    }
}
