//! The routing table one config version gives a shard: the router, each route with its rate
//! limiter, retry budget and statistics, and the clusters. Rebuilt on every config event, keeping
//! the state of routes and endpoints that did not change (pools stay warm, buckets stay full);
//! a request holds the `Rc<Table>` it started with, so a reload never changes it halfway.
//! Shard thread only.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;

use super::global::GlobalShard;
use super::upstream::cluster::ClusterView;
use crate::config::{Config, ListenerTls, RateKey, RateLimit, Route};
use crate::policy::ratelimit::{Limiter, Rate};
use crate::policy::ratelimit_headers::RateLimitHeaders;
use crate::policy::retry_budget::RetryBudget;
use crate::policy::route::Router;
use crate::policy::trusted::Trusted;
use crate::stats::{ListenerTlsStats, RouteStats, ShardStats};
use crate::tls::Ticketer;

/// Buckets one route's limiter keeps per shard before it evicts.
const MAX_BUCKETS: usize = 65_536;

pub struct RouteView {
    pub name: Arc<str>,
    pub cluster: Option<Rc<ClusterView>>,
    pub limiter: Option<Rc<Limiter>>,
    /// The route's RateLimit-* fields (the process-wide policy), rendered once.
    pub rate_headers: Option<RateLimitHeaders>,
    pub budget: Rc<RetryBudget>,
    pub stats: Rc<RouteStats>,
    /// Lower-case names dropped from upstream responses: the route's removals and the names it
    /// adds (an added header replaces the upstream's).
    pub response_drop: Vec<String>,
    /// The route's added response header lines, rendered once (`Name: value\r\n` each).
    pub response_add: Vec<u8>,
    /// The limiter's settings, to decide whether a reload keeps its buckets.
    limit_identity: Option<BucketIdentity>,
    budget_identity: (f64, u32),
}

/// What a route's buckets depend on: rate, burst, key, whether the key is the fleet's (`scope`)
/// and the shard's share. A global limit's Redis settings (`redis`, `sync`, `on_error`) are not
/// in it: a reload changing only those keeps the buckets.
#[derive(Debug, Clone, PartialEq)]
struct BucketIdentity {
    rate: Rate,
    burst: u32,
    key: RateKey,
    global: bool,
    share: usize,
}

impl BucketIdentity {
    fn of(l: &RateLimit, share: usize) -> BucketIdentity {
        BucketIdentity {
            rate: l.rate,
            burst: l.burst,
            key: l.key.clone(),
            global: l.global.is_some(),
            share,
        }
    }
}

pub struct Table {
    pub config: Arc<Config>,
    /// This shard's side of `scope = "global"` limits, carried from table to table.
    pub global: Rc<GlobalShard>,
    pub router: Router,
    pub routes: Vec<RouteView>,
    pub clusters: Vec<Rc<ClusterView>>,
    pub trusted: Trusted,
    /// Host sent upstream for HTTP/1.0 requests that carry none: the first cluster's first
    /// endpoint, as this config names it (so it follows a reload; `HOST:PORT` of a discovered one).
    pub fallback_host: Box<[u8]>,
    /// This shard's TLS acceptor for each TLS listener (by the address it is bound to): its
    /// own rustls config, so no handshake takes a lock another core holds.
    pub tls: Vec<TlsListener>,
}

/// One TLS listener as this shard serves it.
pub struct TlsListener {
    /// The address the listener is bound to (the key accept loops look it up by: two listeners
    /// written `127.0.0.1:0` are bound to two ports, each with its own certificates).
    pub bound: SocketAddr,
    /// This shard's own rustls config (its session cache is this shard's alone).
    pub acceptor: Arc<ServerConfig>,
    /// Its handshake counters, by the address as written (what the `listener` label says).
    pub stats: Rc<ListenerTlsStats>,
    /// What the acceptor was built from: an unchanged listener keeps its acceptor (and session
    /// cache) across a reload.
    settings: ListenerTls,
}

