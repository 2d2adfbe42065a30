//! Validated cluster settings: named endpoint lists with their balancing algorithm, circuit
//! breaker, outlier cap, active health check, per-shard connection limits and TLS to the
//! endpoints. Pure data.

use std::net::SocketAddr;
use std::time::Duration;

use super::discovery::{Discover, DEFAULT_MIN_TTL};
use super::UpstreamTls;
use crate::policy::balance::Algorithm;
use crate::policy::breaker::BreakerConfig;

/// A named pool of interchangeable endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    /// The endpoints written as addresses or hostnames, then those DNS discovery found for
    /// `discover` (named `HOST:PORT@IP`, see `discovery::endpoint_name`).
    pub endpoints: Vec<Endpoint>,
    /// `dns:` and `srv:` endpoints as written; what they find is kept in `endpoints`.
    pub discover: Vec<Discover>,
    /// Discovered names are asked again after their TTL, clamped to `[min_ttl, resolve_interval]`.
    pub min_ttl: Duration,
    /// A discovered endpoint set older than this (no successful answer since) fails `/readyz`.
    pub max_stale: Option<Duration>,
    pub lb: Algorithm,
    pub breaker: BreakerConfig,
    /// Upstream statuses that count as breaker failures (connect errors and timeouts always do).
    pub failure_statuses: Vec<u16>,
    /// At most this share of the cluster may be ejected by other shards' outlier events.
    pub max_ejection_percent: u8,
    pub health: Option<HealthCheck>,
    /// Upstream connections per shard across the whole cluster; 0 = unlimited (503 beyond).
    pub max_connections: usize,
    /// Requests per shard waiting for a connection across the cluster (503 beyond).
    pub max_pending: usize,
    /// How often the coordinator re-resolves hostnames, and the longest a discovered name's TTL
    /// is trusted; changes reach shards as config events.
    pub resolve_interval: Duration,
    /// Speak TLS to the endpoints (`None` = plain TCP).
    pub tls: Option<UpstreamTls>,
    /// The HTTP version spoken to the endpoints.
    pub protocol: UpstreamProtocol,
}

/// The HTTP version a cluster's endpoints are spoken to with (`protocol` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, over TCP or the cluster's `tls`.
    #[default]
    H1,
    /// HTTP/2 over the cluster's `tls`, ALPN `h2`.
    H2,
    /// HTTP/2 with prior knowledge over plain TCP.
    H2c,
}

impl UpstreamProtocol {
    /// The name as written in the config file.
    pub fn name(self) -> &'static str {
        match self {
            UpstreamProtocol::H1 => "h1",
            UpstreamProtocol::H2 => "h2",
            UpstreamProtocol::H2c => "h2c",
        }
    }

    /// Whether a cluster with (`tls`) or without TLS can be spoken to this way: `h2` needs TLS
    /// (ALPN h2), `h2c` is plain TCP only.
    pub fn check(self, tls: bool) -> Result<(), String> {
        match (self, tls) {
            (UpstreamProtocol::H2, false) => Err("\"h2\" is HTTP/2 over TLS (ALPN h2): it needs \
                 the cluster's tls; \"h2c\" is HTTP/2 over plain TCP"
                .into()),
            (UpstreamProtocol::H2c, true) => {
                Err("\"h2c\" is HTTP/2 over plain TCP: with the cluster's tls use \"h2\"".into())
            }
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for UpstreamProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "h1" => Ok(UpstreamProtocol::H1),
            "h2" => Ok(UpstreamProtocol::H2),
            "h2c" => Ok(UpstreamProtocol::H2c),
            _ => Err(format!("{s:?} is not a protocol (use h1, h2 or h2c)")),
        }
    }
}

/// One endpoint as written (`host:port`) and as last resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// As written; the identity consistent hashing and carried-over state use.
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
}

