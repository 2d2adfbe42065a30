//! Command-line flags (clap): their definitions and help text. How they override the config file
//! is in `cli/apply.rs` (and `listen_flags`, `policy_flags`, `http2_flags`). Main thread, once at
//! start.

use std::time::Duration;

use clap::Parser;

use crate::config::parse_duration;

mod apply;
mod flag_fields;
mod http2_flags;
mod listen_flags;
mod policy_flags;

pub use flag_fields::{FlagFields, Given};

/// shardgate: a thread-per-core HTTP/1.1 reverse proxy on io_uring.
///
/// Flags override the config file (policy flags apply to every cluster or route of the file).
/// Durations are written like 3s, 250ms, 2m or 1h. Signals: TERM/INT drain gracefully (a second
/// one exits at once), HUP reloads the config file, USR1 reopens the access log.
#[derive(Parser, Debug, Default)]
#[command(name = "shardgate", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on, as IP:port (repeatable; port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// HTTPS address to listen on, as IP:port (repeatable); serves the --tls-cert/--tls-key pairs
    #[arg(long, value_name = "ADDR")]
    pub listen_tls: Vec<String>,
    /// Certificate chain (PEM, leaf first) for the TLS listeners (repeatable, paired in order with
    /// --tls-key; the first pair is the default, the others are chosen by SNI from their names)
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Vec<String>,
    /// Private key (PEM: PKCS#8, SEC1 or PKCS#1) of the --tls-cert at the same position
    /// (repeatable)
    #[arg(long, value_name = "FILE")]
    pub tls_key: Vec<String>,
    /// Upstream endpoint as HOST:PORT or "HOST:PORT weight=N", dns:HOST:PORT (every A/AAAA
    /// record) or srv:_service._proto.name (repeatable; the `default` cluster)
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Vec<String>,
    /// Speak TLS to the --upstream endpoints (the `default` cluster), verified against the system
    /// trust store (SSL_CERT_FILE / SSL_CERT_DIR honoured); SNI is each endpoint's host name
    #[arg(long)]
    pub upstream_tls: bool,
    /// CA bundle (PEM) the --upstream endpoints' certificates must chain to (implies
    /// --upstream-tls)
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<String>,
    /// HTTP version spoken to the --upstream endpoints: h1, h2 (needs --upstream-tls) or h2c
    /// (prior knowledge over TCP) [default: h1]
    #[arg(long, value_name = "PROTO")]
    pub upstream_protocol: Option<String>,
    /// Expect a PROXY protocol v1/v2 header on every connection to the --listen and --listen-tls
    /// addresses
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Serve HTTP/2 with prior knowledge (h2c) on the plain listeners beside HTTP/1.1: a
    /// connection opening with the HTTP/2 preface speaks HTTP/2, any other HTTP/1.1
    #[arg(long)]
    pub h2c: bool,
    #[command(flatten)]
    pub http2: http2_flags::Http2Flags,
    /// Load balancing: round-robin, weighted, least-request, ewma, random, hash:client-ip,
    /// hash:header:NAME, hash:cookie:NAME [default: round-robin]
    #[arg(long, value_name = "ALGO")]
    pub lb: Option<String>,
    /// Per-client-IP rate limit, like 100/s, 6000/m (429 beyond); each shard holds its share
    /// unless --steer client-ip
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<String>,
    /// Requests a client may burst above the rate [default: one second's worth]
    #[arg(long, value_name = "N")]
    pub rate_burst: Option<u32>,
    /// Share --rate-limit across hosts through this Redis (redis://HOST with an optional :PORT and /DB); sync
    /// every 100ms, fall back to the local limit while Redis is unreachable
    #[arg(long, value_name = "URL")]
    pub rate_limit_redis: Option<String>,
    /// Active health check for every cluster: tcp, http:/path, grpc or grpc:SERVICE
    #[arg(long, value_name = "CHECK")]
    pub health_check: Option<String>,
    /// Interval between health checks of one endpoint [default: 5s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub health_interval: Option<Duration>,
    /// Pin each client address to one shard (SO_REUSEPORT BPF): client-ip or none
    #[arg(long, value_name = "HOW")]
    pub steer: Option<String>,
    /// Trust X-Forwarded-For / PROXY headers from this address or CIDR (repeatable)
    #[arg(long, value_name = "CIDR")]
    pub trusted_proxy: Vec<String>,
    /// Admin listener (metrics, health, drain, reload) as IP:port, or off [default: 127.0.0.1:9901]
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Bearer token every admin request but the status page (GET /) must carry
    #[arg(long, value_name = "TOKEN", conflicts_with = "admin_token_file")]
    pub admin_token: Option<String>,
    /// Like --admin-token, read from FILE (surrounding whitespace dropped; read at start and again
    /// at every reload)
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<String>,
    /// Access log: stdout, a file path, or off [default: off]
    #[arg(long, value_name = "WHERE")]
    pub access_log: Option<String>,
    /// Start a W3C trace (traceparent) for requests that arrive without one
    #[arg(long)]
    pub trace: bool,
    /// Refuse (400) what RFC 9112 only tolerates: bare LF line endings, empty lines before the
    /// request line, request-target bytes outside RFC 3986 or a #fragment
    #[arg(long)]
    pub strict_http: bool,
    /// Header names with `_`: drop (silently), pass, or reject (400) [default: drop]
    #[arg(long, value_name = "drop|pass|reject")]
    pub underscores_in_headers: Option<String>,
    /// TOML config file (see docs/CONTRACT.md); flags override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,
    /// Validate the configuration and exit (0 = valid, 2 = invalid)
    #[arg(long)]
    pub check: bool,
    /// Take over the listening sockets of the shardgate running on --upgrade-socket, serve them,
    /// then let it drain and exit (SIGUSR2 to the running process starts its binary this way)
    #[arg(long, conflicts_with = "check")]
    pub upgrade: bool,
    /// The Unix socket a running shardgate hands its listening sockets over on for an upgrade;
    /// "off": no upgrades [default: /run/shardgate/upgrade.sock]
    #[arg(long, value_name = "PATH")]
    pub upgrade_socket: Option<String>,

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
    /// io_uring completion mode per shard: defer-taskrun (batched, Linux 6.1+), coop-taskrun,
    /// plain, or sqpoll:MS (a kernel polling thread); falls back to plain when refused
    /// [default: defer-taskrun]
    #[arg(long, value_name = "MODE")]
    pub uring_setup: Option<String>,
    /// Listen backlog per shard [default: 1024]
    #[arg(long, value_name = "N")]
    pub backlog: Option<u32>,
    /// Client connections per shard [default: 10000]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Read buffer per connection in bytes = largest request head (431 beyond) [default: 16384]
    #[arg(long, value_name = "BYTES")]
    pub buffer_size: Option<usize>,
    /// Upstream-side buffer per connection in bytes = largest response head (502 beyond) and the
    /// chunk large bodies move in [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pub upstream_buffer_size: Option<usize>,
    /// Response bodies with at least this many bytes left after the head move upstream -> client
    /// with splice (zero-copy, through a pipe), 0 = never [default: 16384]
    #[arg(long, value_name = "BYTES")]
    pub splice_threshold: Option<u64>,
    /// Longest request line in bytes (414 beyond) [default: 8192]
    #[arg(long, value_name = "BYTES")]
    pub max_request_line: Option<usize>,
    /// How long a keep-alive client connection waiting for its next request keeps its buffers
    /// before giving them back (memory per idle connection); 0 = at once, at the cost of one
    /// more io_uring op per request [default: 1s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub idle_buffer_time: Option<Duration>,
    /// Above this many client connections on a shard, idle keep-alive connections give their
    /// buffers back at once (as with --idle-buffer-time 0) [default: 256]
    #[arg(long, value_name = "N")]
    pub lean_above: Option<usize>,

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
    /// Close a tunnel (WebSocket after a 101) when no byte moves either way for this long
    /// [default: 1h]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub tunnel_idle_timeout: Option<Duration>,
    /// During a drain, close open tunnels once in-flight requests have finished, or after this
    /// long at most [default: 5s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub tunnel_drain_grace: Option<Duration>,
    /// During a drain, close keep-alive connections idle since it started once they stayed idle
    /// this long (a request sent meanwhile is answered with Connection: close); 0 = at once
    /// [default: 250ms]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub drain_idle_grace: Option<Duration>,
    /// Close a TLS connection whose handshake has not finished this long after accept
    /// [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub tls_handshake_timeout: Option<Duration>,
    /// Make a new TLS session-ticket key this often (1s to 168h): it seals new tickets, the
    /// previous key still opens, so a session resumes on any shard for one to two periods
    /// [default: 1h]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub tls_ticket_rotation: Option<Duration>,
    /// How often the TLS listeners' certificate, key and client CA files are checked for a
    /// change (mtime, size); a changed file reloads the certificates alone; 0 = never
    /// [default: 5s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub tls_watch_interval: Option<Duration>,

    /// Upgrade protocols forwarded, comma-separated, or none (h2c is refused); a route's
    /// `upgrades` overrides it. Other upgrades are forwarded as plain requests [default: websocket]
    #[arg(long, value_name = "LIST|none")]
    pub upgrades: Option<String>,
    /// Who answers `Expect: 100-continue`: forward (the upstream's 100 or early answer is
    /// relayed) or local (the proxy says 100 at once) [default: forward]
    #[arg(long, value_name = "MODE")]
    pub expect_continue: Option<String>,
}
