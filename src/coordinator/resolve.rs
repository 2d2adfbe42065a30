//! Periodic re-resolution of endpoint hostnames (written as `name:port`, not an IP): when an
//! address changed, the coordinator sends shards a new config version with it. Coordinator
//! thread; the lookup blocks this thread only, never a shard.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{self, Config};

/// How often to look: the shortest `resolve_interval` among clusters that name a host.
pub fn interval(c: &Config) -> Option<Duration> {
    c.clusters
        .iter()
        .filter(|cl| cl.endpoints.iter().any(|e| is_hostname(&e.name)))
        .map(|cl| cl.resolve_interval)
        .min()
}

/// A new config when any hostname now resolves elsewhere; lookup failures keep the old address.
pub fn refresh(c: &Config) -> Option<Config> {
    let mut next = c.clone();
    let mut changed = false;
    for cl in &mut next.clusters {
        for e in &mut cl.endpoints {
            if !is_hostname(&e.name) {
                continue;
            }
            if let Ok(addr) = config::resolve(&e.name) {
                if addr != e.addr {
                    e.addr = addr;
                    changed = true;
                }
            }
        }
    }
    changed.then_some(next)
}

fn is_hostname(name: &str) -> bool {
    name.parse::<SocketAddr>().is_err()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ip_literals_are_not_hostnames() {
        assert!(!super::is_hostname("127.0.0.1:80"));
        assert!(!super::is_hostname("[::1]:80"));
        assert!(super::is_hostname("localhost:80"));
    }
}
