//! The bucket keys of rate-limited clients: [`ip_key`] for a client address, [`bytes_key`] for a
//! header value such as an API key ([`fleet_bytes_key`] for limits shared across hosts). Called per request on a shard thread; the hash secret is drawn
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

/// The key of a header value for a `scope = "global"` limit: the same 128-bit hash on every
/// host of the fleet (fixed seeds), so two hosts count the same client together. The seeds are
/// public, so a client could aim at another's key only by finding a 128-bit collision.
pub fn fleet_bytes_key(v: &[u8]) -> u128 {
    const SEEDS: (u64, u64) = (0x5eed_f1ee_7000_0001, 0x5eed_f1ee_7000_0002);
    u128::from(hash_bytes(SEEDS.0, v)) << 64 | u128::from(hash_bytes(SEEDS.1, v))
}

fn secret() -> (u64, u64) {
    static SECRET: OnceLock<(u64, u64)> = OnceLock::new();
    *SECRET.get_or_init(|| {
        let s = RandomState::new();
        (s.hash_one(1u8), s.hash_one(2u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fleet_bytes_key(b"k-123")` as every host computes it: a change here splits fleets
    /// running two versions (each would count the client apart).
    const PINNED: u128 = 314_333_691_164_266_350_804_517_165_146_664_685_824;

    #[test]
    fn fleet_keys_are_fixed_and_process_keys_are_not_the_fleet_ones() {
        // The same bytes on any host: pinned, so two builds (two hosts) agree.
        assert_eq!(fleet_bytes_key(b"k-123"), PINNED);
        assert_ne!(fleet_bytes_key(b"k-123"), fleet_bytes_key(b"k-124"));
        assert_ne!(fleet_bytes_key(b"k-123"), bytes_key(b"k-123"));
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
    }
}
