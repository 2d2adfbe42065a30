//! shardgate: a thread-per-core HTTP/1.1 reverse proxy on io_uring, plain or TLS on either side.
//!
//! ```text
//!   signals thread ──TERM/INT/HUP/USR1──► coordinator thread ◄──admin calls──► admin thread
//!                          │   ▲           (coordinator/: phase, reload, stats, health relay)
//!   discovery thread (DNS) ◄──►┤   ├◄──► limits thread (Redis: global rate limits, GCRA)
//!   ToShard: Drain | Config | Health | Stats | Listen | Unlisten | TicketKeys |
//!            GlobalDenials                                                          (bus.rs)
//!   ToCoordinator: Ready | Failed | Progress | Drained | Health | ConfigApplied | Stats |
//!                  Admitted (a global route's counts, once per sync)
//!                          ▼   │
//!   shard-0 (core 0) … shard-N-1 (core N-1)  (shard/) ──full log buffers──► access-log thread
//!     each: monoio runtime · accept loops on SO_REUSEPORT listeners · one task per client
//!     connection · routing table (routes, clusters, pools, breakers, rate-limit buckets) ·
//!     control task (mailbox) · pool sweep · idle reaper · health probes · statistics
//! ```
//!
//! `ls src/` reads as the picture above. Pure code (no I/O, no runtime): `config` (TOML and flags
//! into a validated `Config`), `http` (sans-IO HTTP/1.1), `policy` (the per-request decisions:
//! `route`, `balance`, `breaker`, `ratelimit`, `retry_budget`, `trusted`, with `Cell` state owned
//! by the shard that calls them), `error` (failures by side, each with its status); `stats` and
//! `access_log` hold the per-shard halves of metrics and logging; `tls` reads certificates and
//! builds each shard's rustls config and ticket sealer. What one pinned core owns is in
//! `shard`, its request path in three layers with one-way imports: `shard::downstream` (protocol
//! front-ends: the HTTP/1.1 connection, tunnels) → `shard::pipeline` (one request, protocol-neutral,
//! driven through its `Downstream` trait) → `shard::upstream` (clusters, pools, the HTTP/1.1
//! client side, splice). The control thread is `coordinator`; the side threads that talk to
//! outside systems (the discovery thread, the limits thread) are in `external`, owned by the
//! coordinator or by a library client; `bus` holds the messages between
//! shards and the coordinator (admin calls, signals and access-log buffers have channels of their
//! own); `sys` holds the libc `unsafe` (the others: `shard::boxes`, a pool of heap blocks for
//! futures; `shard::tls_stream`, which reads and writes monoio's rent buffers by pointer; the
//! bench-only counting allocators and a test-only stream double). Shards
//! share nothing mutable: the request path takes no lock and touches no atomic.
//!
//! # Library mode
//!
//! The documented API is [`embed`] (also at the crate root: [`Client`], [`Body`], [`Error`]…):
//! the router, pools, balancing, health, breakers, retries and rate limits above, embedded in a
//! monoio program, one [`Client`] per thread like one shard, sending straight to the upstreams;
//! a client whose config has DNS names or global rate limits owns its own discovery and limits
//! threads, as the coordinator does for the proxy.
//! Every other module is the proxy's own: it stays `pub` for the binary (src/main.rs) and the
//! tests, but is `#[doc(hidden)]` and not a stable API.

#![deny(unsafe_code)]
#![warn(missing_docs)]

#[doc(hidden)]
pub mod access_log;
#[doc(hidden)]
pub mod bus;
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod coordinator;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod external;
#[doc(hidden)]
pub mod http;
#[doc(hidden)]
pub mod policy;
#[doc(hidden)]
pub mod shard;
#[doc(hidden)]
pub mod stats;
#[doc(hidden)]
#[allow(unsafe_code)] // libc calls and the steering BPF program
pub mod sys;
#[doc(hidden)]
pub mod tls;
#[doc(hidden)]
pub mod upgrade;

pub use shard::embed;
pub use shard::embed::{Body, BodySender, Client, Error, Request, Response, ResponseBody};