impl Table {
    /// The TLS listener bound to `bound`, as of this config version.
    pub fn tls_listener(&self, bound: SocketAddr) -> Option<&TlsListener> {
        self.tls.iter().find(|t| t.bound == bound)
    }
}

impl Table {
    /// The table for `config` on a shard of `shards` (each holds 1/shards of a rate limit unless
    /// clients are steered), reusing what `old` has for unchanged routes and endpoints.
    pub fn build(
        config: Arc<Config>,
        shards: usize,
        old: Option<&Table>,
        stats: &ShardStats,
        seed: u64,
        tickets: &Arc<Ticketer>,
    ) -> Table {
        let clusters: Vec<Rc<ClusterView>> = config
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let prev = old.and_then(|o| o.clusters.iter().find(|x| *x.name == *c.name));
                if let Some(p) = prev.filter(|p| p.built_from(c, config.pool, &config.timeouts)) {
                    return p.clone();
                }
                Rc::new(ClusterView::build(
                    c,
                    config.pool,
                    &config.timeouts,
                    prev.map(|p| &**p),
                    stats,
                    seed ^ (i as u64).wrapping_mul(0x9e37_79b9),
                ))
            })
            .collect();
        let share = if config.steer_client_ip {
            1
        } else {
            shards.max(1)
        };
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let prev = old.and_then(|o| o.routes.iter().find(|x| *x.name == *r.name));
                route_view(r, &clusters, share, prev, stats)
            })
            .collect();
        let specs: Vec<_> = config.routes.iter().map(|r| r.matches.clone()).collect();
        let fallback_host = config
            .clusters
            .first()
            .and_then(|c| c.endpoints.first())
            .map_or(Box::default(), |e| {
                crate::config::discovery::host_port(&e.name)
                    .as_bytes()
                    .into()
            });
        let tls = tls_listeners(&config, old, tickets, stats);
        Table {
            global: old.map_or_else(Rc::default, |o| o.global.clone()),
            tls,
            router: Router::new(&specs),
            trusted: Trusted::new(config.trusted_proxies.clone()),
            fallback_host,
            routes,
            clusters,
            config,
        }
    }
}

/// Builds this shard's acceptor for every TLS listener, keeping those whose settings are unchanged;
/// all of them seal session tickets with the shard's `tickets` (so a ticket survives a reload).
/// Each listener's counters are registered by its written address (kept across a reload).
/// A material that gives no rustls config (it passed the checks, so only a bug) leaves that
/// listener without an acceptor: its connections are closed, and stderr says why.
fn tls_listeners(
    config: &Config,
    old: Option<&Table>,
    tickets: &Arc<Ticketer>,
    stats: &ShardStats,
) -> Vec<TlsListener> {
    let mut out = Vec::new();
    for l in &config.listeners {
        let Some(t) = &l.tls else { continue };
        let bound = l.bound_addr();
        let kept = old
            .and_then(|o| o.tls.iter().find(|x| x.bound == bound && x.settings == *t))
            .map(|x| x.acceptor.clone());
        let acceptor = match (kept, &t.material) {
            (Some(a), _) => a,
            (None, Some(m)) => match m.server_config(tickets) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: tls listener {}: {e}", l.addr);
                    continue;
                }
            },
            (None, None) => {
                eprintln!("error: tls listener {}: certificates not loaded", l.addr);
                continue;
            }
        };
        out.push(TlsListener {
            bound,
            acceptor,
            stats: stats.tls_listener(&l.addr.to_string()),
            settings: t.clone(),
        });
    }
    out
}

