//! shardgate: a thread-per-core HTTP/1.1 reverse proxy on io_uring.
//!
//! ```text
//!   signals thread ──TERM/INT/HUP/USR1──► coordinator thread ◄──admin calls──► admin thread
//!                          │   ▲           (coordinator/: phase, reload, stats, health relay)
//!   ToShard: Drain | Config | Health | Stats | Listen | Unlisten                        (bus.rs)
//!   ToCoordinator: Ready | Failed | Progress | Drained | Health | ConfigApplied | Stats
//!                          ▼   │
//!   shard-0 (core 0) … shard-N-1 (core N-1)  (shard/) ──full log buffers──► access-log thread
//!     each: monoio runtime · accept loops on SO_REUSEPORT listeners · one task per client
//!     connection · routing table (routes, clusters, pools, breakers, rate-limit buckets) ·
//!     control task (mailbox) · pool sweep · idle reaper · health probes · statistics
//! ```
//!
//! Code that only computes sits at the top level: `config`, `http` (sans-IO HTTP/1.1), and the
//! per-request policy decisions `route`, `balance`, `breaker`, `ratelimit` (with
//! `ratelimit_headers`, its response fields), `retry_budget`, `trusted`, and `hash`, the hash
//! they share (pure, `Cell` state, unit-tested without a runtime); `stats` and `access_log` hold the
//! per-shard halves of metrics and logging. What one pinned core owns is in `shard`; the control
//! thread is `coordinator`; `bus` holds the messages between shards and the coordinator (admin
//! calls, signals and access-log buffers have channels of their own); `sys` holds the libc
//! `unsafe` (the only other is `shard::boxes`, a pool of heap blocks for futures, and the
//! bench-only counting allocators). Shards share nothing mutable: the request path takes no lock and touches no atomic.

#![deny(unsafe_code)]

pub mod access_log;
pub mod balance;
pub mod breaker;
pub mod bus;
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod error;
mod hash;
pub mod http;
pub mod ratelimit;
pub mod ratelimit_headers;
pub mod retry_budget;
pub mod route;
pub mod shard;
pub mod stats;
#[allow(unsafe_code)] // libc calls and the steering BPF program
pub mod sys;
pub mod trusted;
