//! The DNS discovery families, from the coordinator's own record (not shard snapshots):
//! `shardgate_discovery_refreshes_total{cluster,result}`, `shardgate_discovery_endpoints{cluster}`
//! and `shardgate_discovery_set_age_seconds{cluster}`; written after the shard families at a
//! scrape, and only when some cluster discovers endpoints. Coordinator thread.

use super::render::Exposition;

/// What the discovery families show at one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiscoveryFigures {
    /// Lookups per cluster and result (`ok`, `changed`, `timeout`, `servfail`, `nxdomain`,
    /// `refused`, `empty`, `malformed`).
    pub refreshes: Vec<(String, &'static str, u64)>,
    /// Per discovering cluster: its endpoints now, and seconds since its oldest name last
    /// answered (since start when one never has).
    pub clusters: Vec<(String, u64, f64)>,
}

impl DiscoveryFigures {
    /// Folds another client's figures in (library clients, one per thread): lookups summed per
    /// cluster and result; per cluster, the most endpoints and the oldest set.
    pub fn merge(&mut self, other: &DiscoveryFigures) {
        for (cluster, result, n) in &other.refreshes {
            let mine = (self.refreshes.iter_mut()).find(|(c, r, _)| c == cluster && r == result);
            match mine {
                Some(m) => m.2 += n,
                None => self.refreshes.push((cluster.clone(), result, *n)),
            }
        }
        for (cluster, n, age) in &other.clusters {
            match self.clusters.iter_mut().find(|(c, _, _)| c == cluster) {
                Some(m) => (m.1, m.2) = (m.1.max(*n), m.2.max(*age)),
                None => self.clusters.push((cluster.clone(), *n, *age)),
            }
        }
    }
}

/// Appends the discovery families to `out` (nothing when no cluster discovers).
pub fn render_discovery(f: &DiscoveryFigures, out: &mut String) {
    if f.clusters.is_empty() {
        return;
    }
    let mut w = Exposition(out);
    let name = "shardgate_discovery_refreshes_total";
    w.family(
        name,
        "counter",
        "DNS discovery lookups, by cluster and result.",
    );
    for (cluster, result, n) in &f.refreshes {
        w.sample(name, &[("cluster", cluster), ("result", result)], None, n);
    }
    let name = "shardgate_discovery_endpoints";
    w.family(
        name,
        "gauge",
        "Endpoints of each discovering cluster (written and found).",
    );
    for (cluster, n, _) in &f.clusters {
        w.sample(name, &[("cluster", cluster)], None, n);
    }
    let name = "shardgate_discovery_set_age_seconds";
    let help = "Seconds since every DNS name of the cluster last answered (its set is this old).";
    w.family(name, "gauge", help);
    for (cluster, _, age) in &f.clusters {
        w.sample(name, &[("cluster", cluster)], None, format!("{age:.3}"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn families_show_once_with_a_sample_per_cluster() {
        let f = super::DiscoveryFigures {
            refreshes: vec![("api".into(), "ok", 3), ("api".into(), "timeout", 1)],
            clusters: vec![("api".into(), 4, 1.5)],
        };
        let mut out = String::new();
        super::render_discovery(&f, &mut out);
        assert!(out.contains(
            "shardgate_discovery_refreshes_total{cluster=\"api\",result=\"timeout\"} 1\n"
        ));
        assert!(out.contains("shardgate_discovery_endpoints{cluster=\"api\"} 4\n"));
        assert!(out.contains("shardgate_discovery_set_age_seconds{cluster=\"api\"} 1.500\n"));
        let mut none = String::new();
        super::render_discovery(&super::DiscoveryFigures::default(), &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn merging_clients_sums_lookups_and_keeps_the_largest_set_and_oldest_age() {
        let mut a = super::DiscoveryFigures {
            refreshes: vec![("api".into(), "ok", 3)],
            clusters: vec![("api".into(), 2, 0.5)],
        };
        let b = super::DiscoveryFigures {
            refreshes: vec![("api".into(), "ok", 2), ("api".into(), "timeout", 1)],
            clusters: vec![("api".into(), 3, 1.5), ("web".into(), 1, 0.1)],
        };
        a.merge(&b);
        assert_eq!(
            a.refreshes,
            [("api".into(), "ok", 5), ("api".into(), "timeout", 1)]
        );
        assert_eq!(a.clusters, [("api".into(), 3, 1.5), ("web".into(), 1, 0.1)]);
    }
}
