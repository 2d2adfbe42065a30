//! The shard's control task: waits on its mailbox for coordinator events and acts on them: a new
//! config (swap the routing table), session-ticket keys of a rotation, the global limits' verdict
//! (keys denied until T), endpoint health news, a statistics request (answer with a snapshot), and drain (with progress reports until the last
//! connection closes). Shard thread.

use std::rc::Rc;
use std::time::Duration;

use monoio::task::JoinHandle;

use super::listener::ListenerCtl;
use super::upstream::cluster::breaker_code;
use super::Shard;
use crate::bus::{Driver, Mailbox, Reports, ToCoordinator, ToShard};
use crate::stats::ShardMeta;

/// How often a draining shard reports what it still holds.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// An accept loop and what stops it.
type Accepting = (Rc<ListenerCtl>, JoinHandle<()>);

/// Runs until this shard has drained (or the coordinator is gone). `accepting` are the accept
/// loops: a drain waits for them, so every listener is closed before the runtime ends.
pub async fn run(
    shard: Rc<Shard>,
    accepting: Vec<Accepting>,
    mailbox: Mailbox,
    reports: Reports,
    driver: Driver,
    core: Option<usize>,
) {
    let mut accepting = accepting;
    loop {
        match mailbox.recv().await {
            Some(ToShard::Config(config)) => {
                shard.apply_config(config);
                let _ = reports.send(ToCoordinator::ConfigApplied { id: shard.id });
            }
            Some(ToShard::Health(news)) => shard.apply_health(&news),
            Some(ToShard::TicketKeys(keys)) => shard.apply_ticket_keys(&keys),
            Some(ToShard::GlobalDenials(d)) => shard.apply_global_denials(&d),
            Some(ToShard::Stats) => {
                let _ = reports.send(snapshot(&shard, driver, core));
            }
            Some(ToShard::Listen(handoff)) => {
                for (l, kind) in handoff.take() {
                    match monoio::net::TcpListener::from_std(l) {
                        Ok(l) => accepting.push(super::start_accepting(&shard, l, kind)),
                        Err(e) => {
                            let error = format!("cannot register a reloaded listener: {e}");
                            let _ = reports.send(ToCoordinator::Failed {
                                id: shard.id,
                                error,
                            });
                        }
                    }
                }
            }
            Some(ToShard::Unlisten(addr)) => {
                // The loop serves what is queued, then closes the socket by itself.
                accepting.retain(|(ctl, _)| {
                    let gone = ctl.addr == Some(addr);
                    if gone {
                        ctl.close();
                    }
                    !gone
                });
                // A loop parked at max_connections re-checks and sees it was closed.
                shard.drain.wake();
            }
            Some(ToShard::Drain) => {
                shard.drain.start();
                for (ctl, accept_loop) in accepting.drain(..) {
                    ctl.close();
                    accept_loop.await;
                }
                // Statistics and health still answer while the drain runs.
                let done = drain(&shard, &reports);
                let events = serve_during_drain(&shard, &mailbox, &reports, driver, core);
                monoio::select! {
                    _ = done => {}
                    _ = events => {}
                }
                shard.log.flush();
                let _ = reports.send(ToCoordinator::Drained { id: shard.id });
                return;
            }
            None => return,
        }
    }
}

/// Answers statistics and applies health news while draining; ends when the coordinator is gone.
async fn serve_during_drain(
    shard: &Shard,
    mailbox: &Mailbox,
    reports: &Reports,
    driver: Driver,
    core: Option<usize>,
) {
    while let Some(msg) = mailbox.recv().await {
        match msg {
            ToShard::Stats => {
                let _ = reports.send(snapshot(shard, driver, core));
            }
            ToShard::Health(news) => shard.apply_health(&news),
            // Connections still queued may handshake while draining.
            ToShard::TicketKeys(keys) => shard.apply_ticket_keys(&keys),
            ToShard::GlobalDenials(d) => shard.apply_global_denials(&d),
            ToShard::Config(config) => {
                shard.apply_config(config);
                let _ = reports.send(ToCoordinator::ConfigApplied { id: shard.id });
            }
            ToShard::Drain | ToShard::Listen(_) | ToShard::Unlisten(_) => {}
        }
    }
}

