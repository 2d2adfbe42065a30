//! Command-line flags (clap) and how they override the config file. Main thread, once at start.

use std::time::Duration;

use clap::Parser;

use crate::config::{self, parse_duration, Config, Pool, Shards, Timeouts};

/// shardgate: a thread-per-core HTTP/1.1 reverse proxy on io_uring.
///
/// Flags override the config file. Durations are written like 3s, 250ms, 2m or 1h.
/// Signals: TERM/INT drain gracefully (a second one exits at once).
#[derive(Parser, Debug, Default)]
#[command(name = "shardgate", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on, as IP:port (repeatable; port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Upstream endpoint as HOST:PORT (repeatable; balanced round-robin)
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Vec<String>,
    /// TOML config file (see docs/CONTRACT.md); flags override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,
    /// Validate the configuration and exit (0 = valid, 2 = invalid)
    #[arg(long)]
    pub check: bool,

    /// Number of shards (threads, one per core) [default: CPUs this process may use]
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Cores to pin shards to, e.g. 0,2,4 [default: the process affinity mask]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub cpus: Option<Vec<usize>>,
    /// Do not pin shards to cores
    #[arg(long)]
    pub no_pin: bool,
    /// io_uring submission queue entries per shard [default: 1024]
    #[arg(long, value_name = "N")]
    pub uring_entries: Option<u32>,
    /// Listen backlog per shard [default: 1024]
    #[arg(long, value_name = "N")]
    pub backlog: Option<u32>,
    /// Client connections per shard [default: 10000]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Read buffer per connection in bytes = largest request head (431 beyond) [default: 16384]
    #[arg(long, value_name = "BYTES")]
    pub buffer_size: Option<usize>,
    /// Longest request line in bytes (414 beyond) [default: 8192]
    #[arg(long, value_name = "BYTES")]
    pub max_request_line: Option<usize>,

    /// Idle keep-alive connections kept per upstream endpoint per shard [default: 64]
    #[arg(long, value_name = "N")]
    pub pool_max_idle: Option<usize>,
    /// Close idle upstream connections after this long [default: 60s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub pool_idle_timeout: Option<Duration>,
    /// Connections per upstream endpoint per shard, 0 = unlimited [default: 0]
    #[arg(long, value_name = "N")]
    pub max_upstream_connections: Option<usize>,
    /// Requests that may wait when an endpoint's connections are all busy (503 beyond) [default: 128]
    #[arg(long, value_name = "N")]
    pub upstream_queue: Option<usize>,
    /// How long a queued request waits for an upstream connection (503 after) [default: 3s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub upstream_queue_timeout: Option<Duration>,

    /// Upstream connect timeout (504 after; refused = 502) [default: 3s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Time to receive a request head once it started (408 after) [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub header_timeout: Option<Duration>,
    /// Time for the upstream to send its response head (504 after) [default: 60s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub upstream_timeout: Option<Duration>,
    /// Close client keep-alive connections idle this long [default: 60s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Abort an exchange when no body byte moves for this long [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub body_timeout: Option<Duration>,
    /// Longest graceful drain; exit 1 when it passes [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,
}

impl Args {
    /// Starting point when no config file is given: defaults for this machine, nothing to proxy.
    pub fn base_config() -> Config {
        Config {
            listen: Vec::new(),
            upstreams: Vec::new(),
            shards: Shards::for_this_process(),
            timeouts: Timeouts::default(),
            pool: Pool::default(),
        }
    }

    /// Applies every flag that was given on top of `cfg`. Errors name the flag.
    pub fn apply(&self, cfg: &mut Config) -> Result<(), String> {
        if !self.listen.is_empty() {
            cfg.listen = self
                .listen
                .iter()
                .map(|l| config::parse_listen(l).map_err(|e| format!("--listen: {e}")))
                .collect::<Result<_, _>>()?;
        }
        if !self.upstream.is_empty() {
            cfg.upstreams = self
                .upstream
                .iter()
                .map(|u| config::resolve_upstream(u).map_err(|e| format!("--upstream: {e}")))
                .collect::<Result<_, _>>()?;
        }
        let s = &mut cfg.shards;
        if let Some(cpus) = &self.cpus {
            s.cpus = cpus.clone();
            if self.shards.is_none() {
                s.count = cpus.len();
            }
        }
        set(&mut s.count, self.shards);
        if self.no_pin {
            s.pin = false;
        }
        set(&mut s.uring_entries, self.uring_entries);
        set(&mut s.backlog, self.backlog);
        set(&mut s.max_connections, self.max_connections);
        set(&mut s.buffer_size, self.buffer_size);
        set(&mut s.max_request_line, self.max_request_line);
        let p = &mut cfg.pool;
        set(&mut p.max_idle, self.pool_max_idle);
        set(&mut p.idle_timeout, self.pool_idle_timeout);
        set(&mut p.max_connections, self.max_upstream_connections);
        set(&mut p.queue, self.upstream_queue);
        set(&mut p.queue_timeout, self.upstream_queue_timeout);
        let t = &mut cfg.timeouts;
        set(&mut t.connect, self.connect_timeout);
        set(&mut t.header, self.header_timeout);
        set(&mut t.upstream, self.upstream_timeout);
        set(&mut t.idle, self.idle_timeout);
        set(&mut t.body, self.body_timeout);
        set(&mut t.drain, self.drain_timeout);
        Ok(())
    }
}

fn set<T>(slot: &mut T, flag: Option<T>) {
    if let Some(v) = flag {
        *slot = v;
    }
}
