//! A library client configured in code (`Builder`): clusters of endpoints, prefix routes to them,
//! the connection caps, timeouts, retries, breaker, health checks and HTTP version, all landing
//! in the same `Config` the TOML loader gives (the proxy's defaults for everything not set),
//! validated the same way. Embedding thread.

use std::time::Duration;

use super::Client;
use crate::config::{self, Cluster, Config, HealthCheck, Route, Written};
use crate::policy::route::PathPattern;

/// Builds a [`Client`] without a config file; see [`Client::builder`].
///
/// ```no_run
/// # #[monoio::main(timer_enabled = true)]
/// # async fn main() {
/// use std::time::Duration;
/// let client = shardgate::embed::Client::builder()
///     .cluster("users", &["127.0.0.1:9001", "127.0.0.1:9002 weight=2"])
///     .cluster("search", &["127.0.0.1:9101"])
///     .route_prefix("/search", "search")
///     .route_prefix("/", "users")
///     .max_connections(32)
///     .queue(64, Duration::from_millis(200))
///     .retries(2, &["connect", "reset", "503"])
///     .health_check("http:/healthz", Duration::from_secs(1))
///     .build()
///     .expect("valid settings");
/// # drop(client);
/// # }
/// ```
pub struct Builder {
    config: Config,
    error: Option<String>,
    retry: config::RetryPolicy,
    /// Applied to every cluster at `build`, whatever the order of the calls.
    breaker: Option<(u32, Duration)>,
    health: Option<HealthCheck>,
    protocol: config::UpstreamProtocol,
}

impl Builder {
    pub(super) fn new() -> Builder {
        let mut config = crate::cli::Args::base_config();
        config.shards.count = 1;
        Builder {
            config,
            error: None,
            retry: config::RetryPolicy::default(),
            breaker: None,
            health: None,
            protocol: config::UpstreamProtocol::H1,
        }
    }

    fn fail(&mut self, e: String) {
        self.error.get_or_insert(e);
    }

    /// A cluster named `name` of `endpoints` written as in the config file (`HOST:PORT`, with
    /// an optional ` weight=N`), balanced round-robin.
    pub fn cluster(mut self, name: &str, endpoints: &[&str]) -> Builder {
        let mut written = Vec::new();
        for e in endpoints {
            match config::parse_endpoint(e) {
                Ok(w @ Written::Fixed(_)) => written.push(w),
                Ok(Written::Dns(_)) => self.fail(format!(
                    "cluster {name}: endpoint {e:?}: DNS discovery needs the proxy's coordinator"
                )),
                Err(m) => self.fail(format!("cluster {name}: endpoint {e:?}: {m}")),
            }
        }
        self.config.clusters.push(Cluster::written(name, written));
        self
    }

    /// Requests whose path starts with `prefix` (whole segments) go to `cluster`; routes are
    /// tried in the order they were added.
    pub fn route_prefix(mut self, prefix: &str, cluster: &str) -> Builder {
        let Some(i) = self.config.clusters.iter().position(|c| c.name == cluster) else {
            self.fail(format!(
                "route {prefix}: no cluster {cluster:?} (add it first)"
            ));
            return self;
        };
        let mut r = Route::catch_all(i);
        r.name = format!("{prefix} -> {cluster}");
        r.matches.path = if prefix == "/" {
            PathPattern::Any
        } else {
            PathPattern::Prefix(prefix.to_string())
        };
        self.config.routes.push(r);
        self
    }

    /// Connections per endpoint (busy and idle); 0 = unlimited (`pool.max_connections`).
    pub fn max_connections(mut self, n: usize) -> Builder {
        self.config.pool.max_connections = n;
        self
    }

    /// Requests that may wait for a connection at the cap, and for how long
    /// (`pool.queue`, `pool.queue_timeout`); beyond, [`Error::PoolFull`](super::Error::PoolFull).
    pub fn queue(mut self, waiting: usize, wait: Duration) -> Builder {
        self.config.pool.queue = waiting;
        self.config.pool.queue_timeout = wait;
        self
    }

    /// Connect and response-head timeouts (`timeouts.connect`, `timeouts.upstream`).
    pub fn timeouts(mut self, connect: Duration, upstream: Duration) -> Builder {
        self.config.timeouts.connect = connect;
        self.config.timeouts.upstream = upstream;
        self
    }

    /// Every cluster's HTTP version (`protocol`): `h1` (the default) or `h2c` (HTTP/2 with prior
    /// knowledge, multiplexed on few connections per endpoint). `h2` is HTTP/2 over TLS, which
    /// needs a cluster's `tls` settings: write it in a config file ([`Client::from_file`]).
    ///
    /// ```no_run
    /// # #[monoio::main(timer_enabled = true)]
    /// # async fn main() {
    /// let client = shardgate::embed::Client::builder()
    ///     .cluster("grpc", &["127.0.0.1:50051"])
    ///     .protocol("h2c")
    ///     .build()
    ///     .expect("valid settings");
    /// # drop(client);
    /// # }
    /// ```
    pub fn protocol(mut self, protocol: &str) -> Builder {
        let checked = protocol
            .parse::<config::UpstreamProtocol>()
            .and_then(|p| p.check(false).map(|()| p));
        match checked {
            Ok(p) => self.protocol = p,
            Err(m) => self.fail(format!("protocol: {m}")),
        }
        self
    }

    /// Every route's retry policy: extra `attempts`, on the conditions of the file's
    /// `retry.on` (`connect`, `reset`, `timeout`, `502`, `503`, `504`).
    pub fn retries(mut self, attempts: u32, on: &[&str]) -> Builder {
        let list: Vec<String> = on.iter().map(|s| s.to_string()).collect();
        if let Err(m) = self.retry.set_on(&list) {
            self.fail(format!("retries: {m}"));
        }
        self.retry.attempts = attempts;
        self
    }

    /// Every cluster's breaker: `failures` in a row eject an endpoint for `open_for` (doubling
    /// while it keeps failing).
    pub fn breaker(mut self, failures: u32, open_for: Duration) -> Builder {
        self.breaker = Some((failures, open_for));
        self
    }

    /// Every cluster's active health check: `tcp` or `http:/path` (2xx-3xx passes), every
    /// `interval`, run as a task on the client's thread.
    pub fn health_check(mut self, kind: &str, interval: Duration) -> Builder {
        match HealthCheck::parse_kind(kind) {
            Ok(k) => {
                let mut h = HealthCheck::new(k);
                h.interval = interval;
                self.health = Some(h);
            }
            Err(m) => self.fail(format!("health_check: {m}")),
        }
        self
    }

    /// The client, on the current monoio runtime (see [`Client::new`]).
    pub fn build(mut self) -> Result<Client, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.config.routes.is_empty() && !self.config.clusters.is_empty() {
            self.config.routes.push(Route::catch_all(0));
        }
        for r in &mut self.config.routes {
            r.retry = self.retry.clone();
        }
        for c in &mut self.config.clusters {
            if let Some((failures, open_for)) = self.breaker {
                if failures == 0 || open_for.is_zero() {
                    return Err("breaker: failures and open_for must be above 0".into());
                }
                c.breaker.failures = failures;
                c.breaker.open_timeout = open_for;
                c.breaker.max_open_timeout = c.breaker.max_open_timeout.max(open_for);
            }
            c.health.clone_from(&self.health);
            c.protocol = self.protocol;
        }
        Client::start(self.config).map_err(|e| e.to_string())
    }
}
