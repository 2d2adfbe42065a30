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
        let kept = pair_up(old, wanted);
        let added: Vec<(usize, &Listener)> = wanted
            .iter()
            .enumerate()
            .filter(|(i, _)| !kept.contains(&Some(*i)))
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
        for (o, w) in old.iter().zip(&kept) {
            match w.map(|i| &wanted[i]) {
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
                        link.send(ToShard::Unlisten(o.bound_addr()));
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
            let kinds = added
                .iter()
                .zip(&bound)
                .map(|((_, l), b)| ListenerKind::of(l, *b));
            let with_flags = mine.into_iter().zip(kinds).collect();
            self.links[id].send(ToShard::Listen(Handoff::new(with_flags)));
        }
        for ((_, l), real) in added.iter().zip(bound) {
            println!("listening on {real}");
            now.push(Listener {
                addr: real,
                bound: Some(real),
                ..(*l).clone()
            });
        }
        Ok(now)
    }
}

/// For each old listener, the wanted one that keeps it (by index), if any: the same written
/// address, TLS matching TLS first. Port 0 may be written more than once: the n-th such old
/// listener of a kind keeps the n-th wanted one, never one another old listener kept (so each
/// keeps its own certificates, and a third one written is opened anew).
fn pair_up(old: &[Listener], wanted: &[Listener]) -> Vec<Option<usize>> {
    let mut taken = vec![false; wanted.len()];
    let mut pairs = vec![None; old.len()];
    let same_kind = |o: &Listener, w: &Listener| w.tls.is_some() == o.tls.is_some();
    for strict in [true, false] {
        for (o, pair) in old.iter().zip(pairs.iter_mut()) {
            if pair.is_some() {
                continue;
            }
            let found = (0..wanted.len()).find(|&i| {
                !taken[i] && wanted[i].addr == o.addr && (!strict || same_kind(o, &wanted[i]))
            });
            if let Some(i) = found {
                taken[i] = true;
                *pair = Some(i);
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CertPaths, ListenerTls};

    fn listener(addr: &str, tls: Option<&str>) -> Listener {
        Listener {
            addr: addr.parse().unwrap(),
            proxy_protocol: false,
            tls: tls.map(|c| {
                ListenerTls::new(vec![CertPaths {
                    cert: c.into(),
                    key: c.into(),
                }])
            }),
            h2c: false,
            bound: None,
        }
    }

    #[test]
    fn each_old_listener_keeps_its_own_wanted_one_even_when_port_0_is_written_twice() {
        let zero = "127.0.0.1:0";
        let old = [
            listener(zero, Some("a")),
            listener(zero, None),
            listener(zero, Some("b")),
            listener("127.0.0.1:8080", None),
        ];
        let wanted = [
            listener(zero, None),
            listener(zero, Some("a2")),
            listener(zero, Some("b2")),
            listener(zero, Some("c")),
        ];
        // TLS keeps TLS in written order; the plain one keeps the plain one; 8080 is gone and
        // the third TLS one written is new.
        assert_eq!(pair_up(&old, &wanted), [Some(1), Some(0), Some(2), None]);
        // A listener whose TLS was switched still keeps its address (a restart applies it).
        let wanted = [listener(zero, None)];
        assert_eq!(pair_up(&old[..1], &wanted), [Some(0)]);
    }
}
