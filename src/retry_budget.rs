//! STUB (replaced by the policy branch).
use std::time::{Duration, Instant};
pub struct RetryBudget;
impl RetryBudget { pub fn new(_r: f64, _m: u32, _w: Duration) -> Self { RetryBudget } pub fn on_request(&self, _n: Instant) {} pub fn try_retry(&self, _n: Instant) -> bool { true } }
