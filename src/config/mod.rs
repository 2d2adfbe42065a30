//! The validated configuration every thread reads: built once by the main thread (file, then flags),
//! shared read-only as `Arc<Config>`. Holding a `Config` means it passed validation.

mod admin;
mod cluster;
pub mod discovery;
mod duration;
mod file;
mod global_limit;
mod http2;
mod key_path;
mod log_target;
mod origin;
mod protocols;
mod render;
mod route;
mod startup;

pub use crate::tls::settings::{
    check_alpn, default_alpn, CertPaths, ClientAuth, ListenerTls, UpstreamTls,
};
pub use admin::{exposure_warning as admin_exposure_warning, parse_token_file};
pub use cluster::{
    parse_endpoint, resolve, Cluster, Endpoint, HealthCheck, ProbeKind, UpstreamProtocol, Written,
};
pub use discovery::{Discover, DnsName};
pub use duration::parse as parse_duration;
pub use file::{load, parse, ConfigError};
pub use global_limit::{GlobalLimit, OnError, RedisUrl, Scope, DEFAULT_SYNC};
pub use http2::Http2;
pub use log_target::AccessLogTarget;
pub use origin::{Invalid, Origin, Origins};
pub use protocols::{default_upgrades, parse_upgrades, parse_upgrades_flag, ExpectMode};
pub use render::render;
pub use route::{Direct, HeaderEdits, RateKey, RateLimit, RetryPolicy, Route, RouteTimeouts};

use std::net::SocketAddr;
use std::time::Duration;

/// Everything shardgate needs to run; see docs/CONTRACT.md for the file format.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses each shard binds with SO_REUSEPORT.
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    /// First match wins; never empty once validated (a catch-all to cluster 0 when none is written).
    pub routes: Vec<Route>,
    pub shards: Shards,
    pub timeouts: Timeouts,
    pub pool: Pool,
    /// Downstream HTTP/2 limits (`[http2]`).
    pub http2: Http2,
    /// Peers whose X-Forwarded-For / PROXY header is believed for the client address.
    pub trusted_proxies: Vec<crate::policy::trusted::Cidr>,
    /// Pin each client address to one shard with a SO_REUSEPORT BPF program.
    pub steer_client_ip: bool,
    /// The admin listener (metrics, health, drain, reload); `None` = off.
    pub admin: Option<SocketAddr>,
    /// `--admin-token`, or the content of `admin_token_file`: every admin request but the page
    /// needs it. Never printed (`Token`'s `Debug` is redacted, `/config` shows the file only).
    pub admin_token: Option<crate::coordinator::admin::Token>,
    /// `admin_token_file` / `--admin-token-file`: read into `admin_token` by `check`, so again at
    /// every reload (a rotated token takes effect; a broken file fails the reload).
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Where access-log lines go (`off`, `stdout` or a file path).
    pub access_log: AccessLogTarget,
    /// Start a W3C trace (traceparent) for requests that carry none.
    pub trace_start: bool,
    /// `Upgrade` protocols forwarded (lower-case; never `h2c`); a route's own list overrides it.
    pub upgrades: Vec<String>,
    /// Who answers `Expect: 100-continue`; a route's own setting overrides it.
    pub expect_continue: ExpectMode,
    /// Underscored header names (`underscores_in_headers`) and `strict_http`; reloadable.
    pub head_rules: crate::http::HeadRules,
    /// How often the coordinator looks at every TLS listener's certificate, key and client CA
    /// files (mtime and size) and reloads the certificates alone when one changed; zero = never.
    pub tls_watch_interval: Duration,
    /// How often the coordinator makes a new session-ticket key: it seals new tickets, the one
    /// before still opens (a ticket resumes for one to two periods; its lifetime hint is two).
    /// 1s to 168h (7 days); reloadable.
    pub tls_ticket_rotation: Duration,
    /// The Unix socket this process hands its listening sockets over on for a binary upgrade
    /// (`upgrade_socket`, `--upgrade-socket`; `None` = `"off"`, no upgrades). Fixed at start.
    pub upgrade_socket: Option<std::path::PathBuf>,
    /// DNS servers the discovery thread asks (`resolvers`); empty = /etc/resolv.conf's.
    pub resolvers: Vec<SocketAddr>,
    /// The file this came from, for reloads (`None` = flags only).
    pub source: Option<String>,
    /// Where each setting was written (flag or file:line:col), for errors found after merging.
    pub origins: Origins,
}

/// One listening address and what it expects first on each connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub addr: SocketAddr,
    /// Each connection starts with a PROXY protocol v1/v2 header (from a trusted load balancer).
    pub proxy_protocol: bool,
    /// Terminate TLS on this address (HTTPS); `None` = plain HTTP.
    pub tls: Option<ListenerTls>,
    /// Plain listeners only: a connection that opens with the HTTP/2 preface speaks h2c (prior
    /// knowledge); any other is HTTP/1.1 as usual.
    pub h2c: bool,
    /// The address this process listens on for it (`addr` with its port resolved), set by the
    /// coordinator once the socket is bound; `None` in a config just read. Not configurable.
    pub bound: Option<SocketAddr>,
}

