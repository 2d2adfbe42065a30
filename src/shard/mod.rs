//! A shard: one OS thread (`shard-{id}`) pinned to one core, running one monoio runtime
//! (io_uring, or epoll when io_uring is unavailable or `MONOIO_FORCE_LEGACY_DRIVER=1`). It owns its
//! SO_REUSEPORT listeners, the connections it accepts, its upstream pools and balancer cursor, and
//! its drain state. Nothing here is shared with other threads but the read-only `Arc<Config>`.

mod body;
mod conn;
mod control;
mod drain;
mod forward;
mod io;
mod listener;
mod pool;
mod tunnel;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::balance::RoundRobin;
use crate::bus::{Driver, Mailbox, Reports, ToCoordinator};
use crate::config::Config;
use drain::Drain;
use pool::EndpointPool;

/// Per-shard state shared by the shard's tasks (never by threads).
pub struct Shard {
    pub id: usize,
    pub config: Arc<Config>,
    /// One pool per upstream endpoint, in config order.
    pub pools: Vec<EndpointPool>,
    pub balancer: RoundRobin,
    pub drain: Rc<Drain>,
    /// Host sent upstream for HTTP/1.0 requests that carry none.
    pub fallback_host: String,
    request_seed: u64,
    request_counter: Cell<u64>,
}

impl Shard {
    fn new(id: usize, config: Arc<Config>) -> Shard {
        let pools = config
            .upstreams
            .iter()
            .map(|u| EndpointPool::new(u.addr, config.pool, &config.timeouts))
            .collect();
        let fallback_host = config.upstreams[0].name.clone();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Shard {
            id,
            config,
            pools,
            balancer: RoundRobin::default(),
            drain: Rc::default(),
            fallback_host,
            request_seed: mix(nanos ^ (u64::from(std::process::id()) << 32) ^ id as u64),
            request_counter: Cell::new(0),
        }
    }

    /// A request id unique to this process: a per-shard random seed and a mixed counter.
    pub fn next_request_id(&self) -> u128 {
        let n = self.request_counter.get().wrapping_add(1);
        self.request_counter.set(n);
        (u128::from(self.request_seed) << 64) | u128::from(mix(n ^ self.request_seed))
    }
}

/// splitmix64's finaliser: a bijection, so distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Starts shard `id` on its own thread with the listeners the coordinator opened for it. It reports
/// `Ready` or `Failed`, serves until drained, then the thread ends.
pub fn spawn(
    id: usize,
    config: Arc<Config>,
    listen: Vec<std::net::TcpListener>,
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
            let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .with_entries(config.shards.uring_entries)
                .enable_timer()
                .build();
            let mut runtime = match runtime {
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
                runtime.block_on(run(id, config, listen, core, mailbox, reports))
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
    listen: Vec<std::net::TcpListener>,
    core: Option<usize>,
    mailbox: Mailbox,
    reports: Reports,
) {
    let mut listeners = Vec::with_capacity(listen.len());
    for l in listen {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                let error = format!("cannot register listener: {e}");
                let _ = reports.send(ToCoordinator::Failed { id, error });
                return;
            }
        }
    }
    let shard = Rc::new(Shard::new(id, config));
    let driver = if monoio::utils::is_legacy() {
        Driver::Epoll
    } else {
        Driver::IoUring
    };
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|l| monoio::spawn(listener::accept_loop(shard.clone(), l)))
        .collect();
    monoio::spawn(sweep_pools(shard.clone()));
    let _ = reports.send(ToCoordinator::Ready { id, driver, core });
    control::run(shard, accepting, mailbox, reports).await;
}

/// Closes idle upstream connections that timed out or that the upstream closed.
async fn sweep_pools(shard: Rc<Shard>) {
    let every = (shard.config.pool.idle_timeout / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        monoio::time::sleep(every).await;
        for p in &shard.pools {
            if p.idle_count() > 0 {
                p.sweep();
            }
        }
    }
}
