//! STUB (replaced by the edge branch).
use std::net::IpAddr;
#[derive(Debug, Clone, PartialEq)]
pub struct Cidr(IpAddr, u8);
impl std::str::FromStr for Cidr { type Err = String; fn from_str(s: &str) -> Result<Self, String> { let (a, l) = s.split_once('/').unwrap_or((s, "32")); Ok(Cidr(a.parse().map_err(|_| "bad")?, l.parse().map_err(|_| "bad")?)) } }
pub struct Trusted(Vec<Cidr>);
impl Trusted { pub fn new(l: Vec<Cidr>) -> Self { Trusted(l) } pub fn contains(&self, ip: IpAddr) -> bool { self.0.iter().any(|c| c.0 == ip) } pub fn is_empty(&self) -> bool { self.0.is_empty() } }
pub fn client_ip(peer: IpAddr, _t: &Trusted, _x: &[&[u8]]) -> IpAddr { peer }