/// How an endpoint is probed, by one shard, with results broadcast to all.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring a down endpoint back.
    pub rise: u32,
    /// Consecutive failures that take an up endpoint out.
    pub fall: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    /// A TCP connect that succeeds within the timeout.
    Tcp,
    /// `GET path` answered with a status in `expect` (inclusive range).
    Http { path: String, expect: (u16, u16) },
    /// The standard `grpc.health.v1.Health/Check` over HTTP/2 (h2c, or TLS with ALPN `h2`)
    /// answered SERVING for `service` (empty: the server as a whole).
    Grpc { service: String },
}

impl Cluster {
    /// A cluster with the defaults an operator expects (round-robin, breaker 5 failures / 30 s).
    pub fn new(name: &str, endpoints: Vec<Endpoint>) -> Cluster {
        Cluster {
            name: name.to_string(),
            endpoints,
            discover: Vec::new(),
            min_ttl: DEFAULT_MIN_TTL,
            max_stale: None,
            lb: Algorithm::RoundRobin,
            breaker: BreakerConfig::default(),
            failure_statuses: vec![502, 503, 504],
            max_ejection_percent: 50,
            health: None,
            max_connections: 0,
            max_pending: 1024,
            resolve_interval: Duration::from_secs(30),
            tls: None,
            protocol: UpstreamProtocol::H1,
        }
    }
}

/// An endpoint as written: an address or hostname resolved now, or a name for DNS discovery.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    Fixed(Endpoint),
    Dns(Discover),
}

impl Cluster {
    /// A cluster of the endpoints as written (see `new` for the defaults).
    pub fn written(name: &str, written: Vec<Written>) -> Cluster {
        let mut c = Cluster::new(name, Vec::new());
        c.set_written(written);
        c
    }

    /// Replaces every endpoint with `written`.
    pub fn set_written(&mut self, written: Vec<Written>) {
        self.endpoints.clear();
        self.discover.clear();
        for w in written {
            match w {
                Written::Fixed(e) => self.endpoints.push(e),
                Written::Dns(d) => self.discover.push(d),
            }
        }
    }
}

impl HealthCheck {
    /// Parses the `--health-check` form: `tcp`, `http:/path`, `grpc` or `grpc:SERVICE`.
    pub fn parse_kind(s: &str) -> Result<ProbeKind, String> {
        if s == "tcp" {
            return Ok(ProbeKind::Tcp);
        }
        if s == "grpc" || s.starts_with("grpc:") {
            let service = s.get(5..).unwrap_or("");
            if service.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(format!("{service:?}: a gRPC service name has no spaces"));
            }
            return Ok(ProbeKind::Grpc {
                service: service.to_string(),
            });
        }
        match s.strip_prefix("http:") {
            Some(path) if path.starts_with('/') && !path.bytes().any(|b| b <= b' ') => {
                Ok(ProbeKind::Http {
                    path: path.to_string(),
                    expect: (200, 399),
                })
            }
            _ => Err(format!(
                "{s:?} is not a health check (use tcp, http:/path, grpc or grpc:SERVICE)"
            )),
        }
    }

    pub fn new(kind: ProbeKind) -> HealthCheck {
        HealthCheck {
            kind,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
        }
    }
}

/// Parses an endpoint written `host:port` (resolved now), `dns:host:port` or
/// `srv:_service._proto.name` (looked up by the coordinator's discovery thread), the first two
/// optionally followed by `weight=N`.
pub fn parse_endpoint(text: &str) -> Result<Written, String> {
    let mut parts = text.split_whitespace();
    let hostport = parts.next().ok_or("empty endpoint")?;
    let mut weight = None;
    for p in parts {
        match p.strip_prefix("weight=").map(str::parse::<u32>) {
            Some(Ok(w)) if (1..=1000).contains(&w) => weight = Some(w),
            _ => return Err(format!("{p:?}: expected weight=N with N in 1..=1000")),
        }
    }
    if let Some(d) = Discover::parse(hostport, weight) {
        return d.map(Written::Dns);
    }
    let addr = resolve(hostport)?;
    Ok(Written::Fixed(Endpoint {
        name: hostport.to_string(),
        addr,
        weight: weight.unwrap_or(1),
    }))
}

/// Resolves `host:port` to its first address.
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {text:?} as host:port: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}
