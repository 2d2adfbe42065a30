//! The coordinator thread (the main thread after start-up): opens every shard's listener, starts
//! the access-log writer, the admin listener and one shard per core, waits for each to report
//! ready, then runs the control loop: signals, admin calls, health news relayed between shards
//! and logged as state changes (`state_log`), statistics merged from shard snapshots, config
//! reload, DNS discovery's answers and re-resolved hostnames (`external::discovery`, looked up on
//! its own thread), session-ticket key rotation, and the drain barrier.
//!
//! Files: `state` (what the coordinator holds), `phase` (the lifecycle `Phase`), `control` (the
//! loop), `reload` and `relisten` (config versions, listeners across a reload), `cert_watch`
//! (TLS files watched, certificates reloaded alone), `gather` (stats for a scrape), `tickets`
//! (session-ticket keys), `external::limits` (the limits thread: global rate limits through Redis,
//! its batches in and "deny until T" tables out), `admin` (the admin thread) and `admin::answer`
//! (its answers, on this thread).
//!
//! Phases (`phase::Phase`) and what each signal means in them:
//! - starting (shards binding, until every one reported `Ready`): TERM/INT exit 1 at once;
//! - running: TERM/INT (or `POST /drain`) start the drain; HUP (or `POST /reload`) reloads the
//!   config file (without one, the TLS certificates alone); USR1 reopens the access log; a TLS
//!   file that changed reloads the certificates alone (`cert_watch`);
//! - draining (no new connections, in-flight requests finish, `/healthz` answers 503): a second
//!   TERM/INT exits 1 at once; exit 0 when every shard drained, 1 at the deadline;
//! - exiting (a code was decided): the loop ends after the event at hand.

pub mod admin;
mod cert_watch;
mod control;
mod gather;
mod listeners;
mod phase;
mod relisten;
mod reload;
mod signals;
mod state;
mod state_log;
mod tickets;
mod upgrade;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::access_log::Writer;
use crate::bus::{self, ListenerKind};
use crate::config::Config;
use crate::shard;
use crate::upgrade::offers::Offers;

pub use crate::upgrade::lifecycle::{Relaunch, Start};
pub use state::Reloader;

