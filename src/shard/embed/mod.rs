//! Library mode: the proxy's routing, pools, balancing, health, breakers, retries and rate limits
//! embedded in a monoio program, so its requests go straight to the upstreams (no proxy hop).
//!
//! A [`Client`] is what one shard is to the proxy, for one thread of the embedding program: it
//! owns a routing table built from the same [`Config`] (the same TOML file, or a
//! [`Builder`]), with its own per-endpoint connection pools, breakers, balancer state, retry
//! budgets, rate-limit buckets and statistics, all `Rc`/`Cell` (a `Client` is neither `Send` nor
//! `Sync`: make one per thread). [`Client::send`] routes a request by the `[[routes]]` rules,
//! [`Client::send_to`] sends it to a named cluster; both pick an endpoint with the cluster's
//! balancer among those health checks and breakers allow, lease a connection within the caps
//! (waiting in the bounded queue, [`Error::PoolFull`] beyond), apply the route's timeouts and
//! retry policy under its budget, and stream both bodies. Clusters speak HTTP/1.1, or HTTP/2
//! (`protocol = "h2c"`, or `"h2"` over TLS with ALPN) through the proxy's own multiplexed pool:
//! requests share a few connections under the upstream's stream limit, streams the upstream
//! refused unprocessed (REFUSED_STREAM, GOAWAY) are sent again, bodies move within the
//! flow-control windows, and the response's trailers (a gRPC call's `grpc-status`) are read
//! with [`ResponseBody::trailers`]. Active health checks and the idle-pool
//! sweep run as tasks on the calling thread while the client lives. [`Client::reload`] swaps the
//! config with the proxy's carry-over (unchanged endpoints keep their pools and breakers), and
//! [`Client::stats`] gives the same [`Snapshot`] the proxy's shards send to its coordinator.
//!
//! DNS discovery (`dns:`/`srv:` endpoints, hostname endpoints re-resolved every
//! `resolve_interval`) and `scope = "global"` rate limits (synced through Redis) run as in the
//! proxy, on side threads the client starts when its config needs them: a `discovery` thread
//! asks DNS, a `limits` thread talks to Redis; neither is ever waited on by a request. A task on
//! the calling thread polls them without blocking: a changed endpoint set is applied with the
//! carry-over of [`Client::reload`] (a failing DNS server keeps the last-known set), the
//! limits thread's verdict refuses keys over the fleet-wide allowance with
//! [`Error::RateLimited`] (with Redis down, `on_error = "deny"` refuses the route, `"allow"` serves
//! under the local bucket). [`Client::new`] waits (at most 5 s) for the first DNS answers. Each
//! client owns its own threads — several clients in one process (one per thread) each start
//! theirs — and they end when the last clone of the client is dropped. Their figures
//! (`Snapshot::discovery`, `Snapshot::global_limit_errors`) are in [`Client::stats`].
//!
//! ```no_run
//! use shardgate::embed::{Body, Client};
//!
//! #[monoio::main(timer_enabled = true)]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::builder()
//!         .cluster("api", &["127.0.0.1:9001", "127.0.0.1:9002"])
//!         .route_prefix("/", "api")
//!         .build()?;
//!     let req = http::Request::get("http://api.internal/users/7").body(Body::empty())?;
//!     let resp = client.send(req).await?;
//!     println!("{} {:?}", resp.status(), resp.into_body().bytes().await?);
//!     Ok(())
//! }
//! ```
//!
//! Embedding thread only; it imports the pipeline's protocol-neutral steps and the upstream layer,
//! and nothing imports it.

mod admit;
mod body;
mod builder;
mod error;
mod h2;
mod h2body;
mod head;
mod outside;
mod probe;
mod reply;
mod response;
mod send;
mod wire;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub use self::body::{Body, BodySender};
pub use self::builder::Builder;
pub use self::error::{Error, Side};
pub use self::response::ResponseBody;
pub use crate::config::Config;
pub use crate::stats::Snapshot;

use self::send::Target;
use self::wire::Kits;
use super::table::Table;
use crate::stats::{ShardMeta, ShardStats};
use crate::tls::{TicketKeys, Ticketer};

/// A request sent through a [`Client`]: `http::Request` with a [`Body`].
pub type Request = http::Request<Body>;

/// What a [`Client`] returns: `http::Response` whose [`ResponseBody`] still holds the connection.
pub type Response = http::Response<ResponseBody>;

/// The router, pools and resilience of one thread; see the [module docs](self). Cloning is cheap
/// and shares everything (an `Rc`), so tasks of the thread can each hold one.
#[derive(Clone)]
pub struct Client {
    inner: Rc<Inner>,
}

/// What a client owns (what a `Shard` owns for the proxy, less listeners and connections).
pub(crate) struct Inner {
    table: RefCell<Rc<Table>>,
    stats: ShardStats,
    seed: u64,
    tickets: Arc<Ticketer>,
    kits: Rc<Kits>,
    /// The discovery and limits threads this client owns (when its config needs them).
    outside: RefCell<outside::Outside>,
}

