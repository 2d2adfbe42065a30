//! STUB (replaced by the ops branch).
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
pub fn class_of(status: u16) -> usize { ((status / 100).clamp(1, 5) - 1) as usize }
#[derive(Default)]
pub struct Hist;
impl Hist { pub fn record(&self, _d: Duration) {} }
#[derive(Default)]
pub struct RouteStats { pub requests: [Cell<u64>; 5], pub latency: Hist, pub rate_limited: Cell<u64>, pub retries: Cell<u64>, pub budget_exhausted: Cell<u64> }
#[derive(Default)]
pub struct EndpointStats { pub requests: [Cell<u64>; 5], pub upstream_latency: Hist, pub connects: Cell<u64>, pub reuses: Cell<u64>, pub pool_waits: Cell<u64>, pub pool_overflows: Cell<u64>, pub failures: Cell<u64>, pub breaker_state: Cell<u8>, pub breaker_transitions: [Cell<u64>; 3], pub healthy: Cell<bool>, pub busy: Cell<u64>, pub idle: Cell<u64> }
#[derive(Default)]
pub struct ShardStats { pub downstream_active: Cell<u64>, pub downstream_idle: Cell<u64>, pub in_flight: Cell<u64>, pub accepted: Cell<u64> }
pub struct ShardMeta { pub id: usize, pub core: Option<usize>, pub driver: &'static str, pub draining: bool, pub connections: u64, pub requests: u64 }
#[derive(Clone, Debug, Default)]
pub struct Snapshot;
impl Snapshot { pub fn merge(&mut self, _o: &Snapshot) {} }
impl ShardStats {
    pub fn new() -> Self { Self::default() }
    pub fn route(&self, _n: &str) -> Rc<RouteStats> { Rc::default() }
    pub fn endpoint(&self, _c: &str, _e: &str) -> Rc<EndpointStats> { Rc::default() }
    pub fn snapshot(&self, _m: ShardMeta) -> Snapshot { Snapshot }
}
pub fn render(_s: &[Snapshot], out: &mut String) { out.push_str("# stub\n"); }
