//! This shard's view of the clusters: each endpoint with its keep-alive pool, circuit breaker,
//! peak-EWMA latency, in-flight count and health (active probes, other shards' outlier events),
//! and per cluster the balancer that picks among the usable ones. Shard thread only.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use super::h2pool::H2Pool;
use super::pool::EndpointPool;
use super::stream::Origination;
use crate::config::{self, Cluster, Timeouts};
use crate::policy::balance::{Balancer, Candidates, PeakEwma};
use crate::policy::breaker::{Breaker, State, Transition};
use crate::stats::{EndpointStats, ShardStats, BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPEN};

/// One upstream endpoint on this shard. Kept across reloads while its settings are unchanged.
pub struct Endpoint {
    pub cluster: Arc<str>,
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub pool: EndpointPool,
    /// The endpoint's HTTP/2 connections when its cluster speaks `h2` or `h2c` (then `pool`
    /// stays empty: requests lease streams here).
    pub h2: Option<H2Pool>,
    pub breaker: Breaker,
    pub ewma: PeakEwma,
    pub in_flight: Cell<u32>,
    /// Active health checks say it is up (true until a probe says otherwise).
    pub probe_up: Cell<bool>,
    /// Another shard ejected it (outlier event) until this instant.
    pub ejected_until: Cell<Option<Instant>>,
    pub stats: Rc<EndpointStats>,
    /// The settings this endpoint was built with, to decide whether a reload can keep it.
    identity: (
        config::Pool,
        Duration,
        crate::policy::breaker::BreakerConfig,
        Option<config::UpstreamTls>,
        config::UpstreamProtocol,
    ),
}

impl Endpoint {
    /// Whether the balancer may choose it now.
    #[inline]
    pub fn usable(&self, now: Instant) -> bool {
        self.probe_up.get()
            && self.ejected_until.get().is_none_or(|t| now >= t)
            && self.breaker.usable(now)
    }

    /// Records a breaker transition in the statistics; returns it for outlier publishing.
    pub fn note(&self, t: Option<Transition>) -> Option<Transition> {
        if t.is_some() {
            self.stats.set_breaker(breaker_code(self.breaker.state()));
        }
        t
    }
}

/// A breaker state as the statistics number it (`BREAKER_*`).
pub fn breaker_code(s: State) -> u8 {
    match s {
        State::Closed => BREAKER_CLOSED,
        State::Open => BREAKER_OPEN,
        State::HalfOpen => BREAKER_HALF_OPEN,
    }
}

/// One cluster on this shard.
pub struct ClusterView {
    pub name: Arc<str>,
    pub endpoints: Vec<Rc<Endpoint>>,
    pub balancer: Balancer,
    pub failure_statuses: Vec<u16>,
    pub max_ejection_percent: u8,
    /// Connections across the cluster on this shard (0 = unlimited) and requests waiting for one.
    pub max_connections: usize,
    pub max_pending: usize,
    pub pending: Cell<usize>,
    pub open_timeout: Duration,
    /// What this view was built from: an identical cluster on reload keeps the whole view
    /// (balancer cursors, Maglev table, EWMA), not only its endpoints.
    source: (Cluster, config::Pool, Duration),
}

/// A cluster's endpoints as the balancer sees them at one instant.
pub struct View<'a> {
    pub cluster: &'a ClusterView,
    pub now: Instant,
    /// An endpoint already tried by this request (retries go elsewhere when they can).
    pub avoid: Option<usize>,
}

impl Candidates for View<'_> {
    fn len(&self) -> usize {
        self.cluster.endpoints.len()
    }

    #[inline]
    fn usable(&self, i: usize) -> bool {
        self.avoid != Some(i) && self.cluster.endpoints[i].usable(self.now)
    }

    fn in_flight(&self, i: usize) -> u32 {
        self.cluster.endpoints[i].in_flight.get()
    }

    fn ewma_cost(&self, i: usize, now: Instant) -> f64 {
        let e = &self.cluster.endpoints[i];
        e.ewma.cost(now, e.in_flight.get())
    }
}

impl ClusterView {
    /// Whether the cluster speaks HTTP/2 to its endpoints (`protocol = "h2"` or `"h2c"`), which
    /// gRPC needs.
    pub fn speaks_h2(&self) -> bool {
        self.source.0.protocol != config::UpstreamProtocol::H1
    }

