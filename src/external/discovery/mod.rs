//! DNS service discovery for `dns:` and `srv:` endpoints, and the re-resolution of plain
//! hostname endpoints (`hosts`). Its owner — the proxy's coordinator, or a library
//! `embed::Client` — holds a `Discovery`: a discovery thread (`thread`) asks DNS (`wire` over
//! UDP/TCP, `lookup` for A/AAAA and SRV) or the system resolver and sends answers back; the
//! owner records them (`sets`) and turns a changed endpoint set into a new config version, the
//! same config event a reload makes, so pools, breakers, EWMA and health of endpoints that stay
//! are kept. Failures keep the last-known set. The owner's thread (this file and `sets`: the
//! coordinator's loop, or a client's polling task), discovery thread (`thread`, `lookup`,
//! `wire`); the thread ends when the `Discovery` is dropped.

mod hosts;
mod lookup;
mod sets;
mod thread;
mod wire;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, never, select, Receiver, Sender};

use crate::config::{Config, Discover};
pub use sets::Sets;
pub use thread::Answer;
use thread::{Lookup, Target, Targets};

/// The owner's end of discovery: the thread (started when a config first discovers), its
/// answers, the targets it was last given, and the record of what was found.
pub struct Discovery {
    orders: Option<Sender<Targets>>,
    pub answers: Receiver<Answer>,
    sent: Option<(Vec<Target>, Vec<SocketAddr>)>,
    pub sets: Sets,
    /// Whether `/readyz` last found a set too old (logged when that changes).
    pub stale_logged: bool,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            orders: None,
            answers: never(),
            sent: None,
            sets: Sets::default(),
            stale_logged: false,
        }
    }
}

impl Discovery {
    /// Whether the thread runs (a config had a name to look up).
    pub fn running(&self) -> bool {
        self.orders.is_some()
    }

    /// Gives the thread the names of config `c` when they (or the resolvers) changed, starting
    /// it the first time; forgets the sets of names `c` no longer has.
    pub fn follow(&mut self, c: &Config) {
        self.sets.keep_only(c, Instant::now());
        let targets = targets(c);
        let now = (targets, c.resolvers.clone());
        if self.sent.as_ref() == Some(&now) || (self.sent.is_none() && now.0.is_empty()) {
            return;
        }
        if self.orders.is_none() {
            let (orders, rx) = crossbeam_channel::unbounded();
            let (tx, answers) = crossbeam_channel::unbounded();
            if let Err(e) = thread::spawn(rx, tx) {
                eprintln!("error: cannot start the discovery thread: {e}; dns:/srv: endpoints stay unresolved");
                return;
            }
            (self.orders, self.answers) = (Some(orders), answers);
        }
        if let Some(o) = &self.orders {
            let _ = o.send(Targets {
                targets: now.0.clone(),
                resolvers: now.1.clone(),
            });
        }
        self.sent = Some(now);
    }

    /// After a reload: gives the thread its names again even when unchanged, so it reads
    /// /etc/resolv.conf again (their schedule is kept).
    pub fn refollow(&mut self, c: &Config) {
        if self.orders.is_some() {
            self.sent = None;
        }
        self.follow(c);
    }

    /// At start, before any shard runs: waits (at most `within`) until every name of `c` has
    /// answered once, successfully or not, and returns `c` with what was found. A name that has
    /// not answered by then leaves its cluster with what else it has; it is still asked.
    pub fn first_round(&mut self, c: Config, within: Duration) -> Config {
        let mut waiting: HashSet<(String, Discover)> = (c.clusters.iter())
            .flat_map(|cl| cl.discover.iter().map(|d| (cl.name.clone(), d.clone())))
            .collect();
        let deadline = after(within);
        while !waiting.is_empty() {
            select! {
                recv(self.answers) -> a => match a {
                    Ok(Answer::Dns { cluster, discover, result }) => {
                        let key = (cluster, discover);
                        waiting.remove(&key);
                        self.sets.note(key, result, Instant::now());
                    }
                    // Plain hostnames were resolved as the config was read.
                    Ok(Answer::Host { .. }) => {}
                    Err(_) => break,
                },
                recv(deadline) -> _ => {
                    for (cl, d) in &waiting {
                        eprintln!("discovery: cluster {cl} {}: no answer yet after {within:?}; starting without it", d.written());
                    }
                    break;
                }
            }
        }
        self.sets.apply(&c).unwrap_or(c)
    }

    /// What an answer changes: the config to broadcast, if any.
    pub fn answer(&mut self, a: Answer, c: &Config) -> Option<Config> {
        match a {
            Answer::Dns {
                cluster,
                discover,
                result,
            } => {
                let changed = self.sets.note((cluster, discover), result, Instant::now());
                changed.then(|| self.sets.apply(c)).flatten()
            }
            Answer::Host {
                cluster,
                name,
                addr,
            } => {
                let next = hosts::apply(c, &cluster, &name, addr?)?;
                eprintln!(
                    "endpoint {name} of cluster {cluster} re-resolved to {}",
                    addr?
                );
                Some(next)
            }
        }
    }
}

/// Every name of `c` to keep looked up: `dns:`/`srv:` endpoints, then plain hostnames (each
/// every `resolve_interval`).
fn targets(c: &Config) -> Vec<Target> {
    let dns = (c.clusters.iter()).flat_map(|cl| {
        cl.discover.iter().map(|d| Target {
            cluster: cl.name.clone(),
            what: Lookup::Dns(d.clone()),
            min_ttl: cl.min_ttl,
            max_ttl: cl.resolve_interval,
        })
    });
    let hosts = (hosts::targets(c).into_iter()).map(|(cluster, name, every)| Target {
        cluster,
        what: Lookup::Host(name),
        min_ttl: every,
        max_ttl: every,
    });
    dns.chain(hosts).collect()
}
