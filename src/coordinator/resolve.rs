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

/// A plain `host:port` endpoint (not an IP literal, not one DNS discovery found).
fn is_hostname(name: &str) -> bool {
    name.parse::<SocketAddr>().is_err() && !config::discovery::is_discovered(name)
}

#[cfg(test)]
mod tests {
    use crate::config::{self, Cluster, Endpoint};

    fn with_endpoint(name: &str, addr: &str) -> crate::config::Config {
        let mut c = crate::cli::Args::base_config();
        c.clusters.push(Cluster::new(
            "c",
            vec![Endpoint {
                name: name.to_string(),
                addr: addr.parse().unwrap(),
                weight: 1,
            }],
        ));
        c
    }

    #[test]
    fn a_hostname_that_now_resolves_elsewhere_gives_a_new_config() {
        // The config remembers an address `localhost` does not resolve to: as if DNS changed.
        let now = config::resolve("localhost:8080").unwrap();
        let stale = if now.is_ipv4() {
            "127.0.0.2:8080"
        } else {
            "[::2]:8080"
        };
        let c = with_endpoint("localhost:8080", stale);
        assert!(super::interval(&c).is_some(), "hostnames are re-resolved");
        let next = super::refresh(&c).expect("a changed address gives a new config");
        assert_eq!(next.clusters[0].endpoints[0].addr, now);
        assert!(super::refresh(&next).is_none(), "no change, no new config");
    }

    #[test]
    fn ip_literal_endpoints_are_never_re_resolved() {
        let c = with_endpoint("127.0.0.1:8080", "127.0.0.1:8080");
        assert_eq!(super::interval(&c), None);
        assert!(super::refresh(&c).is_none());
    }

    #[test]
    fn ip_literals_are_not_hostnames() {
        assert!(!super::is_hostname("127.0.0.1:80"));
        assert!(!super::is_hostname("[::1]:80"));
        assert!(super::is_hostname("localhost:80"));
    }
}
