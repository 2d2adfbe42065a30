//! The owned copy of shard statistics that crosses threads: a shard builds one with
//! `ShardStats::snapshot` and sends it over the bus; the coordinator folds all shards' copies
//! together with `Snapshot::merge` (counters summed, hdrhistograms added, per-shard gauges kept per
//! shard) before rendering. Nothing here is shared: every snapshot owns its histograms.

use std::cell::Cell;
use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::error::TlsFailure;

use super::discovery::DiscoveryFigures;
use super::upstream_h2::H2Counts;
use super::{
    counts, EndpointStats, ListenerTlsCounts, RouteStats, BREAKER_CLOSED, BREAKER_HALF_OPEN,
    BREAKER_OPEN, GRPC_CODES,
};

// Snapshots cross from shard threads to the coordinator.
const _: fn() = || {
    fn crosses_threads<T: Send + Clone + 'static>() {}
    crosses_threads::<Snapshot>();
};

/// Owned statistics of one or more shards, sent from shards to the coordinator.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// One entry per shard merged in, ordered by shard id.
    pub shards: Vec<ShardGauges>,
    pub routes: BTreeMap<String, RouteCounts>,
    /// Keyed by (cluster, endpoint).
    pub endpoints: BTreeMap<(String, String), EndpointCounts>,
    /// Failed Redis syncs per `scope = "global"` route. Filled by a library client (its own
    /// limits thread); the proxy's shards leave it empty (its coordinator keeps these).
    pub global_limit_errors: BTreeMap<String, u64>,
    /// DNS discovery's lookups and sets. Filled by a library client (its own discovery thread);
    /// the proxy's shards leave it empty (its coordinator keeps these).
    pub discovery: DiscoveryFigures,
}

/// Per-shard values that are kept per shard when merging.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardGauges {
    pub id: usize,
    pub core: Option<usize>,
    pub driver: &'static str,
    pub draining: bool,
    pub connections: u64,
    pub requests: u64,
    pub cpu_seconds: f64,
    pub downstream_active: u64,
    pub downstream_idle: u64,
    pub downstream_asleep: u64,
    pub downstream_tunnel: u64,
    pub in_flight: u64,
    pub accepted: u64,
    pub log_dropped: u64,
    /// Downstream HTTP/2 connections and streams now.
    pub h2_connections: u64,
    pub h2_streams: u64,
    /// Connection kits allocated since start because the shard's pool had none free.
    pub kits_allocated: u64,
    /// GOAWAY frames sent, by error code (`http::h2_reason::NAMES`).
    pub h2_goaways: [u64; 14],
    /// Requests by protocol (`PROTOCOLS`).
    pub requests_by_protocol: [u64; 2],
    /// Each TLS listener's handshake counters on this shard, by its address as written.
    pub tls_listeners: Vec<(String, ListenerTlsCounts)>,
    pub tls_ticket_generation: u64,
}

#[derive(Debug, Clone)]
pub struct RouteCounts {
    pub requests: [u64; 5],
    pub latency: Histogram<u64>,
    pub rate_limited: u64,
    pub retries: u64,
    pub budget_exhausted: u64,
    pub grpc: [u64; GRPC_CODES.len()],
    pub upgrades_refused: u64,
}

#[derive(Debug, Clone)]
pub struct EndpointCounts {
    pub requests: [u64; 5],
    pub upstream_latency: Histogram<u64>,
    pub connects: u64,
    pub reuses: u64,
    pub tls_handshakes: u64,
    pub tls_failures: [u64; TlsFailure::ALL.len()],
    pub pool_waits: u64,
    pub pool_overflows: u64,
    pub failures: u64,
    /// How many shards have this endpoint's breaker closed, open, half-open.
    pub breaker_shards: [u64; 3],
    pub breaker_transitions: [u64; 3],
    /// How many shards consider the endpoint healthy, out of `shards`.
    pub healthy_shards: u64,
    pub shards: u64,
    pub busy: u64,
    pub idle: u64,
    pub h2: H2Counts,
}

impl RouteCounts {
    pub(super) fn of(r: &RouteStats) -> RouteCounts {
        RouteCounts {
            requests: counts(&r.requests),
            latency: r.latency.copy(),
            rate_limited: r.rate_limited.get(),
            retries: r.retries.get(),
            budget_exhausted: r.budget_exhausted.get(),
            grpc: counts(&r.grpc),
            upgrades_refused: r.upgrades_refused.get(),
        }
    }

    fn add(&mut self, o: &RouteCounts) {
        add_counts(&mut self.requests, &o.requests);
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&o.latency);
        self.rate_limited += o.rate_limited;
        self.retries += o.retries;
        self.budget_exhausted += o.budget_exhausted;
        add_counts(&mut self.grpc, &o.grpc);
        self.upgrades_refused += o.upgrades_refused;
    }
}

impl EndpointCounts {
    pub(super) fn of(e: &EndpointStats) -> EndpointCounts {
        let mut breaker_shards = [0; 3];
        breaker_shards[usize::from(e.breaker_state.get()).min(2)] = 1;
        EndpointCounts {
            requests: counts(&e.requests),
            upstream_latency: e.upstream_latency.copy(),
            connects: e.connects.get(),
            reuses: e.reuses.get(),
            tls_handshakes: e.tls_handshakes.get(),
            tls_failures: counts(&e.tls_failures),
            pool_waits: e.pool_waits.get(),
            pool_overflows: e.pool_overflows.get(),
            failures: e.failures.get(),
            breaker_shards,
            breaker_transitions: e.breaker_transitions.each_ref().map(Cell::get),
            healthy_shards: u64::from(e.healthy.get()),
            shards: 1,
            busy: e.busy.get(),
            idle: e.idle.get(),
            h2: H2Counts::of(&e.h2),
        }
    }

