//! The bucket keys of rate-limited clients: [`ip_key`] for a client address, [`bytes_key`] for a
//! header value such as an API key. Called per request on a shard thread; the hash secret is drawn
//! once per process and cached per thread, so a key costs no allocation and no lock.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::OnceLock;

use crate::policy::hash::hash_bytes;

/// The key of a client address; v4 and v4-mapped v6 give the same key.
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6),
        },
    }
}

/// The key of a value such as an API-key header: a 128-bit hash keyed by a random secret drawn
/// once per process, so clients cannot aim collisions at someone else's bucket.
pub fn bytes_key(v: &[u8]) -> u128 {
    thread_local! {
        static SECRET: (u64, u64) = secret();
    }
    SECRET.with(|&(a, b)| u128::from(hash_bytes(a, v)) << 64 | u128::from(hash_bytes(b, v)))
}

fn secret() -> (u64, u64) {
    static SECRET: OnceLock<(u64, u64)> = OnceLock::new();
    *SECRET.get_or_init(|| {
        let s = RandomState::new();
        (s.hash_one(1u8), s.hash_one(2u8))
    })
}
