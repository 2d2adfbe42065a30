//! A shard: one OS thread (`shard-{id}`) pinned to one core, running one monoio runtime
//! (io_uring, or epoll when io_uring is unavailable or `MONOIO_FORCE_LEGACY_DRIVER=1`). It owns its
//! SO_REUSEPORT listeners, the connections it accepts, its routing table (routes, clusters,
//! pools, breakers, rate-limit buckets), statistics, access log buffer and drain state. Nothing
//! here is shared with other threads but the read-only `Arc<Config>` of each version. This file
//! wires the shard's thread and tasks (spawn, run, accept loops, pool sweep); the state they
//! share is `Shard`, in state.rs. `embed` is library mode: the same table, pipeline steps and
//! upstream layer owned by a `Client` on a thread of an embedding program instead of a shard.

#[allow(unsafe_code)] // a pool of heap blocks for futures (see its module doc)
mod boxes;
mod control;
#[cfg(test)]
#[allow(unsafe_code)] // reads the bytes of a monoio `IoBuf` (test double only)
mod double;
mod downstream;
mod drain;
pub mod embed;
mod global;
mod h2io;
mod health;
mod health_grpc;
mod io;
mod kit;
mod listener;
mod pipeline;
mod runtime;
mod state;
mod table;
#[allow(unsafe_code)] // rent I/O buffers read and written by pointer (see its module doc)
mod tls_stream;
mod upstream;

use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::access_log::ShardLog;
use crate::bus::{Driver, ListenerKind, Mailbox, Reports, ToCoordinator};
use crate::config::Config;
use crate::tls::{TicketKeys, Ticketer};

pub use state::{Fixed, Shard};

/// Starts shard `id` on its own thread with the listeners the coordinator opened for it and a
/// copy of the session-ticket keys. It reports `Ready` or `Failed`, serves until drained, then
/// the thread ends.
pub fn spawn(
    id: usize,
    config: Arc<Config>,
    listen: Vec<(std::net::TcpListener, ListenerKind)>,
    log: ShardLog,
    tickets: TicketKeys,
    mailbox: Mailbox,
    reports: Reports,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("shard-{id}"))
        .spawn(move || {
            let core = config.shards.core_of(id);
            if let Some(c) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                    let _ = reports.send(ToCoordinator::Failed {
                        id,
                        error: format!("cannot pin to core {c}"),
                    });
                    return;
                }
            }
            let (mut runtime, setup) = match runtime::build(&config.shards) {
                Ok(r) => r,
                Err(e) => {
                    let _ = reports.send(ToCoordinator::Failed {
                        id,
                        error: format!("cannot start runtime: {e}"),
                    });
                    return;
                }
            };
            // A bug must not leave a silent dead shard: report it and let the coordinator exit.
            let panic_reports = reports.clone();
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let driver = setup.map_or(Driver::Epoll, Driver::IoUring);
                runtime.block_on(run(
                    id,
                    config,
                    listen,
                    (core, driver),
                    (log, Ticketer::new(&tickets)),
                    mailbox,
                    reports,
                ))
            }));
            if served.is_err() {
                let error = "panicked (see the message above)".to_string();
                let _ = panic_reports.send(ToCoordinator::Failed { id, error });
            }
        })
}

async fn run(
    id: usize,
    config: Arc<Config>,
    listen: Vec<(std::net::TcpListener, ListenerKind)>,
    (core, driver): (Option<usize>, Driver),
    (log, tickets): (ShardLog, Arc<Ticketer>),
    mailbox: Mailbox,
    reports: Reports,
) {
    let mut listeners = Vec::with_capacity(listen.len());
    for (l, kind) in listen {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => listeners.push((l, kind)),
            Err(e) => {
                let error = format!("cannot register listener: {e}");
                let _ = reports.send(ToCoordinator::Failed { id, error });
                return;
            }
        }
    }
    let shard = Rc::new(Shard::new(id, config, log, tickets, reports.clone()));
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|(l, kind)| start_accepting(&shard, l, kind))
        .collect();
    monoio::spawn(sweep_pools(shard.clone()));
    monoio::spawn(downstream::idle::reap(shard.drain.clone()));
    monoio::spawn(trim_kits(shard.clone()));
    monoio::spawn(health::run(shard.clone()));
    monoio::spawn(global::report_admitted(shard.clone()));
    let _ = reports.send(ToCoordinator::Ready { id, driver, core });
    control::run(shard, accepting, mailbox, reports, driver, core).await;
}

/// Spawns the accept loop of one listener; its control stops it (drain, or a reload removed it).
fn start_accepting(
    shard: &Rc<Shard>,
    l: monoio::net::TcpListener,
    kind: ListenerKind,
) -> (Rc<listener::ListenerCtl>, monoio::task::JoinHandle<()>) {
    let ctl = listener::ListenerCtl::new(l.local_addr().ok());
    let task = monoio::spawn(listener::accept_loop(shard.clone(), l, kind, ctl.clone()));
    (ctl, task)
}

/// Closes idle upstream connections that timed out or that the upstream closed, and flushes the
/// access log buffer. Each turn sleeps a quarter of the current config's `pool.idle_timeout`
/// (10 ms to 500 ms), so a reload's new timeout sets the pace from the next turn on.
/// Gives back the kits kept beyond the quiet bound once the shard has been quiet (kit.rs).
async fn trim_kits(shard: Rc<Shard>) {
    loop {
        monoio::time::sleep(kit::TRIM_EVERY).await;
        shard.kits.trim();
    }
}

async fn sweep_pools(shard: Rc<Shard>) {
    loop {
        let every = sweep_period(shard.table().config.pool.idle_timeout);
        monoio::time::sleep(every).await;
        let table = shard.table();
        for c in &table.clusters {
            for e in &c.endpoints {
                if e.pool.idle_count() > 0 {
                    e.pool.sweep();
                }
            }
        }
        shard.log.flush();
    }
}

/// How often the pools are swept for an idle timeout: a quarter of it, 10 ms to 500 ms.
fn sweep_period(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_millis(500))
}
