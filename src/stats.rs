//! Statistics: what one shard counts about its own traffic, and the owned `Snapshot` the
//! coordinator merges across shards for `GET /metrics` (published families in `stats/families.rs`,
//! written by `stats/render.rs`).
//!
//! Two kinds of thread touch this module. A shard owns one `ShardStats` and records into it on the
//! request path: plain `Cell` adds and one `RefCell`ed hdrhistogram per route and per endpoint, so
//! recording takes no lock, touches no atomic and allocates nothing. When the coordinator asks, the
//! shard calls `ShardStats::snapshot` on its own thread (it reads that thread's CPU time) and sends
//! the `Send` snapshot over the bus; the coordinator merges the snapshots (counters summed,
//! histograms added, per-shard gauges kept per shard) and renders them.
//!
//! Memory: each histogram is a fixed array of about 17,400 `u64` counts (~136 KiB), one per route
//! and per endpoint per shard; a snapshot copies them all.
//!
//! Routes and endpoints are registered by name once (at start and on reload, never per request) and
//! stay registered for the shard's lifetime, so a reload never makes a counter go backwards.

#[cfg(test)]
#[allow(unsafe_code)] // a counting GlobalAlloc, tests only
pub(crate) mod alloc_probe;
mod certificates;
mod discovery;
mod families;
mod global_limits;
mod listener_tls;
mod render;
mod snapshot;
mod upstream_h2;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::TlsFailure;

pub use certificates::{render_certificates, CertificateExpiry};
pub use discovery::{render_discovery, DiscoveryFigures};
pub use global_limits::render_global_limits;
pub use listener_tls::{ListenerTlsCounts, ListenerTlsStats, VERSIONS as TLS_VERSIONS};
pub use render::render;
pub use snapshot::{EndpointCounts, RouteCounts, ShardGauges, Snapshot};
pub use upstream_h2::{shift, H2Counts, H2Stats};

/// Status classes, in the order `class_of` numbers them.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The `grpc_status` label's values: the codes gRPC defines.
pub const GRPC_CODES: [&str; 17] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

/// `EndpointStats::breaker_state` values.
pub const BREAKER_CLOSED: u8 = 0;
pub const BREAKER_OPEN: u8 = 1;
pub const BREAKER_HALF_OPEN: u8 = 2;
/// Names of the breaker states, indexed by state.
pub const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// `EndpointStats::breaker_transitions` indexes.
pub const OPENED: usize = 0;
pub const HALF_OPENED: usize = 1;
pub const CLOSED: usize = 2;

/// Histogram range in microseconds: 1 µs to 60 s at 3 significant digits.
const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 60_000_000;
const SIGFIG: u8 = 3;

/// The status class index of a status code: 1xx..5xx → 0..4 (anything outside is clamped).
pub fn class_of(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("constant bounds are valid")
}

fn bump(c: &Cell<u64>) {
    c.set(c.get().wrapping_add(1));
}

fn counts<const N: usize>(cells: &[Cell<u64>; N]) -> [u64; N] {
    cells.each_ref().map(Cell::get)
}

// === impl Hist ===

/// A latency histogram in microseconds; durations past 60 s are recorded as 60 s.
#[derive(Debug)]
pub struct Hist(RefCell<Histogram<u64>>);

impl Hist {
    pub fn new() -> Hist {
        Hist(RefCell::new(new_histogram()))
    }

    /// Records one duration (no allocation: the histogram's range is fixed).
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.borrow_mut().saturating_record(us);
    }

    fn copy(&self) -> Histogram<u64> {
        self.0.borrow().clone()
    }
}

impl Default for Hist {
    fn default() -> Hist {
        Hist::new()
    }
}

// === per-shard state ===

/// One route's counters on one shard.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Responses sent downstream, by status class (`class_of`).
    pub requests: [Cell<u64>; 5],
    /// Time from the request head read to the response's last byte written.
    pub latency: Hist,
    /// Requests answered 429 by the rate limiter.
    pub rate_limited: Cell<u64>,
    /// Requests sent upstream a second time.
    pub retries: Cell<u64>,
    /// Retries refused because the retry budget was spent.
    pub budget_exhausted: Cell<u64>,
    /// gRPC calls answered, by `grpc-status` (0–16; a larger code counts as 2, UNKNOWN).
    pub grpc: [Cell<u64>; GRPC_CODES.len()],
    /// HTTP/1.1 upgrades (WebSocket) answered 501: the route's cluster speaks HTTP/2.
    pub upgrades_refused: Cell<u64>,
}

impl RouteStats {
    /// Counts one response and its latency.
    pub fn record(&self, status: u16, latency: Duration) {
        bump(&self.requests[class_of(status)]);
        self.latency.record(latency);
    }