fn route_view(
    r: &Route,
    clusters: &[Rc<ClusterView>],
    share: usize,
    prev: Option<&RouteView>,
    stats: &ShardStats,
) -> RouteView {
    let identity = r.rate_limit.as_ref().map(|l| BucketIdentity::of(l, share));
    let limiter = match (&r.rate_limit, prev) {
        (None, _) => None,
        (Some(_), Some(p)) if p.limit_identity == identity => p.limiter.clone(),
        (Some(l), _) => {
            let (rate, burst) = shard_share(l, share);
            Some(Rc::new(Limiter::new(rate, burst, MAX_BUCKETS)))
        }
    };
    let budget_identity = (r.retry.budget_ratio, r.retry.budget_min_per_sec);
    let budget = match prev {
        Some(p) if p.budget_identity == budget_identity => p.budget.clone(),
        _ => Rc::new(RetryBudget::new(
            r.retry.budget_ratio,
            r.retry.budget_min_per_sec,
            Duration::from_secs(10),
        )),
    };
    let edits = &r.response_headers;
    let mut response_drop = edits.remove.clone();
    response_drop.extend(edits.add.iter().map(|(n, _)| n.to_ascii_lowercase()));
    RouteView {
        name: Arc::from(r.name.as_str()),
        cluster: r.cluster.map(|i| clusters[i].clone()),
        limiter,
        rate_headers: r
            .rate_limit
            .as_ref()
            .map(|l| RateLimitHeaders::new(l, burst_of(l))),
        budget,
        stats: stats.route(&r.name),
        response_drop,
        response_add: edits
            .add
            .iter()
            .flat_map(|(n, v)| [n.as_bytes(), b": ", v.as_bytes(), b"\r\n"])
            .flatten()
            .copied()
            .collect(),
        limit_identity: identity,
        budget_identity,
    }
}

/// The configured burst, or one second's worth of the rate when none is set.
fn burst_of(l: &RateLimit) -> u32 {
    if l.burst > 0 {
        l.burst
    } else {
        (l.rate.per_second.ceil() as u32).max(1)
    }
}

/// This shard's part of a process-wide limit.
fn shard_share(l: &RateLimit, share: usize) -> (Rate, u32) {
    let burst = burst_of(l).div_ceil(share as u32).max(1);
    (l.rate.per_shard(share), burst)
}

/// The bucket key of a request under `key`; a `global` limit's header keys are the fleet's (the
/// same on every host), a local one's are this process's own.
pub fn rate_key(
    key: &RateKey,
    global: bool,
    client: std::net::IpAddr,
    header: Option<&[u8]>,
) -> u128 {
    use crate::policy::ratelimit::{bytes_key, fleet_bytes_key, ip_key};
    match (key, header) {
        (RateKey::Header(_), Some(v)) if global => fleet_bytes_key(v),
        (RateKey::Header(_), Some(v)) => bytes_key(v),
        _ => ip_key(client),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TicketKeys;

    fn table(rate_limit: &str, old: Option<&Table>) -> Table {
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:9\"]\n\
             [[routes]]\nname = \"api\"\ncluster = \"a\"\nrate_limit = {{ rate = \"5/s\"{rate_limit} }}\n"
        );
        let c = Arc::new(crate::config::parse("t.toml", &text).unwrap());
        let keys = TicketKeys::generate(Duration::from_secs(3600)).unwrap();
        let tickets = crate::tls::Ticketer::new(&keys);
        Table::build(c, 2, old, &ShardStats::new(), 1, &tickets)
    }

    fn same_buckets(a: &Table, b: &Table) -> bool {
        let (a, b) = (&a.routes[0].limiter, &b.routes[0].limiter);
        Rc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap())
    }

    #[test]
    fn a_reload_changing_only_redis_settings_keeps_the_buckets() {
        let g = |redis: &str, sync: &str, on_error: &str| {
            format!(", scope = \"global\", redis = \"{redis}\", sync = \"{sync}\", on_error = \"{on_error}\"")
        };
        let t1 = table(&g("redis://a", "100ms", "allow"), None);
        let t2 = table(&g("redis://b:7000", "250ms", "deny"), Some(&t1));
        assert!(
            same_buckets(&t1, &t2),
            "redis, sync and on_error do not touch the buckets"
        );
        assert!(
            Rc::ptr_eq(&t1.global, &t2.global),
            "the global state is carried over"
        );
        // The scope changes how header keys hash: new buckets. So does the rate.
        let t3 = table("", Some(&t2));
        assert!(!same_buckets(&t2, &t3));
        let t4 = table(", burst = 3", Some(&t3));
        assert!(!same_buckets(&t3, &t4));
    }
}
