//! What one shard owns and its tasks share (`Shard`): the current routing table and its config,
//! the settings fixed at start (`Fixed`), statistics, the access-log buffer, the drain registry,
//! the kit and future pools, the report channel to the coordinator, request and span ids. Shard
//! thread only (`Rc`/`Cell`/`RefCell`); mod.rs wires the tasks that use it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::drain::Drain;
use super::pipeline::Context;
use super::table::Table;
use super::{boxes, kit};
use crate::access_log::ShardLog;
use crate::bus::{HealthEvent, HealthNews, Reports};
use crate::config::{Config, Shards};
use crate::stats::ShardStats;
use crate::tls::{TicketKeys, Ticketer};

/// The settings a reload keeps (they need a restart, see docs/CONTRACT.md): `[shards]`, i.e.
/// buffer sizes, connection limits, idle buffering, the ring and the shard count.
pub struct Fixed {
    pub shards: Shards,
}

/// Per-shard state shared by the shard's tasks (never by threads).
pub struct Shard {
    pub id: usize,
    /// How many shards run (each holds its share of a rate limit unless clients are steered).
    pub shards: usize,
    /// What a reload cannot change, fixed at start. Everything else is read from the current
    /// table's config (`table().config`), the one config of this shard.
    pub base: Fixed,
    /// The current routing table and its config; a request keeps the one it started with.
    table: RefCell<Rc<Table>>,
    pub stats: ShardStats,
    pub log: ShardLog,
    pub drain: Rc<Drain>,
    /// This shard's session-ticket sealer: every TLS listener's rustls config on this shard uses
    /// it; a rotation from the coordinator replaces its keys in place.
    pub tickets: Arc<Ticketer>,
    /// Buffers for connections that are serving (idle ones give theirs back).
    pub kits: kit::Kits,
    /// Blocks for the serving futures of connections that wake up.
    pub boxes: boxes::BoxPool,
    pub(super) reports: Reports,
    request_seed: u64,
    request_counter: Cell<u64>,
}

impl Shard {
    pub(super) fn new(
        id: usize,
        config: Arc<Config>,
        log: ShardLog,
        tickets: Arc<Ticketer>,
        reports: Reports,
    ) -> Shard {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = mix(nanos ^ (u64::from(std::process::id()) << 32) ^ id as u64);
        let stats = ShardStats::new();
        let shards = config.shards.count;
        let table = Table::build(config.clone(), shards, None, &stats, seed, &tickets);
        let kits = kit::Kits::new(
            config.shards.buffer_size,
            config.shards.upstream_buffer_size,
        );
        Shard {
            id,
            shards,
            base: Fixed {
                shards: config.shards.clone(),
            },
            table: RefCell::new(Rc::new(table)),
            stats,
            log,
            drain: Rc::default(),
            tickets,
            kits,
            boxes: boxes::BoxPool::default(),
            reports,
            request_seed: seed,
            request_counter: Cell::new(0),
        }
    }

    /// The current routing table.
    #[inline]
    pub fn table(&self) -> Rc<Table> {
        self.table.borrow().clone()
    }

    /// Switches to a new config: new requests use it at once, in-flight ones finish on theirs.
    pub fn apply_config(&self, config: Arc<Config>) {
        // Global-limit counts go out with the route indices they were taken under.
        self.report_admitted();
        let old = self.table();
        let table = Table::build(
            config,
            self.shards,
            Some(&old),
            &self.stats,
            self.request_seed,
            &self.tickets,
        );
        // Endpoints that left: close their idle connections now (busy ones close when done).
        for c in &old.clusters {
            for e in &c.endpoints {
                let kept = table
                    .clusters
                    .iter()
                    .any(|n| n.endpoints.iter().any(|x| Rc::ptr_eq(x, e)));
                if !kept {
                    e.pool.close_idle();
                    if let Some(h2) = &e.h2 {
                        h2.close_idle();
                    }
                }
            }
        }
        *self.table.borrow_mut() = Rc::new(table);
        drop(old);
        // In-flight requests may still hold the old table: what they use is pruned next time.
        self.stats.forget_unused();
    }

    /// Takes the session-ticket keys of a rotation: new tickets are sealed with the new key, the
    /// previous one still opens; no rustls config, certificate or session cache is rebuilt.
    pub fn apply_ticket_keys(&self, keys: &TicketKeys) {
        self.tickets.install(keys);
    }

    /// Applies an endpoint verdict from a probe or another shard. A verdict turning healthy also
    /// ends passive ejection on this shard (Envoy's default): the breaker closes (reported as
    /// `Readmitted`, once per shard whose breaker was not closed) and another shard's outlier
    /// ejection is lifted, so traffic returns with the health check, not after the open timeout.
    pub fn apply_health(&self, news: &HealthNews) {
        let table = self.table();
        let Some(cluster) = table.clusters.iter().find(|c| *c.name == *news.cluster) else {
            return;
        };
        let Some(ep) = cluster.find(&news.endpoint) else {
            return;
        };
        let now = Instant::now();
        match news.event {
            HealthEvent::ProbeUp => {
                ep.probe_up.set(true);
                ep.ejected_until.set(None);
                if ep.note(ep.breaker.force_close()).is_some() {
                    self.publish_health(&ep.cluster, &ep.name, HealthEvent::Readmitted);
                }
            }
            HealthEvent::ProbeDown => ep.probe_up.set(false),
            HealthEvent::Ejected if news.from != self.id => {
                cluster.eject_remote(ep, now);
            }
            HealthEvent::Readmitted if news.from != self.id => ep.ejected_until.set(None),
            _ => {}
        }
        ep.stats.healthy.set(ep.probe_up.get());
    }

    /// Tells the coordinator (and so every other shard) about an endpoint's new state.
    pub fn publish_health(&self, cluster: &Arc<str>, endpoint: &Arc<str>, event: HealthEvent) {
        self.pipeline().publish(cluster, endpoint, event);
    }

    /// What the request pipeline may read of this shard.
    #[inline]
    pub fn pipeline(&self) -> Context<'_> {
        let s = &self.base.shards;
        Context {
            shard: self.id,
            log: &self.log,
            drain: &self.drain,
            reports: &self.reports,
            splice_at: s.splice_threshold,
            fill: s.upstream_buffer_size,
            by_protocol: &self.stats.requests_by_protocol,
        }
    }

    /// A request id unique to this process: a per-shard random seed and a mixed counter.
    pub fn next_request_id(&self) -> u128 {
        let n = self.request_counter.get().wrapping_add(1);
        self.request_counter.set(n);
        (u128::from(self.request_seed) << 64) | u128::from(mix(n ^ self.request_seed))
    }

    /// A span id for the traceparent this hop forwards with (never zero).
    pub fn next_span_id(&self) -> u64 {
        let n = self.request_counter.get().wrapping_add(1);
        self.request_counter.set(n);
        mix(n ^ self.request_seed.rotate_left(17)) | 1
    }
}

/// splitmix64's finaliser: a bijection, so distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