    /// Builds cluster `c`, keeping endpoints of `old` whose address and settings did not change.
    pub fn build(
        c: &Cluster,
        pool: config::Pool,
        timeouts: &Timeouts,
        old: Option<&ClusterView>,
        stats: &ShardStats,
        seed: u64,
    ) -> ClusterView {
        let name: Arc<str> = Arc::from(c.name.as_str());
        let mut limits = pool;
        if c.max_connections > 0 {
            limits.max_connections = if limits.max_connections == 0 {
                c.max_connections
            } else {
                limits.max_connections.min(c.max_connections)
            };
        }
        // This shard's own rustls client config (its session cache is not shared across cores).
        let connector = c.tls.as_ref().and_then(connector);
        // h2 over TLS offers ALPN `h2` only (the pool refuses an upstream that picks another).
        let connector = match c.protocol {
            config::UpstreamProtocol::H2 => connector.map(|cc| {
                let mut cc = (*cc).clone();
                cc.alpn_protocols = vec![b"h2".to_vec()];
                Arc::new(cc)
            }),
            _ => connector,
        };
        let endpoints = c
            .endpoints
            .iter()
            .map(|e| {
                let identity = (
                    limits,
                    timeouts.connect,
                    c.breaker.clone(),
                    c.tls.clone(),
                    c.protocol,
                );
                let kept = old.and_then(|o| {
                    o.endpoints
                        .iter()
                        .find(|x| *x.name == *e.name && x.addr == e.addr && x.identity == identity)
                });
                // A rebuilt endpoint of the same name keeps its health verdicts: the prober only
                // reports changes, and another shard's ejection still runs its course.
                let same_name = old.and_then(|o| o.endpoints.iter().find(|x| *x.name == *e.name));
                let probe_up = same_name.is_none_or(|x| x.probe_up.get());
                let ejected_until = same_name.and_then(|x| x.ejected_until.get());
                match kept {
                    Some(k) => k.clone(),
                    None => {
                        let stats = stats.endpoint(&c.name, &e.name);
                        stats.healthy.set(probe_up);
                        let tls = origination(c, &connector, config::discovery::host_port(&e.name));
                        let h2 = (c.protocol != config::UpstreamProtocol::H1).then(|| {
                            H2Pool::new(
                                e.addr,
                                limits,
                                timeouts.connect,
                                stats.clone(),
                                tls.clone(),
                            )
                        });
                        Rc::new(Endpoint {
                            cluster: name.clone(),
                            name: Arc::from(e.name.as_str()),
                            addr: e.addr,
                            pool: EndpointPool::new(e.addr, limits, timeouts, stats.clone(), tls),
                            h2,
                            breaker: Breaker::new(c.breaker.clone()),
                            ewma: PeakEwma::new(Duration::from_secs(10), Duration::from_millis(1)),
                            in_flight: Cell::new(0),
                            probe_up: Cell::new(probe_up),
                            ejected_until: Cell::new(ejected_until),
                            stats,
                            identity,
                        })
                    }
                }
            })
            .collect::<Vec<_>>();
        let ids: Vec<&str> = c.endpoints.iter().map(|e| e.name.as_str()).collect();
        let weights: Vec<u32> = c.endpoints.iter().map(|e| e.weight).collect();
        ClusterView {
            name,
            balancer: Balancer::new(&c.lb, &ids, &weights, seed),
            endpoints,
            failure_statuses: c.failure_statuses.clone(),
            max_ejection_percent: c.max_ejection_percent,
            max_connections: c.max_connections,
            max_pending: c.max_pending,
            pending: Cell::new(0),
            open_timeout: c.breaker.open_timeout,
            source: (c.clone(), pool, timeouts.connect),
        }
    }

    /// Whether this view was built from exactly these settings.
    pub fn built_from(&self, c: &Cluster, pool: config::Pool, timeouts: &Timeouts) -> bool {
        self.source.0 == *c && self.source.1 == pool && self.source.2 == timeouts.connect
    }

    pub fn find(&self, endpoint: &str) -> Option<&Rc<Endpoint>> {
        self.endpoints.iter().find(|e| *e.name == *endpoint)
    }

    /// Connections open to the whole cluster on this shard.
    pub fn open_connections(&self) -> usize {
        self.endpoints
            .iter()
            .map(|e| e.pool.open_count() + e.h2.as_ref().map_or(0, H2Pool::open_count))
            .sum()
    }

    /// Applies another shard's outlier ejection, unless the cluster's ejection cap is reached.
    pub fn eject_remote(&self, e: &Endpoint, now: Instant) -> bool {
        let ejected = self
            .endpoints
            .iter()
            .filter(|x| x.ejected_until.get().is_some_and(|t| now < t))
            .count();
        let cap = self.endpoints.len() * usize::from(self.max_ejection_percent) / 100;
        if ejected + 1 > cap {
            return false;
        }
        e.ejected_until.set(Some(now + self.open_timeout));
        true
    }
}

/// The shard's TLS connector for a cluster's `tls` settings. Material that gives no rustls config
/// (it passed `config::check`, so only a bug) leaves the cluster unable to connect: stderr says
/// why, and its requests fail with 502.
fn connector(t: &config::UpstreamTls) -> Option<Arc<ClientConfig>> {
    let built = t.material.as_ref().map(|m| m.client_config());
    match built {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            eprintln!("error: upstream tls: {e}");
            None
        }
        None => {
            eprintln!("error: upstream tls: certificates not loaded");
            None
        }
    }
}

/// How endpoint `name` of cluster `c` speaks TLS on this shard (`None`: plain TCP). A TLS
/// cluster whose connector could not be built gets an origination nothing can verify against,
/// so it fails closed rather than falling back to plain TCP.
fn origination(
    c: &Cluster,
    connector: &Option<Arc<ClientConfig>>,
    name: &str,
) -> Option<Origination> {
    let t = c.tls.as_ref()?;
    let connector = connector.clone().unwrap_or_else(refusing_connector);
    let name = crate::tls::server_name(t.sni.as_deref(), name)
        .unwrap_or_else(|_| crate::tls::ServerName::try_from("invalid.invalid").expect("valid"));
    Some(Origination { connector, name })
}

/// A connector that trusts no CA: every handshake fails with `unknown_issuer`.
fn refusing_connector() -> Arc<ClientConfig> {
    let m = crate::tls::ClientMaterial::refusing();
    m.client_config().expect("an empty root store builds")
}