impl Client {
    /// A client for `config`, as [`Config::from_file`] read it from a TOML file (listeners and
    /// the proxy-only settings are ignored; it is validated as the proxy validates it). Must be
    /// called on a monoio runtime (with the timer enabled): it starts the health-check,
    /// pool-sweep and side-thread polling tasks on this thread, and the discovery and limits
    /// threads when the config has DNS names or global rate limits (waiting at most 5 s for the
    /// first DNS answers); all end when the last clone of the client is dropped.
    ///
    /// ```no_run
    /// # #[monoio::main(timer_enabled = true)]
    /// # async fn main() {
    /// use shardgate::embed::{Client, Config};
    /// let config = Config::from_file("shardgate.toml").expect("valid config");
    /// let client = Client::new(config).expect("usable config");
    /// # drop(client);
    /// # }
    /// ```
    pub fn new(config: Config) -> Result<Client, crate::config::Invalid> {
        Client::start(config)
    }

    /// A client from a TOML config file (`Client::new` of what the proxy's loader reads).
    ///
    /// ```no_run
    /// # #[monoio::main(timer_enabled = true)]
    /// # async fn main() {
    /// let client = shardgate::embed::Client::from_file("shardgate.toml").unwrap();
    /// # drop(client);
    /// # }
    /// ```
    pub fn from_file(path: &str) -> Result<Client, String> {
        Client::new(Config::from_file(path)?).map_err(|e| e.to_string())
    }

    /// A builder for a client configured in code (clusters, endpoints, routes).
    ///
    /// ```no_run
    /// # #[monoio::main(timer_enabled = true)]
    /// # async fn main() {
    /// let client = shardgate::embed::Client::builder()
    ///     .cluster("api", &["10.0.0.1:8080", "10.0.0.2:8080"])
    ///     .route_prefix("/api", "api")
    ///     .build()
    ///     .unwrap();
    /// # drop(client);
    /// # }
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn start(config: Config) -> Result<Client, crate::config::Invalid> {
        let config = prepare(config)?;
        let mut outside = outside::Outside::default();
        let config = outside.first(config);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ u64::from(std::process::id()) << 32;
        let keys = TicketKeys::generate(config.tls_ticket_rotation)
            .map_err(|e| config.invalid("tls_ticket_rotation", e.to_string()))?;
        let tickets = Ticketer::new(&keys);
        let stats = ShardStats::new();
        let table = Table::build(config.clone(), 1, None, &stats, seed, &tickets);
        outside.follow(&table.config, false);
        let inner = Rc::new(Inner {
            table: RefCell::new(Rc::new(table)),
            stats,
            seed,
            tickets,
            kits: Rc::new(Kits::new(config.shards.upstream_buffer_size)),
            outside: RefCell::new(outside),
        });
        probe::start(&inner);
        monoio::spawn(outside::run(Rc::downgrade(&inner)));
        Ok(Client { inner })
    }

    /// Sends `req` by the `[[routes]]` rules (host, path, methods, headers; first match wins):
    /// the route's rate limit and body limit, then its cluster, with its timeouts and retries.
    /// A route with a direct answer gives that answer. The response's body still holds the
    /// connection: read it to its end for the connection to be reused.
    ///
    /// ```no_run
    /// # async fn demo(client: &shardgate::embed::Client) -> Result<(), shardgate::embed::Error> {
    /// use shardgate::embed::Body;
    /// let req = http::Request::post("http://api.internal/orders")
    ///     .header("content-type", "application/json")
    ///     .body(Body::from(r#"{"id":7}"#))
    ///     .unwrap();
    /// let resp = client.send(req).await?;
    /// assert!(resp.status().is_success());
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, req: Request) -> Result<Response, Error> {
        admit::send(&self.inner, req).await
    }

    /// Sends `req` straight to the cluster named `cluster`, with the retry policy, budget and
    /// timeouts of the first route that forwards to it (none: no retries and the global
    /// `[timeouts]`); no route rules, rate limit or body limit apply.
    ///
    /// ```no_run
    /// # async fn demo(client: &shardgate::embed::Client) -> Result<(), shardgate::embed::Error> {
    /// let req = http::Request::get("/healthz").body(().into()).unwrap();
    /// let resp = client.send_to("api", req).await?;
    /// # drop(resp); Ok(()) }
    /// ```
    pub async fn send_to(&self, cluster: &str, req: Request) -> Result<Response, Error> {
        let table = self.inner.table();
        let Some(c) = table.clusters.iter().position(|c| *c.name == *cluster) else {
            return Err(Error::UnknownCluster);
        };
        let route = table
            .config
            .routes
            .iter()
            .position(|r| r.cluster == Some(c));
        let (parts, body) = req.into_parts();
        let target = Target {
            table: &table,
            cluster: &table.clusters[c],
            route: route.map(|i| (&table.routes[i], &table.config.routes[i])),
            key: b"",
        };
        send::exchange(&self.inner, &target, &parts, body).await
    }

    /// Swaps the config: new requests use it at once, requests under way finish on theirs.
    /// Clusters and endpoints whose settings did not change keep their pools (and idle
    /// connections), breakers, balancer state and health; routes keep their rate-limit buckets
    /// and retry budgets (the proxy's reload rules); clusters whose `dns:`/`srv:` names did not
    /// change keep the endpoints found for them. Idle connections to endpoints that left are
    /// closed (HTTP/2 ones once their streams end). An invalid config changes nothing.
    ///
    /// ```no_run
    /// # fn demo(client: &shardgate::embed::Client) {
    /// let next = shardgate::embed::Config::from_file("shardgate.toml").expect("valid config");
    /// client.reload(next).expect("usable config");
    /// # }
    /// ```
    pub fn reload(&self, config: Config) -> Result<(), crate::config::Invalid> {
        let config = prepare(config)?;
        // Clusters whose DNS names did not change keep the endpoints found for them.
        let config = self
            .inner
            .outside
            .borrow()
            .with_found(Arc::unwrap_or_clone(config));
        self.inner.install(Arc::new(config), true);
        Ok(())
    }

    /// This client's statistics, as one proxy shard reports them (`Snapshot::merge` folds
    /// several together; [`render_metrics`] writes them as the proxy's Prometheus text).
    ///
    /// ```no_run
    /// # fn demo(client: &shardgate::embed::Client) {
    /// let snap = client.stats();
    /// for ((cluster, endpoint), e) in &snap.endpoints {
    ///     println!("{cluster}/{endpoint}: {} requests", e.total_requests());
    /// }
    /// # }
    /// ```
    pub fn stats(&self) -> Snapshot {
        let mut snap = self.inner.stats.snapshot(ShardMeta {
            id: 0,
            core: None,
            driver: "embedded",
            draining: false,
            connections: 0,
            requests: 0,
        });
        let table = self.inner.table();
        self.inner
            .outside
            .borrow()
            .figures(&table.config, &mut snap);
        snap
    }
}

