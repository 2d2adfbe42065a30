//! The validated configuration every thread reads: built once by the main thread (file, then flags),
//! shared read-only as `Arc<Config>`. Holding a `Config` means it passed validation
//! (`validate.rs`); its numeric knobs (shards, timeouts, pool) are in `tuning.rs`.

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
mod tuning;
mod validate;

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
pub use tuning::{Pool, Shards, Timeouts, UringSetup};
pub use validate::{check, check_admin_token, check_client, check_limits, check_tls};

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

impl Config {
    /// The error for `field` of this config, located at where it was written.
    pub fn invalid(&self, field: &str, message: String) -> Invalid {
        self.origins.invalid(self.source.as_deref(), field, message)
    }
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