impl Listener {
    /// The address the listener is bound to (the written one until it is).
    pub fn bound_addr(&self) -> SocketAddr {
        self.bound.unwrap_or(self.addr)
    }
}

/// io_uring setup flags of each shard's ring. Each falls back to `Plain` on a kernel that
/// refuses it (the shard's startup line says which one runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UringSetup {
    /// No flags: completion work may interrupt the shard at any time (kernel default).
    Plain,
    /// `COOP_TASKRUN | TASKRUN_FLAG`: completion work waits for the shard's next ring entry.
    CoopTaskrun,
    /// `SINGLE_ISSUER | DEFER_TASKRUN`: completion work runs only when the shard waits for
    /// completions, batched (Linux 6.1+).
    DeferTaskrun,
    /// `SQPOLL` with this idle time in milliseconds: a kernel thread polls the submission queue
    /// (costs a core's share; worth it only with spare cores).
    Sqpoll(u32),
}

impl UringSetup {
    pub const HELP: &'static str = "defer-taskrun, coop-taskrun, plain or sqpoll:MS";

    pub fn parse(s: &str) -> Option<UringSetup> {
        Some(match s {
            "plain" => UringSetup::Plain,
            "coop-taskrun" => UringSetup::CoopTaskrun,
            "defer-taskrun" => UringSetup::DeferTaskrun,
            _ => {
                let ms = s.strip_prefix("sqpoll:")?.parse().ok()?;
                UringSetup::Sqpoll(ms)
            }
        })
    }
}

impl std::fmt::Display for UringSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UringSetup::Plain => f.write_str("plain"),
            UringSetup::CoopTaskrun => f.write_str("coop-taskrun"),
            UringSetup::DeferTaskrun => f.write_str("defer-taskrun"),
            UringSetup::Sqpoll(ms) => write!(f, "sqpoll:{ms}"),
        }
    }
}

/// Per-core tuning: how many shards, where they run, and what each may hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Shards {
    pub count: usize,
    /// Cores the shards are pinned to, in order; shard i runs on `cpus[i % cpus.len()]`.
    pub cpus: Vec<usize>,
    pub pin: bool,
    pub uring_entries: u32,
    /// How each shard's io_uring runs completion work (see `UringSetup`).
    pub uring_setup: UringSetup,
    pub backlog: u32,
    /// Downstream connections one shard holds at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Per-connection read buffer: also the largest request or response head (431 / 502 beyond).
    pub buffer_size: usize,
    /// Per-connection buffer for the upstream side: the largest response head (502 beyond) and
    /// the chunk a response body moves in (bigger moves large bodies in fewer reads and writes).
    pub upstream_buffer_size: usize,
    /// A response body with at least this many bytes left after its head moves upstream socket
    /// -> pipe -> client socket with splice(2), never through user space; 0 = never.
    pub splice_threshold: u64,
    /// Longest request line (414 beyond).
    pub max_request_line: usize,
    /// How long a keep-alive connection waiting for its next request keeps its buffers; after
    /// that it gives them back and waits for readiness alone (zero: at once, one more io_uring op
    /// per request).
    pub idle_buffer_time: Duration,
    /// Above this many client connections on a shard, a connection gives its buffers back as
    /// soon as it has no request to serve (as if `idle_buffer_time` were zero).
    pub lean_above: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// Upstream TCP connect (504 when it passes).
    pub connect: Duration,
    /// From a request's first byte to the end of its head (408 when it passes).
    pub header: Duration,
    /// From the request sent upstream to the response head received (504 when it passes).
    pub upstream: Duration,
    /// A client keep-alive connection waiting for its next request (closed silently).
    pub idle: Duration,
    /// No body byte moving in either direction for this long aborts the exchange.
    pub body: Duration,
    /// How long a drain may take before the process exits 1.
    pub drain: Duration,
    /// A tunnel (after a 101) with no byte moving either way for this long is closed.
    pub tunnel_idle: Duration,
    /// A drain closes open tunnels once in-flight requests have finished, or after this long.
    pub tunnel_drain_grace: Duration,
    /// A drain closes the keep-alive connections that were idle when it started and stayed idle
    /// this long; one whose client sends a request meanwhile gets it answered (with
    /// `Connection: close`), so a busy keep-alive client never meets a close it must retry.
    pub drain_idle_grace: Duration,
    /// From a TLS connection's accept to the end of its handshake (closed when it passes).
    pub tls_handshake: Duration,
}