    /// Counts one gRPC call by the `grpc-status` its client got.
    pub fn record_grpc(&self, code: u8) {
        let i = usize::from(code);
        bump(&self.grpc[if i < GRPC_CODES.len() { i } else { 2 }]);
    }
}

/// One upstream endpoint's counters on one shard.
#[derive(Debug)]
pub struct EndpointStats {
    /// Responses received from this endpoint, by status class.
    pub requests: [Cell<u64>; 5],
    /// Time from the request head written upstream to the response head read.
    pub upstream_latency: Hist,
    /// New upstream connections opened (the pool had none idle).
    pub connects: Cell<u64>,
    /// Requests sent on a pooled keep-alive connection.
    pub reuses: Cell<u64>,
    /// TLS handshakes completed on new connections (a reused connection makes none).
    pub tls_handshakes: Cell<u64>,
    /// TLS handshakes that failed, by `TlsFailure::index()`.
    pub tls_failures: [Cell<u64>; TlsFailure::ALL.len()],
    /// Requests that waited for a connection because the pool was at its limit.
    pub pool_waits: Cell<u64>,
    /// Requests refused or sent on an unpooled connection because the pool overflowed.
    pub pool_overflows: Cell<u64>,
    /// Connect, read or write failures and timeouts (what the breaker counts).
    pub failures: Cell<u64>,
    /// `BREAKER_CLOSED`, `BREAKER_OPEN` or `BREAKER_HALF_OPEN`.
    pub breaker_state: Cell<u8>,
    /// Transitions into open, half-open and closed (`OPENED`, `HALF_OPENED`, `CLOSED`).
    pub breaker_transitions: [Cell<u64>; 3],
    /// The last health verdict this shard received (starts healthy).
    pub healthy: Cell<bool>,
    /// Upstream connections carrying a request now.
    pub busy: Cell<u64>,
    /// Upstream connections idle in the pool now.
    pub idle: Cell<u64>,
    /// HTTP/2 connections, streams, GOAWAYs and refused streams (h2/h2c clusters).
    pub h2: H2Stats,
}

impl Default for EndpointStats {
    fn default() -> EndpointStats {
        EndpointStats {
            requests: Default::default(),
            upstream_latency: Hist::new(),
            connects: Cell::new(0),
            reuses: Cell::new(0),
            tls_handshakes: Cell::new(0),
            tls_failures: Default::default(),
            pool_waits: Cell::new(0),
            pool_overflows: Cell::new(0),
            failures: Cell::new(0),
            breaker_state: Cell::new(BREAKER_CLOSED),
            breaker_transitions: Default::default(),
            healthy: Cell::new(true),
            busy: Cell::new(0),
            idle: Cell::new(0),
            h2: H2Stats::default(),
        }
    }
}

impl EndpointStats {
    /// Counts one upstream response and its latency.
    pub fn record(&self, status: u16, latency: Duration) {
        bump(&self.requests[class_of(status)]);
        self.upstream_latency.record(latency);
    }

    /// Sets the breaker state and counts the transition (no-op when the state is unchanged).
    pub fn set_breaker(&self, state: u8) {
        if self.breaker_state.replace(state) != state {
            let kind = match state {
                BREAKER_OPEN => OPENED,
                BREAKER_HALF_OPEN => HALF_OPENED,
                _ => CLOSED,
            };
            bump(&self.breaker_transitions[kind]);
        }
    }
}

/// Everything one shard counts. Lives in the shard's `Rc` state; never crosses threads.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Downstream connections with a request in progress.
    pub downstream_active: Cell<u64>,
    /// Downstream keep-alive connections waiting for their next request, buffers in hand.
    pub downstream_idle: Cell<u64>,
    /// Downstream keep-alive connections waiting without buffers (idle past idle_buffer_time).
    pub downstream_asleep: Cell<u64>,
    /// Downstream connections that are tunnels (after a 101: WebSockets).
    pub downstream_tunnel: Cell<u64>,
    /// Requests between head read and response finished.
    pub in_flight: Cell<u64>,
    /// Downstream connections accepted since start.
    pub accepted: Cell<u64>,
    /// Downstream connections speaking HTTP/2 now.
    pub h2_connections: Cell<u64>,
    /// HTTP/2 streams being served now (each a request in progress).
    pub h2_streams: Cell<u64>,
    /// GOAWAY frames sent to HTTP/2 clients, by error code (`http::h2_reason::NAMES`).
    pub h2_goaways: [Cell<u64>; 14],
    /// Requests recorded (access-log lines, logged or not), by protocol: HTTP/1.x, HTTP/2.
    pub requests_by_protocol: [Cell<u64>; 2],
    /// Access-log buffers dropped because the writer fell behind (copy of `ShardLog::dropped`).
    pub log_dropped: Cell<u64>,
    /// Generation of the session-ticket keys this shard holds (copy of `Ticketer::generation`).
    pub tls_ticket_generation: Cell<u64>,
    routes: RefCell<BTreeMap<String, Rc<RouteStats>>>,
    endpoints: RefCell<BTreeMap<String, BTreeMap<String, Rc<EndpointStats>>>>,
    /// TLS listeners' handshake counters, by the listener's address as the config writes it.
    tls_listeners: RefCell<BTreeMap<String, Rc<ListenerTlsStats>>>,
}

