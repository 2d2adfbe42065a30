//! STUB (replaced by the policy branch).
use std::time::{Duration, Instant};
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate { pub per_second: f64 }
impl std::str::FromStr for Rate { type Err = String; fn from_str(s: &str) -> Result<Self, String> { let (n, u) = s.split_once('/').ok_or("bad")?; let n: f64 = n.parse().map_err(|_| "bad")?; let d = match u { "s" => 1.0, "m" => 60.0, "h" => 3600.0, _ => return Err("bad".into()) }; Ok(Rate { per_second: n / d }) } }
impl Rate { pub fn per_shard(self, n: usize) -> Rate { Rate { per_second: self.per_second / n as f64 } } }
pub enum Decision { Allowed { remaining: u32 }, Limited { retry_after: Duration } }
pub struct Limiter;
impl Limiter { pub fn new(_r: Rate, _b: u32, _m: usize) -> Self { Limiter } pub fn take(&self, _k: u128, _n: Instant) -> Decision { Decision::Allowed { remaining: 1 } } pub fn len(&self) -> usize { 0 } }
pub fn ip_key(ip: std::net::IpAddr) -> u128 { match ip { std::net::IpAddr::V4(a) => u32::from(a) as u128, std::net::IpAddr::V6(a) => u128::from(a) } }
pub fn bytes_key(v: &[u8]) -> u128 { v.len() as u128 }
