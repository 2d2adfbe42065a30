//! STUB (replaced by the policy branch).
use std::time::{Duration, Instant};
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig { pub failures: u32, pub open_timeout: Duration, pub max_open_timeout: Duration, pub half_open_requests: u32, pub successes: u32 }
impl Default for BreakerConfig { fn default() -> Self { BreakerConfig { failures: 5, open_timeout: Duration::from_secs(30), max_open_timeout: Duration::from_secs(300), half_open_requests: 1, successes: 2 } } }
pub enum State { Closed, Open, HalfOpen }
pub enum Transition { Opened, HalfOpened, Closed }
pub struct Breaker;
impl Breaker {
    pub fn new(_c: BreakerConfig) -> Self { Breaker }
    pub fn usable(&self, _n: Instant) -> bool { true }
    pub fn admit(&self, _n: Instant) -> (bool, Option<Transition>) { (true, None) }
    pub fn on_success(&self, _n: Instant) -> Option<Transition> { None }
    pub fn on_failure(&self, _n: Instant) -> Option<Transition> { None }
    pub fn force_open(&self, _n: Instant) -> Option<Transition> { None }
    pub fn force_close(&self) -> Option<Transition> { None }
    pub fn state(&self) -> State { State::Closed }
}
