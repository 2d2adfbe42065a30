//! Endpoint selection algorithms, kept apart from health: a balancer picks among the endpoints the
//! caller says are usable. Pure per-shard state (`Cell`), no atomics; unit-tested without a runtime.

use std::cell::Cell;

/// Plain round-robin over endpoint indices.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl RoundRobin {
    /// The next endpoint of `n` that `usable` accepts, or `None` when none does.
    pub fn pick(&self, n: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.next.get();
        for k in 0..n {
            let i = (start + k) % n;
            if usable(i) {
                self.next.set((i + 1) % n);
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_skips_unusable() {
        let rr = RoundRobin::default();
        let picks: Vec<_> = (0..4).map(|_| rr.pick(3, |_| true).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0]);
        assert_eq!(rr.pick(3, |i| i != 1), Some(2));
        assert_eq!(rr.pick(3, |_| false), None);
    }
}

// STUB additions (replaced by the policy branch).
use std::time::Instant;
#[derive(Debug, Clone, PartialEq)]
pub enum HashOn { ClientIp, Header(String), Cookie(String) }
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm { RoundRobin, Weighted, LeastRequest, PeakEwma, Random, Hash(HashOn) }
impl std::str::FromStr for Algorithm { type Err = String; fn from_str(s: &str) -> Result<Self, String> { Ok(match s { "round-robin" => Algorithm::RoundRobin, "weighted" => Algorithm::Weighted, "least-request" => Algorithm::LeastRequest, "ewma" => Algorithm::PeakEwma, "random" => Algorithm::Random, "hash:client-ip" => Algorithm::Hash(HashOn::ClientIp), _ => return Err(format!("bad {s}")) }) } }
impl Algorithm { pub fn name(&self) -> String { "round-robin".into() } }
pub trait Candidates { fn len(&self) -> usize; fn usable(&self, i: usize) -> bool; fn in_flight(&self, i: usize) -> u32; fn ewma_cost(&self, i: usize, now: Instant) -> f64; }
pub struct Balancer(RoundRobin);
impl Balancer { pub fn new(_a: &Algorithm, _ids: &[&str], _w: &[u32], _s: u64) -> Balancer { Balancer(RoundRobin::default()) } pub fn pick<C: Candidates>(&self, c: &C, _k: Option<&[u8]>, _n: Instant) -> Option<usize> { self.0.pick(c.len(), |i| c.usable(i)) } }
pub struct PeakEwma;
impl PeakEwma { pub fn new(_t: std::time::Duration, _i: std::time::Duration) -> Self { PeakEwma } pub fn observe(&self, _r: std::time::Duration, _n: Instant) {} pub fn cost(&self, _n: Instant, f: u32) -> f64 { f as f64 } }
