//! Listeners across a reload: opens (on every shard) the addresses the new config adds, closes
//! those it removes and keeps the rest, so a reload never rebinds a port it already holds.
//! Coordinator thread only.

use super::listeners;
use super::state::Coordinator;
use crate::bus::{Handoff, ListenerKind, ToShard};
use crate::config::{Config, Listener};

impl Coordinator {
    /// Opens listeners the new config adds and closes those it removes; returns the listeners
    /// now open (a listener whose only change is its PROXY setting keeps the old one; one that
    /// stays TLS takes the new certificates). A bind
    /// that fails names the flag or file:line of the address in `next`.
    pub(super) fn relisten(&mut self, next: &Config) -> Result<Vec<Listener>, String> {
        let wanted = &next.listeners;
        let old = &self.config.listeners;
        let added: Vec<(usize, &Listener)> = wanted
            .iter()
            .enumerate()
            .filter(|(_, w)| !old.iter().any(|o| o.addr == w.addr))
            .collect();
        let addrs: Vec<_> = added.iter().map(|(_, l)| l.addr).collect();
        let n = self.links.len();
        let (bound, sockets) = listeners::open(
            &addrs,
            n,
            self.config.shards.backlog,
            self.config.steer_client_ip,
        )
        .map_err(|(i, msg)| {
            let field = format!("listeners[{}]", added[i].0);
            next.invalid(&field, msg).to_string()
        })?;
        let mut now: Vec<Listener> = Vec::new();
        for o in old {
            // Port 0 may be written more than once: a TLS listener keeps matching a TLS one.
            let same_kind = |w: &&Listener| w.tls.is_some() == o.tls.is_some();
            let kept = wanted.iter().filter(|w| w.addr == o.addr);
            match kept.clone().find(same_kind).or_else(|| kept.clone().next()) {
                Some(w) => {
                    if w.proxy_protocol != o.proxy_protocol {
                        eprintln!("reload: proxy_protocol on {} needs a restart", o.addr);
                    }
                    if w.h2c != o.h2c {
                        eprintln!("reload: h2c on {} needs a restart", o.addr);
                    }
                    // Certificates, client CA and ALPN reload; TLS on or off needs a restart.
                    let tls = match (&o.tls, &w.tls) {
                        (Some(_), Some(new)) => Some(new.clone()),
                        (old, new) => {
                            if old.is_some() != new.is_some() {
                                eprintln!("reload: tls on or off for {} needs a restart", o.addr);
                            }
                            old.clone()
                        }
                    };
                    now.push(Listener { tls, ..o.clone() });
                }
                None => {
                    self.upgrades.offers.remove(o.addr);
                    for link in &self.links {
                        link.send(ToShard::Unlisten(o.addr));
                    }
                    println!("closed listener {}", o.addr);
                }
            }
        }
        for (i, (_, l)) in added.iter().enumerate() {
            let group: Vec<_> = sockets.iter().map(|mine| &mine[i]).collect();
            if let Err(e) = self.upgrades.offers.add(l.addr, (*l).into(), &group) {
                eprintln!("reload: no copy of {} for upgrades: {e}", l.addr);
            }
        }
        for (id, mine) in sockets.into_iter().enumerate() {
            let with_flags = mine
                .into_iter()
                .zip(added.iter().map(|(_, l)| ListenerKind::of(l)))
                .collect();
            self.links[id].send(ToShard::Listen(Handoff::new(with_flags)));
        }
        for ((_, l), real) in added.iter().zip(bound) {
            println!("listening on {real}");
            now.push(Listener {
                addr: real,
                ..(*l).clone()
            });
        }
        Ok(now)
    }
}