/// How long start-up waits for the first DNS answers of `dns:`/`srv:` endpoints.
const FIRST_DISCOVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs shardgate until it has drained; returns the process exit code.
pub fn run(mut config: Config, reload: Reloader, start: Start) -> i32 {
    let signals = match signals::listen() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return 1;
        }
    };
    // An upgrade takes the running process's listening sockets before anything binds.
    let mut inherited = None;
    if start.upgrade {
        let Some(path) = &start.socket else {
            eprintln!("error: --upgrade needs an upgrade socket (--upgrade-socket is off)");
            return 2;
        };
        match crate::upgrade::client::inherit(path) {
            Ok(h) => {
                let n = h.offers.iter().filter(|o| !o.admin).count();
                let admin = if n < h.offers.len() {
                    " and its admin listener"
                } else {
                    ""
                };
                eprintln!(
                    "upgrade: took {n} listening addresses{admin} from process {}",
                    h.old_pid
                );
                inherited = Some(h);
            }
            Err(e) => {
                eprintln!("error: upgrade: {e}; the running process keeps serving");
                return 1;
            }
        }
    }
    if let Some(h) = &inherited {
        for l in &config.listeners {
            let now = crate::upgrade::Serves::from(l);
            match h.served_as(l.addr) {
                Some(was) if was != now => {
                    eprintln!("upgrade: {} was served as {was}, now as {now}", l.addr)
                }
                _ => {}
            }
        }
    }
    let n = config.shards.count;
    let addrs: Vec<_> = config.listeners.iter().map(|l| l.addr).collect();
    let opened = listeners::adopt(
        &addrs,
        n,
        config.shards.backlog,
        config.steer_client_ip,
        inherited.as_mut(),
    );
    // What the config asked for cannot be had: exit 2 naming the flag or file:line that asked.
    let groups = match opened {
        Ok(g) => g,
        Err((i, msg)) => {
            eprintln!("error: {}", config.invalid(&format!("listeners[{i}]"), msg));
            return 2;
        }
    };
    // The old process's admin listener, when this config's admin address is the same.
    let inherited_admin = inherited.as_mut().and_then(|h| h.take_admin(config.admin));
    if let Some(h) = &mut inherited {
        // The old process keeps serving these until its drain; this process does not want them.
        for o in h.offers.drain(..) {
            eprintln!(
                "upgrade: {} is not in this config: not served here",
                o.bound
            );
        }
    }
    // A copy of every listening socket, for the next upgrade.
    let offers = Offers::default();
    for (g, l) in groups.iter().zip(&config.listeners) {
        let group: Vec<_> = g.sockets.iter().collect();
        if let Err(e) = offers.add(g.written, l.into(), &group) {
            eprintln!("error: cannot keep a copy of the {} listener: {e}", g.bound);
            return 1;
        }
    }
    let listen: Vec<_> = groups.iter().map(|g| g.bound).collect();
    for (l, bound) in config.listeners.iter_mut().zip(&listen) {
        l.bound = Some(*bound);
    }
    let mut sockets: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
    for (g, l) in groups.into_iter().zip(&config.listeners) {
        let kind = ListenerKind::of(l, g.bound);
        for (j, socket) in g.sockets.into_iter().enumerate() {
            sockets[j % n].push((socket, kind));
        }
    }
    let log = match Writer::start(&config.access_log) {
        Ok(w) => w,
        Err(e) => {
            let msg = format!("cannot open access log {}: {e}", config.access_log);
            eprintln!("error: {}", config.invalid("access_log", msg));
            return 2;
        }
    };
    let (calls_tx, calls) = crossbeam_channel::unbounded();
    let admin_token = admin::TokenSlot::new(config.admin_token.clone());
    if let Some(warning) = crate::config::admin_exposure_warning(&config) {
        eprintln!("{warning}");
    }
    let admin_handed_over = Arc::new(AtomicBool::new(false));
    let mut admin_later = None;
    let admin_addr = match config.admin {
        None => None,
        Some(addr) => {
            let taken = inherited_admin.is_some();
            let bound = match inherited_admin {
                Some(l) => Ok(l),
                None => std::net::TcpListener::bind(addr),
            };
            let bound = bound.and_then(|l| {
                offers.add_admin(addr, &l)?;
                let real = l.local_addr()?;
                if taken {
                    // The old process answers on it until this one is ready (a /readyz here
                    // would say 503 while the shards start).
                    admin_later = Some(l);
                } else {
                    let (token, flag) = (admin_token.clone(), admin_handed_over.clone());
                    admin::spawn(l, calls_tx.clone(), token, flag)?;
                }
                Ok(real)
            });
            match bound {
                Ok(real) => Some(real),
                Err(e) => {
                    let msg = format!("cannot listen on admin address {addr}: {e} (use --admin off or another address)");
                    eprintln!("error: {}", config.invalid("admin", msg));
                    return 2;
                }
            }
        }
    };
    let admin_later = admin_later.map(|l| (l, calls_tx.clone()));
    drop(calls_tx);

    let tickets = match crate::tls::TicketKeys::generate(config.tls_ticket_rotation) {
        Ok(k) => tickets::Tickets::idle(k),
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    // `dns:`/`srv:` endpoints: the discovery thread's first answers, before any shard serves.
    let mut discovery = crate::external::discovery::Discovery::default();
    discovery.follow(&config);
    let config = discovery.first_round(config, FIRST_DISCOVERY);
    let config = Arc::new(config);
    let (reports_tx, reports) = crossbeam_channel::unbounded();
    let mut links = Vec::new();
    for (id, shard_sockets) in sockets.drain(..).enumerate() {
        let (link, mailbox) = bus::mailbox();
        let reports = reports_tx.clone();
        let shard_log = log.shard_log();
        if let Err(e) = shard::spawn(
            id,
            config.clone(),
            shard_sockets,
            shard_log,
            tickets.keys().clone(),
            mailbox,
            reports,
        ) {
            eprintln!("error: cannot start shard {id}: {e}");
            return 1;
        }
        links.push(link);
    }
    drop(reports_tx);

    let mut co = state::Coordinator::new(
        config,
        links,
        reports,
        signals,
        calls,
        (
            log,
            tickets,
            crate::upgrade::lifecycle::Upgrades::new(offers, start, admin_handed_over.clone()),
            admin_token,
        ),
        reload,
    );
    co.discovery = discovery;
    if let Err(code) = co.wait_ready() {
        return code;
    }
    // Taking over, the old process tells systemd this one is the main process and ready
    // (only the main process may send READY=1 under NotifyAccess=main).
    let took_over = inherited.is_some();
    if let Some((l, calls_tx)) = admin_later {
        let (token, flag) = (co.admin_token.clone(), admin_handed_over.clone());
        if let Err(e) = admin::spawn(l, calls_tx, token, flag) {
            eprintln!("error: cannot serve the admin listener taken over: {e}");
            return 1;
        }
    }
    co.upgrades.serve(inherited);
    for addr in &listen {
        println!("listening on {addr}");
    }
    if let Some(a) = admin_addr {
        println!("admin listening on {a}");
    }
    println!("ready: {} shards", co.shard_count());
    if !took_over {
        let _ = crate::sys::notify_systemd("READY=1");
    }
    co.run()
}
