//! The numeric knobs of a `Config`: per-shard tuning (`Shards`, `UringSetup`), `Timeouts` and
//! the upstream `Pool`, with their defaults. Plain data: built by the main thread, read by every
//! thread through `Arc<Config>`.

use std::time::Duration;

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