/// Upstream keep-alive pools, one per endpoint per shard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pool {
    /// Idle connections kept per endpoint per shard.
    pub max_idle: usize,
    /// An idle connection older than this is closed rather than reused.
    pub idle_timeout: Duration,
    /// Connections (busy + idle) per endpoint per shard; 0 = unlimited.
    pub max_connections: usize,
    /// Requests that may wait for a connection when all are busy (503 beyond).
    pub queue: usize,
    /// How long a request waits for a connection (503 when it passes).
    pub queue_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            header: Duration::from_secs(10),
            upstream: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            body: Duration::from_secs(30),
            drain: Duration::from_secs(30),
            tunnel_idle: Duration::from_secs(3600),
            tunnel_drain_grace: Duration::from_secs(5),
            drain_idle_grace: Duration::from_millis(250),
            tls_handshake: Duration::from_secs(10),
        }
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            max_idle: 64,
            idle_timeout: Duration::from_secs(60),
            max_connections: 0,
            queue: 128,
            queue_timeout: Duration::from_secs(3),
        }
    }
}

impl Shards {
    /// Defaults for this process: one shard per CPU it may run on (taskset / cgroup aware).
    pub fn for_this_process() -> Self {
        let cpus = crate::sys::allowed_cpus();
        Shards {
            count: cpus.len().max(1),
            cpus,
            pin: true,
            uring_entries: 1024,
            uring_setup: UringSetup::DeferTaskrun,
            backlog: 1024,
            max_connections: 10_000,
            buffer_size: 16 * 1024,
            upstream_buffer_size: 64 * 1024,
            splice_threshold: 16 * 1024,
            max_request_line: 8 * 1024,
            idle_buffer_time: Duration::from_secs(1),
            lean_above: 256,
        }
    }

    /// The core shard `id` is pinned to, if pinning is on.
    pub fn core_of(&self, id: usize) -> Option<usize> {
        (self.pin && !self.cpus.is_empty()).then(|| self.cpus[id % self.cpus.len()])
    }
}

/// Everything that can be known about a merged config (file + flags) without binding: the
/// limits, then the start-up checks (addresses, access log, privileged ports). `--check`, start
/// and reload all pass through here; the error names the flag or file:line:col of the value.
pub fn check(c: &mut Config) -> Result<(), Invalid> {
    check_limits(c).map_err(|(field, msg)| c.invalid(field, msg))?;
    startup::check(c).map_err(|(field, msg)| c.invalid(&field, msg))?;
    check_admin_token(c)
}

/// The admin token part of `check` alone: reads `admin_token_file` again (when set) into
/// `admin_token`; on an error `c` is unchanged. The coordinator runs it on SIGHUP or
/// `POST /reload` without a config file.
pub fn check_admin_token(c: &mut Config) -> Result<(), Invalid> {
    admin::read_token(c).map_err(|(field, msg)| c.invalid(&field, msg))
}

/// The TLS part of `check` alone: reads every TLS listener's certificate, key and client CA
/// files again into its `material` (expiry warnings on stderr as at start). The coordinator runs
/// it on the running config when a watched file changed, or on SIGHUP without a config file.
pub fn check_tls(c: &mut Config) -> Result<(), Invalid> {
    startup::tls_material(c).map_err(|(field, msg)| c.invalid(&field, msg))
}

impl Config {
    /// The error for `field` of this config, located at where it was written.
    pub fn invalid(&self, field: &str, message: String) -> Invalid {
        self.origins.invalid(self.source.as_deref(), field, message)
    }
}

/// What a library client (shard::embed) needs of a config: the limits but the listeners (it
/// has none), and each TLS cluster's certificates loaded.
pub fn check_client(c: &mut Config) -> Result<(), Invalid> {
    check_shared_limits(c).map_err(|(field, msg)| c.invalid(field, msg))?;
    startup::upstream_material(c).map_err(|(field, msg)| c.invalid(&field, msg))
}

/// Limits checked on every source of settings (file and flags); each names the field it checks.
pub fn check_limits(c: &Config) -> Result<(), (&'static str, String)> {
    if c.listeners.is_empty() {
        return Err((
            "listen",
            "at least one listen address is required (--listen, or `listen` in the file)".into(),
        ));
    }
    check_shared_limits(c)
}

