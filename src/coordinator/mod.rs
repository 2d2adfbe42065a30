//! The coordinator thread (the main thread after start-up): reserves listen ports, starts one
//! shard per core and waits for each to report ready, then turns signals into the drain: broadcast
//! `Drain`, print progress once a second, exit 0 when every shard drained or 1 at the deadline.
//!
//! Phases and what TERM/INT mean in each:
//! - starting (shards binding, until every one reported `Ready`): exit 1 at once;
//! - running: start the drain;
//! - draining (no new connections, in-flight requests finish): exit 1 at once.

pub mod admin;
mod listeners;
mod signals;

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{after, select, tick, Receiver};

use crate::bus::{self, ShardLink, ToCoordinator, ToShard};
use crate::config::Config;
use crate::shard;

/// How long shards may take to bind and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs shardgate until it has drained; returns the process exit code.
pub fn run(config: Config) -> i32 {
    let signals = match signals::listen() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return 1;
        }
    };
    let (listen, mut sockets) =
        match listeners::open(&config.listen, config.shards.count, config.shards.backlog) {
            Ok(l) => l,
            Err(msg) => {
                eprintln!("error: {msg}");
                return 1;
            }
        };
    let config = Arc::new(config);
    let (reports_tx, reports) = crossbeam_channel::unbounded();
    let mut links = Vec::new();
    for (id, shard_sockets) in sockets.drain(..).enumerate() {
        let (link, mailbox) = bus::mailbox();
        let reports = reports_tx.clone();
        if let Err(e) = shard::spawn(id, config.clone(), shard_sockets, mailbox, reports) {
            eprintln!("error: cannot start shard {id}: {e}");
            return 1;
        }
        links.push(link);
    }
    drop(reports_tx);

    if let Err(code) = wait_ready(&links, &reports, &signals) {
        return code;
    }
    for addr in &listen {
        println!("listening on {addr}");
    }
    println!("ready: {} shards", links.len());
    // Running: wait for a signal (shards report nothing while serving).
    loop {
        select! {
            recv(signals) -> sig => {
                let sig = sig.unwrap_or(libc::SIGTERM);
                eprintln!("{}: draining (deadline {:?})", signals::name(sig), config.timeouts.drain);
                break;
            }
            recv(reports) -> msg => {
                if let Ok(ToCoordinator::Failed { id, error }) = msg {
                    eprintln!("error: shard {id}: {error}");
                    return 1;
                }
            }
        }
    }
    drain(&links, &reports, &signals, config.timeouts.drain)
}

fn wait_ready(
    links: &[ShardLink],
    reports: &Receiver<ToCoordinator>,
    signals: &Receiver<i32>,
) -> Result<(), i32> {
    let deadline = after(START_TIMEOUT);
    let mut ready = 0;
    while ready < links.len() {
        select! {
            recv(reports) -> msg => match msg {
                Ok(ToCoordinator::Ready { id, driver, core }) => {
                    let core = core.map_or("none".to_string(), |c| c.to_string());
                    eprintln!("shard {id}: core {core}, driver {}", driver.name());
                    ready += 1;
                }
                Ok(ToCoordinator::Failed { id, error }) => {
                    eprintln!("error: shard {id}: {error}");
                    return Err(1);
                }
                Ok(_) => {}
                Err(_) => {
                    eprintln!("error: shards exited during start-up");
                    return Err(1);
                }
            },
            recv(signals) -> sig => {
                eprintln!("{} during start-up: exiting", signals::name(sig.unwrap_or(libc::SIGTERM)));
                return Err(1);
            }
            recv(deadline) -> _ => {
                eprintln!("error: {} of {} shards ready after {START_TIMEOUT:?}", ready, links.len());
                return Err(1);
            }
        }
    }
    Ok(())
}

/// The drain barrier: every shard drains, or the deadline passes, or a second signal arrives.
fn drain(
    links: &[ShardLink],
    reports: &Receiver<ToCoordinator>,
    signals: &Receiver<i32>,
    timeout: Duration,
) -> i32 {
    for link in links {
        link.send(ToShard::Drain);
    }
    let n = links.len();
    let mut left = vec![(0usize, 0usize); n];
    let mut drained = vec![false; n];
    let progress = tick(Duration::from_secs(1));
    let give_up = after(timeout);
    loop {
        select! {
            recv(reports) -> msg => match msg {
                Ok(ToCoordinator::Progress { id, connections, requests }) => left[id] = (connections, requests),
                Ok(ToCoordinator::Drained { id }) => {
                    drained[id] = true;
                    left[id] = (0, 0);
                    if drained.iter().all(|d| *d) {
                        eprintln!("drained");
                        return 0;
                    }
                }
                Ok(ToCoordinator::Failed { id, error }) => {
                    // That shard will never report Drained.
                    eprintln!("error: shard {id}: {error}");
                    return 1;
                }
                Ok(ToCoordinator::Ready { .. }) => {}
                Err(_) => {
                    eprintln!("drained");
                    return 0;
                }
            },
            recv(progress) -> _ => {
                let parts: Vec<String> = left
                    .iter()
                    .enumerate()
                    .map(|(id, (c, r))| format!("shard {id}: {c} connections, {r} requests"))
                    .collect();
                eprintln!("draining: {}", parts.join("; "));
            }
            recv(signals) -> sig => {
                eprintln!("{} during drain: exiting now", signals::name(sig.unwrap_or(libc::SIGTERM)));
                return 1;
            }
            recv(give_up) -> _ => {
                let conns: usize = left.iter().map(|(c, _)| c).sum();
                eprintln!("drain deadline passed: {conns} connections left");
                return 1;
            }
        }
    }
}