/// What the shard knows about itself beyond its counters, passed in at snapshot time.
#[derive(Debug, Clone)]
pub struct ShardMeta {
    pub id: usize,
    pub core: Option<usize>,
    pub driver: &'static str,
    pub draining: bool,
    /// Downstream connections still open (what a drain waits for).
    pub connections: u64,
    /// Requests still in progress (what a drain waits for).
    pub requests: u64,
}

impl ShardStats {
    pub fn new() -> ShardStats {
        ShardStats::default()
    }

    /// The route's counters, registered on first use; later calls return the same `Rc`.
    pub fn route(&self, name: &str) -> Rc<RouteStats> {
        let mut routes = self.routes.borrow_mut();
        if let Some(r) = routes.get(name) {
            return r.clone();
        }
        routes.entry(name.to_owned()).or_default().clone()
    }

    /// The endpoint's counters, registered on first use; later calls return the same `Rc`.
    pub fn endpoint(&self, cluster: &str, endpoint: &str) -> Rc<EndpointStats> {
        let mut clusters = self.endpoints.borrow_mut();
        if let Some(e) = clusters.get(cluster).and_then(|c| c.get(endpoint)) {
            return e.clone();
        }
        let c = clusters.entry(cluster.to_owned()).or_default();
        c.entry(endpoint.to_owned()).or_default().clone()
    }

    /// The TLS listener's counters (`listener`: its address as written), registered on first
    /// use; later calls return the same `Rc`, so a reload that keeps the address keeps the counts.
    pub fn tls_listener(&self, listener: &str) -> Rc<ListenerTlsStats> {
        let mut listeners = self.tls_listeners.borrow_mut();
        if let Some(l) = listeners.get(listener) {
            return l.clone();
        }
        listeners.entry(listener.to_owned()).or_default().clone()
    }

    /// Drops the counters of routes, endpoints and TLS listeners no routing table uses any more
    /// (after a reload removed them), so `/metrics` stops exporting their last values.
    pub fn forget_unused(&self) {
        self.tls_listeners
            .borrow_mut()
            .retain(|_, l| Rc::strong_count(l) > 1);
        self.routes
            .borrow_mut()
            .retain(|_, r| Rc::strong_count(r) > 1);
        let mut clusters = self.endpoints.borrow_mut();
        for eps in clusters.values_mut() {
            eps.retain(|_, e| Rc::strong_count(e) > 1);
        }
        clusters.retain(|_, eps| !eps.is_empty());
    }

    /// An owned copy of every counter and histogram. Call it on the shard's thread: it reads that
    /// thread's CPU time.
    pub fn snapshot(&self, meta: ShardMeta) -> Snapshot {
        let shard = ShardGauges {
            id: meta.id,
            core: meta.core,
            driver: meta.driver,
            draining: meta.draining,
            connections: meta.connections,
            requests: meta.requests,
            cpu_seconds: thread_cpu_seconds(),
            downstream_active: self.downstream_active.get(),
            downstream_idle: self.downstream_idle.get(),
            downstream_asleep: self.downstream_asleep.get(),
            downstream_tunnel: self.downstream_tunnel.get(),
            in_flight: self.in_flight.get(),
            accepted: self.accepted.get(),
            log_dropped: self.log_dropped.get(),
            h2_connections: self.h2_connections.get(),
            h2_streams: self.h2_streams.get(),
            kits_allocated: 0,
            h2_goaways: std::array::from_fn(|i| self.h2_goaways[i].get()),
            requests_by_protocol: std::array::from_fn(|i| self.requests_by_protocol[i].get()),
            tls_listeners: (self.tls_listeners.borrow().iter())
                .map(|(l, s)| (l.clone(), ListenerTlsCounts::of(s)))
                .collect(),
            tls_ticket_generation: self.tls_ticket_generation.get(),
        };
        let routes = self
            .routes
            .borrow()
            .iter()
            .map(|(name, r)| (name.clone(), RouteCounts::of(r)))
            .collect();
        let mut endpoints = BTreeMap::new();
        for (cluster, eps) in self.endpoints.borrow().iter() {
            for (ep, e) in eps {
                endpoints.insert((cluster.clone(), ep.clone()), EndpointCounts::of(e));
            }
        }
        Snapshot {
            shards: vec![shard],
            routes,
            endpoints,
            ..Snapshot::default()
        }
    }
}

fn thread_cpu_seconds() -> f64 {
    crate::sys::thread_cpu_seconds()
}

#[cfg(test)]
mod tests;