/// The limits a proxy and a library client share (all but the listeners being required).
fn check_shared_limits(c: &Config) -> Result<(), (&'static str, String)> {
    let s = &c.shards;
    if c.clusters.is_empty()
        || (c.clusters.iter()).any(|cl| cl.endpoints.is_empty() && cl.discover.is_empty())
    {
        return Err((
            "upstreams",
            "at least one upstream is required (--upstream, `upstreams`, or `[[clusters]]` endpoints in the file)".into(),
        ));
    }
    if !(1..=1024).contains(&s.count) {
        return Err((
            "shards.count",
            format!("{} is out of range 1..=1024", s.count),
        ));
    }
    let allowed = crate::sys::allowed_cpus();
    if let Some(bad) = s.cpus.iter().find(|c| !allowed.contains(c)) {
        return Err((
            "shards.cpus",
            format!("cpu {bad} is not one this process may run on (allowed: {allowed:?})"),
        ));
    }
    if s.pin && s.cpus.is_empty() {
        return Err(("shards.cpus", "no cpu to pin to".into()));
    }
    if !(2..=32768).contains(&s.uring_entries) {
        return Err((
            "shards.uring_entries",
            format!("{} is out of range 2..=32768", s.uring_entries),
        ));
    }
    if !(1..=65535).contains(&s.backlog) {
        return Err((
            "shards.backlog",
            format!("{} is out of range 1..=65535", s.backlog),
        ));
    }
    let rotation = c.tls_ticket_rotation;
    if rotation < Duration::from_secs(1) || rotation > crate::tls::MAX_TICKET_LIFETIME {
        return Err((
            "tls_ticket_rotation",
            format!(
                "{} is out of range 1s..=168h (7 days: the longest ticket lifetime TLS 1.3 allows)",
                format_args!("{}ms", rotation.as_millis())
            ),
        ));
    }
    if c.timeouts.tunnel_idle.is_zero() {
        return Err(("timeouts.tunnel_idle", "must be greater than 0".into()));
    }
    if s.max_connections == 0 {
        return Err(("shards.max_connections", "must be at least 1".into()));
    }
    if c.listeners.iter().any(|l| l.h2c && l.tls.is_some()) {
        return Err((
            "listeners.h2c",
            "h2c is HTTP/2 over plain TCP: a TLS listener cannot take it (HTTP/2 over TLS is \
             negotiated by ALPN)"
                .into(),
        ));
    }
    c.http2.check()?;
    if !(1024..=1 << 20).contains(&s.buffer_size) {
        return Err((
            "shards.buffer_size",
            format!("{} is out of range 1024..=1048576", s.buffer_size),
        ));
    }
    if !(1024..=1 << 20).contains(&s.upstream_buffer_size) {
        return Err((
            "shards.upstream_buffer_size",
            format!("{} is out of range 1024..=1048576", s.upstream_buffer_size),
        ));
    }
    if s.max_request_line < 64 || s.max_request_line > s.buffer_size {
        return Err((
            "shards.max_request_line",
            format!(
                "{} must be between 64 and buffer_size ({})",
                s.max_request_line, s.buffer_size
            ),
        ));
    }
    let t = &c.timeouts;
    for (field, d) in [
        ("timeouts.connect", t.connect),
        ("timeouts.header", t.header),
        ("timeouts.upstream", t.upstream),
        ("timeouts.idle", t.idle),
        ("timeouts.body", t.body),
        ("timeouts.tls_handshake", t.tls_handshake),
        ("pool.queue_timeout", c.pool.queue_timeout),
    ] {
        if d.is_zero() {
            return Err((field, "must be greater than 0".into()));
        }
    }
    Ok(())
}

/// How often TLS files are looked at unless configured otherwise.
pub const DEFAULT_TLS_WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// How often session-ticket keys rotate unless configured otherwise.
pub const DEFAULT_TLS_TICKET_ROTATION: Duration = Duration::from_secs(3600);

/// The admin listener unless configured otherwise (loopback only).
pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9901);

/// `off`, or an IP:port for the admin listener.
pub fn parse_admin(text: &str) -> Result<Option<SocketAddr>, String> {
    if text == "off" {
        return Ok(None);
    }
    parse_listen(text).map(Some)
}

/// Where upgrades are offered when neither the file nor a flag says.
pub const DEFAULT_UPGRADE_SOCKET: &str = "/run/shardgate/upgrade.sock";

/// Parses `upgrade_socket` / `--upgrade-socket`: an absolute or relative path, or `off`.
pub fn parse_upgrade_socket(text: &str) -> Result<Option<std::path::PathBuf>, String> {
    match text {
        "off" => Ok(None),
        "" => Err("an empty path: give a socket path or \"off\"".into()),
        p if p.len() > 100 => Err(format!(
            "{p:?} is {} bytes long: a Unix socket path holds at most 100 here \
             (107 less the \".new-PID\" suffix of the one being bound)",
            p.len()
        )),
        p => Ok(Some(p.into())),
    }
}

/// Parses a `resolvers` entry: `IP:PORT`, or an IP (port 53).
pub fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse().map_err(|_| {
        format!("{text:?} is not a DNS server address (IP or IP:PORT, like 127.0.0.1:5353)")
    })
}

/// Parses a listen address (`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:0`).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP:port address (like 0.0.0.0:8080)"))
}
