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
mod tests;
