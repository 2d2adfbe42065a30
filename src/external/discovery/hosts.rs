//! Plain `host:port` endpoints (a name, not an IP, not `dns:`/`srv:`) keep their meaning: the
//! first address the system resolver gives, re-resolved every `resolve_interval`, now on the
//! discovery thread rather than in the coordinator's loop. A new address becomes a config
//! version; a failed lookup keeps the old address. Coordinator thread (`targets`, `apply`) and
//! discovery thread (`first_address`).

use std::net::SocketAddr;

use crate::config::{self, Config};

/// Every plain hostname endpoint of `c`: (cluster, endpoint name, its cluster's interval).
pub fn targets(c: &Config) -> Vec<(String, String, std::time::Duration)> {
    (c.clusters.iter())
        .flat_map(|cl| {
            (cl.endpoints.iter())
                .filter(|e| is_hostname(&e.name))
                .map(|e| (cl.name.clone(), e.name.clone(), cl.resolve_interval))
        })
        .collect()
}

/// The first address `host:port` resolves to now (getaddrinfo; blocks the discovery thread).
pub fn first_address(name: &str) -> Option<SocketAddr> {
    config::resolve(name).ok()
}

/// `c` with endpoint `name` of `cluster` at `addr`; `None` when it is there already.
pub fn apply(c: &Config, cluster: &str, name: &str, addr: SocketAddr) -> Option<Config> {
    let at = |c: &Config| {
        (c.clusters.iter().position(|cl| cl.name == cluster)).and_then(|i| {
            let j = c.clusters[i]
                .endpoints
                .iter()
                .position(|e| e.name == name)?;
            Some((i, j))
        })
    };
    let (i, j) = at(c)?;
    if c.clusters[i].endpoints[j].addr == addr {
        return None;
    }
    let mut next = c.clone();
    next.clusters[i].endpoints[j].addr = addr;
    Some(next)
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
        let now = super::first_address("localhost:8080").unwrap();
        let stale = if now.is_ipv4() {
            "127.0.0.2:8080"
        } else {
            "[::2]:8080"
        };
        let c = with_endpoint("localhost:8080", stale);
        assert_eq!(super::targets(&c).len(), 1, "hostnames are re-resolved");
        let next = super::apply(&c, "c", "localhost:8080", now).expect("a changed address");
        assert_eq!(next.clusters[0].endpoints[0].addr, now);
        assert!(
            super::apply(&next, "c", "localhost:8080", now).is_none(),
            "no change, no new config"
        );
        assert!(super::apply(&next, "gone", "localhost:8080", now).is_none());
        assert_eq!(config::resolve("localhost:8080").ok(), Some(now));
    }

    #[test]
    fn ip_literal_and_discovered_endpoints_are_never_re_resolved() {
        let c = with_endpoint("127.0.0.1:8080", "127.0.0.1:8080");
        assert!(super::targets(&c).is_empty());
        assert!(!super::is_hostname("127.0.0.1:80"));
        assert!(!super::is_hostname("[::1]:80"));
        assert!(!super::is_hostname("api.test:80@127.0.0.1"));
        assert!(super::is_hostname("localhost:80"));
    }
}