/// Writes statistics as Prometheus text, in the format of the proxy's `/metrics`: `snapshots`
/// are [`Client::stats`] of the program's clients (one per thread; `Snapshot` is `Send`), merged
/// as the proxy merges its shards.
///
/// ```no_run
/// # fn demo(client: &shardgate::embed::Client) {
/// let text = shardgate::embed::render_metrics(&[client.stats()]);
/// assert!(text.contains("shardgate_upstream_requests_total"));
/// # }
/// ```
pub fn render_metrics(snapshots: &[Snapshot]) -> String {
    let mut out = String::new();
    crate::stats::render(snapshots, &mut out);
    // What the proxy's coordinator adds from its own side threads.
    let all = Snapshot::merged(snapshots);
    crate::stats::render_discovery(&all.discovery, &mut out);
    let errors: Vec<(String, u64)> = all.global_limit_errors.into_iter().collect();
    crate::stats::render_global_limits(&errors, &mut out);
    out
}

impl Config {
    /// Reads a TOML config file in the proxy's format (docs/CONTRACT.md), for [`Client::new`]
    /// and [`Client::reload`]; an error names the file, line and field.
    ///
    /// ```no_run
    /// let config = shardgate::embed::Config::from_file("shardgate.toml").unwrap();
    /// # drop(config);
    /// ```
    pub fn from_file(path: &str) -> Result<Config, String> {
        crate::config::load(path).map_err(|e| e.to_string())
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.inner.table();
        let clusters: Vec<&str> = table.clusters.iter().map(|c| &*c.name).collect();
        f.debug_struct("Client")
            .field("clusters", &clusters)
            .field("routes", &table.routes.len())
            .finish()
    }
}

impl Inner {
    fn table(&self) -> Rc<Table> {
        self.table.borrow().clone()
    }

    /// Serves `config` from now on (a reload, or a changed DNS set): pools, breakers, balancer
    /// state and health of unchanged endpoints kept, idle connections to endpoints that left
    /// closed; the side threads told (`again`: discovery reads /etc/resolv.conf again).
    fn install(&self, config: Arc<Config>, again: bool) {
        let old = self.table();
        self.outside.borrow_mut().report(&old);
        let table = Table::build(config, 1, Some(&old), &self.stats, self.seed, &self.tickets);
        for c in &old.clusters {
            for e in &c.endpoints {
                let kept =
                    (table.clusters.iter()).any(|n| n.endpoints.iter().any(|x| Rc::ptr_eq(x, e)));
                if !kept {
                    e.pool.close_idle();
                    if let Some(h2) = &e.h2 {
                        h2.close_idle();
                    }
                }
            }
        }
        let table = Rc::new(table);
        *self.table.borrow_mut() = table.clone();
        drop(old);
        self.stats.forget_unused();
        self.outside.borrow_mut().follow(&table.config, again);
    }
}

/// The config as a client uses it: validated like the proxy's (less what only a proxy has:
/// listeners, admin, access log), certificates of TLS clusters loaded.
fn prepare(mut config: Config) -> Result<Arc<Config>, crate::config::Invalid> {
    config.listeners.clear();
    config.admin = None;
    config.access_log = crate::config::AccessLogTarget::Off;
    crate::config::check_client(&mut config)?;
    Ok(Arc::new(config))
}