    fn add(&mut self, o: &EndpointCounts) {
        add_counts(&mut self.requests, &o.requests);
        let _ = self.upstream_latency.add(&o.upstream_latency);
        self.connects += o.connects;
        self.reuses += o.reuses;
        self.tls_handshakes += o.tls_handshakes;
        add_counts(&mut self.tls_failures, &o.tls_failures);
        self.pool_waits += o.pool_waits;
        self.pool_overflows += o.pool_overflows;
        self.failures += o.failures;
        add_counts(&mut self.breaker_shards, &o.breaker_shards);
        add_counts(&mut self.breaker_transitions, &o.breaker_transitions);
        self.healthy_shards += o.healthy_shards;
        self.shards += o.shards;
        self.busy += o.busy;
        self.idle += o.idle;
        self.h2.add(&o.h2);
    }

    /// One shard's snapshot: reports its breaker in `state` (a `BREAKER_*`), the state as of the
    /// scrape, instead of the one its statistics last recorded.
    pub fn report_breaker(&mut self, state: u8) {
        self.breaker_shards = [0; 3];
        self.breaker_shards[usize::from(state).min(2)] = 1;
    }

    /// Up only when every shard that knows the endpoint considers it healthy.
    pub fn healthy(&self) -> bool {
        self.healthy_shards == self.shards
    }

    /// The worst state over shards: open if any shard is open, else half-open if any, else closed.
    pub fn breaker_state(&self) -> u8 {
        if self.breaker_shards[1] > 0 {
            BREAKER_OPEN
        } else if self.breaker_shards[2] > 0 {
            BREAKER_HALF_OPEN
        } else {
            BREAKER_CLOSED
        }
    }

    /// Requests over all status classes.
    pub fn total_requests(&self) -> u64 {
        self.requests.iter().sum()
    }
}

fn add_counts<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

impl Snapshot {
    /// Folds another snapshot in: counters summed, histograms added, shard gauges appended.
    pub fn merge(&mut self, other: &Snapshot) {
        self.shards.extend(other.shards.iter().cloned());
        self.shards.sort_by_key(|s| s.id);
        for (name, r) in &other.routes {
            match self.routes.get_mut(name) {
                Some(mine) => mine.add(r),
                None => {
                    self.routes.insert(name.clone(), r.clone());
                }
            }
        }
        for (key, e) in &other.endpoints {
            match self.endpoints.get_mut(key) {
                Some(mine) => mine.add(e),
                None => {
                    self.endpoints.insert(key.clone(), e.clone());
                }
            }
        }
        for (route, n) in &other.global_limit_errors {
            *self.global_limit_errors.entry(route.clone()).or_insert(0) += n;
        }
        self.discovery.merge(&other.discovery);
    }

    /// All the given snapshots merged into one.
    pub fn merged(shards: &[Snapshot]) -> Snapshot {
        let mut all = Snapshot::default();
        for s in shards {
            all.merge(s);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{ShardMeta, ShardStats};
    use super::*;

    fn meta(id: usize) -> ShardMeta {
        ShardMeta {
            id,
            core: Some(id),
            driver: "io_uring",
            draining: false,
            connections: 0,
            requests: 0,
        }
    }

    #[test]
    fn merge_sums_counters_and_adds_histograms() {
        let (a, b) = (ShardStats::new(), ShardStats::new());
        for _ in 0..3 {
            a.route("r").record(200, Duration::from_millis(1));
        }
        b.route("r").record(200, Duration::from_millis(100));
        b.route("only-b").record(404, Duration::from_millis(1));
        a.endpoint("c", "e").connects.set(2);
        b.endpoint("c", "e").connects.set(5);
        b.endpoint("c", "e").healthy.set(false);
        b.endpoint("c", "e").set_breaker(BREAKER_OPEN);
        a.endpoint("c", "e").busy.set(1);
        b.endpoint("c", "e").busy.set(4);

        let merged = Snapshot::merged(&[b.snapshot(meta(1)), a.snapshot(meta(0))]);
        let r = &merged.routes["r"];
        assert_eq!(r.requests[1], 4);
        assert_eq!(r.latency.len(), 4);
        assert!(r.latency.value_at_quantile(0.5) < 1_100);
        assert!(r.latency.max() >= 99_000);
        assert_eq!(merged.routes["only-b"].requests[3], 1);
        let e = &merged.endpoints[&("c".into(), "e".into())];
        assert_eq!(e.connects, 7);
        assert_eq!(e.busy, 5);
        assert_eq!((e.healthy_shards, e.shards), (1, 2));
        assert!(!e.healthy());
        assert_eq!(e.breaker_shards, [1, 1, 0]);
        assert_eq!(e.breaker_state(), BREAKER_OPEN);
        let ids: Vec<usize> = merged.shards.iter().map(|s| s.id).collect();
        assert_eq!(ids, [0, 1]);
    }
}
