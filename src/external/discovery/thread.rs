//! The discovery thread: owns every DNS question, so a slow or silent DNS server never holds up
//! its owner (the coordinator's loop, or a library client's thread) nor any shard. It keeps a
//! schedule of the current targets, asks each when it is due, sends what it found (or why not)
//! to the owner, and asks again after the records' TTL clamped to `[min_ttl, max_ttl]` (after
//! `min_ttl` when the lookup failed). A new target list keeps the schedule of targets that did
//! not change. Runs on its own thread, started by its owner (the coordinator, or a library
//! client).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::lookup::{lookup, Found};
use super::wire::Failure;
use crate::config::Discover;

/// How long one DNS question waits for each resolver.
pub const QUESTION_TIMEOUT: Duration = Duration::from_secs(2);

/// One name to keep looked up, for one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub cluster: String,
    pub what: Lookup,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
}

/// What is asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A `dns:` or `srv:` endpoint, asked of the DNS servers.
    Dns(Discover),
    /// A plain `host:port` endpoint: its first address from the system resolver.
    Host(String),
}

/// What the owner tells the thread: everything to look up now, and whom to ask (empty:
/// /etc/resolv.conf's nameservers, read again with each list).
pub struct Targets {
    pub targets: Vec<Target>,
    pub resolvers: Vec<SocketAddr>,
}

/// One lookup's outcome.
pub enum Answer {
    Dns {
        cluster: String,
        discover: Discover,
        result: Result<Found, Failure>,
    },
    /// A plain hostname's first address now (`None`: it did not resolve; the old one stays).
    Host {
        cluster: String,
        name: String,
        addr: Option<SocketAddr>,
    },
}

/// Starts the thread; it ends when its owner drops its sender.
pub fn spawn(
    orders: Receiver<Targets>,
    answers: Sender<Answer>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("discovery".into())
        .spawn(move || run(orders, answers))
}

fn run(orders: Receiver<Targets>, answers: Sender<Answer>) {
    let mut jobs: Vec<(Target, Instant)> = Vec::new();
    let mut resolvers: Vec<SocketAddr> = Vec::new();
    loop {
        let next = jobs.iter().map(|j| j.1).min();
        let order = match next {
            Some(due) => orders.recv_deadline(due),
            None => orders.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match order {
            Ok(t) => {
                resolvers = if t.resolvers.is_empty() {
                    system_resolvers()
                } else {
                    t.resolvers
                };
                let now = Instant::now();
                jobs = (t.targets.into_iter())
                    .map(|t| {
                        let due = jobs.iter().find(|j| j.0 == t).map_or(now, |j| j.1);
                        (t, due)
                    })
                    .collect();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        for (t, due) in &mut jobs {
            if Instant::now() < *due {
                continue;
            }
            let cluster = t.cluster.clone();
            let answer = match &t.what {
                Lookup::Dns(d) => {
                    let result = lookup(d, &resolvers, QUESTION_TIMEOUT);
                    let wait = match &result {
                        Ok(f) => f.ttl.clamp(t.min_ttl, t.max_ttl),
                        Err(_) => t.min_ttl,
                    };
                    *due = Instant::now() + wait;
                    Answer::Dns {
                        cluster,
                        discover: d.clone(),
                        result,
                    }
                }
                Lookup::Host(name) => {
                    let addr = super::hosts::first_address(name);
                    *due = Instant::now() + t.max_ttl;
                    Answer::Host {
                        cluster,
                        name: name.clone(),
                        addr,
                    }
                }
            };
            if answers.send(answer).is_err() {
                return;
            }
        }
    }
}

/// The `nameserver` lines of /etc/resolv.conf (port 53); 127.0.0.1 when there are none, as
/// the C library does.
pub fn system_resolvers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let found = nameservers(&text);
    if found.is_empty() {
        return vec![SocketAddr::from(([127, 0, 0, 1], 53))];
    }
    found
}

fn nameservers(text: &str) -> Vec<SocketAddr> {
    (text.lines())
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        // A scoped IPv6 address (fe80::1%eth0) keeps only the address.
        .filter_map(|ip| ip.split('%').next()?.parse().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolv_conf_nameservers_in_order() {
        let text = "# comment\nsearch lan\nnameserver 10.0.0.2\nnameserver ::1\noptions ndots:2\nnameserver bogus\n";
        let got = super::nameservers(text);
        assert_eq!(
            got,
            vec!["10.0.0.2:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
