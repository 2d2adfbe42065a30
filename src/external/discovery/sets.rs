//! The owner's record of DNS discovery (the coordinator's, or a library client's): the
//! last-known endpoint set of every (cluster, name), when each last answered, whether it is
//! failing (logged once per change of state), the refresh counters; and the config a changed set
//! makes (written endpoints, then the sets found). The owner's thread.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::lookup::Found;
use super::wire::Failure;
use crate::config::discovery::is_discovered;
use crate::config::{Config, Discover, Endpoint};
use crate::stats::DiscoveryFigures;

/// What one name of one cluster last found.
#[derive(Debug, Default)]
struct Known {
    endpoints: Vec<Endpoint>,
    /// The last successful answer (`None`: never answered yet).
    answered: Option<Instant>,
    /// The failure it is in now, logged when it began.
    failing: Option<Failure>,
}

/// Every discovered set, keyed by cluster name and the name as written.
#[derive(Default)]
pub struct Sets {
    known: HashMap<(String, Discover), Known>,
    refreshes: BTreeMap<(String, &'static str), u64>,
    /// Since when the current names have been looked up (the age of a set never answered).
    started: Option<Instant>,
}

impl Sets {
    /// Forgets names the config no longer has (a reload that changed them starts afresh).
    pub fn keep_only(&mut self, c: &Config, now: Instant) {
        self.started.get_or_insert(now);
        let wanted: Vec<(&str, &Discover)> = (c.clusters.iter())
            .flat_map(|cl| cl.discover.iter().map(move |d| (cl.name.as_str(), d)))
            .collect();
        self.known
            .retain(|(cl, d), _| wanted.iter().any(|(c, w)| c == cl && *w == d));
        self.refreshes
            .retain(|(cl, _), _| wanted.iter().any(|(c, _)| c == cl));
    }

    /// Records an answer; true when the cluster's endpoint set changed. Logs a changed set, a
    /// failure when it begins and the recovery.
    pub fn note(
        &mut self,
        (cluster, discover): (String, Discover),
        result: Result<Found, Failure>,
        now: Instant,
    ) -> bool {
        let key = (cluster, discover);
        let k = self.known.entry(key.clone()).or_default();
        let (cluster, written) = (&key.0, key.1.written());
        let result = match result {
            Ok(found) => {
                if let Some(f) = k.failing.take() {
                    eprintln!(
                        "discovery: cluster {cluster} {written}: answers again (after {})",
                        f.name()
                    );
                }
                k.answered = Some(now);
                if found.endpoints == k.endpoints {
                    "ok"
                } else {
                    let names = |v: &[Endpoint]| -> Vec<String> {
                        v.iter().map(|e| e.name.clone()).collect()
                    };
                    let (old, new) = (names(&k.endpoints), names(&found.endpoints));
                    let added: Vec<&String> = new.iter().filter(|n| !old.contains(n)).collect();
                    let gone: Vec<&String> = old.iter().filter(|n| !new.contains(n)).collect();
                    eprintln!(
                        "discovery: cluster {cluster} {written}: {} endpoints (added {added:?}, removed {gone:?})",
                        new.len()
                    );
                    k.endpoints = found.endpoints;
                    "changed"
                }
            }
            Err(f) => {
                if k.failing != Some(f) {
                    eprintln!(
                        "discovery: cluster {cluster} {written}: lookup failed ({}); keeping the last-known {} endpoints",
                        f.name(),
                        k.endpoints.len()
                    );
                    k.failing = Some(f);
                }
                f.name()
            }
        };
        *self.refreshes.entry((key.0, result)).or_insert(0) += 1;
        result == "changed"
    }

    /// `c` with each discovering cluster's endpoints made of its written ones and the sets
    /// found; `None` when that is what `c` already has.
    pub fn apply(&self, c: &Config) -> Option<Config> {
        let mut next = c.clone();
        for cl in next
            .clusters
            .iter_mut()
            .filter(|cl| !cl.discover.is_empty())
        {
            let mut eps: Vec<Endpoint> = (cl.endpoints.iter())
                .filter(|e| !is_discovered(&e.name))
                .cloned()
                .collect();
            for d in &cl.discover {
                if let Some(k) = self.known.get(&(cl.name.clone(), d.clone())) {
                    for e in &k.endpoints {
                        if !eps.iter().any(|x| x.name == e.name) {
                            eps.push(e.clone());
                        }
                    }
                }
            }
            cl.endpoints = eps;
        }
        let same = (next.clusters.iter().zip(&c.clusters)).all(|(a, b)| a.endpoints == b.endpoints);
        (!same).then_some(next)
    }

    /// How old cluster `cl`'s set is: since its least recently answered name last answered.
    fn age(&self, cl: &crate::config::Cluster, now: Instant) -> Duration {
        let since = self.started.unwrap_or(now);
        (cl.discover.iter())
            .map(|d| {
                let k = self.known.get(&(cl.name.clone(), d.clone()));
                now.saturating_duration_since(k.and_then(|k| k.answered).unwrap_or(since))
            })
            .max()
            .unwrap_or_default()
    }

    /// The first cluster whose set is older than its `max_stale`, as the `/readyz` line.
    pub fn stale(&self, c: &Config, now: Instant) -> Option<String> {
        c.clusters.iter().find_map(|cl| {
            let max = cl.max_stale.filter(|_| !cl.discover.is_empty())?;
            let age = self.age(cl, now);
            (age > max).then(|| {
                format!(
                    "discovery: cluster {}: endpoint set is {:.1}s old (max_stale {:.1}s)",
                    cl.name,
                    age.as_secs_f64(),
                    max.as_secs_f64()
                )
            })
        })
    }

    /// The figures of the discovery metrics for config `c`.
    pub fn figures(&self, c: &Config, now: Instant) -> DiscoveryFigures {
        DiscoveryFigures {
            refreshes: (self.refreshes.iter())
                .map(|((cl, r), n)| (cl.clone(), *r, *n))
                .collect(),
            clusters: (c.clusters.iter())
                .filter(|cl| !cl.discover.is_empty())
                .map(|cl| {
                    let n = cl.endpoints.len() as u64;
                    (cl.name.clone(), n, self.age(cl, now).as_secs_f64())
                })
                .collect(),
        }
    }
}
