//! A library client's background tasks on the embedding thread: the proxy's active health
//! checks (shard/health.rs, over `Prober`: the client probes every endpoint itself and applies
//! each verdict to its own table), and the idle-pool sweep. Both hold the client weakly and end
//! once it is dropped.

use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use crate::bus::HealthEvent;
use crate::shard::health::{self, Prober};
use crate::shard::table::Table;

/// The client as the health checks see it.
struct Probing(Weak<Inner>);

impl Prober for Probing {
    fn table(&self) -> Option<Rc<Table>> {
        self.0.upgrade().map(|i| i.table())
    }

    fn probes(&self, _cluster: &str, _endpoint: &str) -> bool {
        true
    }

    /// As a shard applies a verdict: up also ends a passive ejection (the breaker closes).
    fn verdict(&self, cluster: &Arc<str>, endpoint: &Arc<str>, event: HealthEvent) {
        let Some(table) = self.table() else { return };
        let Some(c) = table.clusters.iter().find(|c| *c.name == **cluster) else {
            return;
        };
        let Some(ep) = c.find(endpoint) else { return };
        match event {
            HealthEvent::ProbeUp => {
                ep.probe_up.set(true);
                ep.ejected_until.set(None);
                ep.note(ep.breaker.force_close());
            }
            HealthEvent::ProbeDown => ep.probe_up.set(false),
            _ => {}
        }
        ep.stats.healthy.set(ep.probe_up.get());
    }
}

/// Starts the client's tasks on this thread.
pub fn start(inner: &Rc<Inner>) {
    // Probes only the clusters with a `health_check` (none: the task just naps).
    monoio::spawn(health::run(Rc::new(Probing(Rc::downgrade(inner)))));
    monoio::spawn(sweep(Rc::downgrade(inner)));
}

/// Closes idle connections past the idle timeout or closed by the upstream, a quarter of the
/// idle timeout apart (10 ms to 500 ms), as the proxy's shards do.
async fn sweep(inner: Weak<Inner>) {
    loop {
        let every = match inner.upgrade() {
            Some(i) => i.table().config.pool.idle_timeout / 4,
            None => return,
        };
        let every = every.clamp(Duration::from_millis(10), Duration::from_millis(500));
        monoio::time::sleep(every).await;
        let Some(i) = inner.upgrade() else { return };
        let table = i.table();
        for c in &table.clusters {
            for e in &c.endpoints {
                if e.pool.idle_count() > 0 {
                    e.pool.sweep();
                }
            }
        }
    }
}