/// This shard's statistics, with pool gauges brought up to date.
fn snapshot(shard: &Shard, driver: Driver, core: Option<usize>) -> ToCoordinator {
    // Counters of routes and endpoints whose last user (an old table) has gone since the reload.
    shard.stats.forget_unused();
    let table = shard.table();
    for c in &table.clusters {
        for e in &c.endpoints {
            let idle = e.pool.idle_count() as u64;
            e.stats.idle.set(idle);
            e.stats
                .busy
                .set((e.pool.open_count() as u64).saturating_sub(idle));
        }
    }
    let (conns, reqs) = (
        shard.drain.connections() as u64,
        shard.drain.requests() as u64,
    );
    shard.stats.downstream_active.set(reqs);
    let asleep = shard.drain.asleep() as u64;
    let tunnels = shard.drain.tunnels() as u64;
    shard
        .stats
        .downstream_idle
        .set(conns.saturating_sub(reqs + asleep + tunnels));
    shard.stats.downstream_asleep.set(asleep);
    shard.stats.downstream_tunnel.set(tunnels);
    shard.stats.in_flight.set(reqs);
    shard.stats.log_dropped.set(shard.log.dropped());
    shard
        .stats
        .tls_ticket_generation
        .set(shard.tickets.generation());
    let meta = ShardMeta {
        id: shard.id,
        core,
        driver: driver.name(),
        draining: shard.drain.is_draining(),
        connections: shard.drain.connections() as u64,
        requests: shard.drain.requests() as u64,
    };
    let mut snap = shard.stats.snapshot(meta);
    if let Some(g) = snap.shards.first_mut() {
        g.kits_allocated = shard.kits.allocated();
    }
    // Breakers as of now: an Open one whose timeout has passed is reported half-open, so an
    // alert on `open` ends with the timeout even when no request arrives to move the breaker.
    let now = std::time::Instant::now();
    for c in &table.clusters {
        for e in &c.endpoints {
            let (was, is) = (e.breaker.state(), e.breaker.state_at(now));
            if was != is {
                let key = (c.name.to_string(), e.name.to_string());
                if let Some(counts) = snap.endpoints.get_mut(&key) {
                    counts.report_breaker(breaker_code(is));
                }
            }
        }
    }
    ToCoordinator::Stats {
        id: shard.id,
        connections: conns as usize,
        requests: reqs as usize,
        snapshot: Box::new(snap),
    }
}

/// Waits for every connection to close, reporting progress; the coordinator owns the deadline.
/// Tunnels are closed once no request is in flight, or when `tunnel_drain_grace` has passed.
async fn drain(shard: &Shard, reports: &Reports) {
    let t = shard.table().config.timeouts;
    let (grace, idle_grace) = (t.tunnel_drain_grace, t.drain_idle_grace);
    let started = std::time::Instant::now();
    let mut idle_closed = false;
    loop {
        let d = &shard.drain;
        if d.requests() == 0 || started.elapsed() >= grace {
            d.close_tunnels();
        }
        if !idle_closed && started.elapsed() >= idle_grace {
            d.close_idle();
            idle_closed = true;
        }
        let report = ToCoordinator::Progress {
            id: shard.id,
            connections: d.connections(),
            requests: d.requests(),
            tunnels: d.tunnels(),
        };
        let _ = reports.send(report);
        if shard.drain.connections() == 0 {
            return;
        }
        let closed = shard.drain.wait_until(|d| d.connections() == 0);
        let next = match idle_closed {
            true => PROGRESS_EVERY,
            false => PROGRESS_EVERY.min(idle_grace.saturating_sub(started.elapsed())),
        };
        let _ = monoio::time::timeout(next, closed).await;
    }
}
