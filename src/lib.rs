//! shardgate: a thread-per-core HTTP/1.1 reverse proxy on io_uring.
//!
//! ```text
//!   SIGTERM/SIGINT ──► coordinator thread (coordinator/)
//!                          │   ▲
//!         ToShard::Drain   │   │  ToCoordinator: Ready | Failed | Progress | Drained   (bus.rs)
//!                          ▼   │
//!   shard-0 (core 0) … shard-N-1 (core N-1)   (shard/)
//!     each: monoio runtime · SO_REUSEPORT listener · connections · upstream pools · balancer · drain
//! ```
//!
//! Code that only computes sits at the top level (`config`, `http`, `balance`, `error`); what one
//! pinned core owns is in `shard`; the control thread is `coordinator`; `bus` holds the only
//! messages that cross threads; `sys` holds the only `unsafe`. Shards share nothing mutable: the
//! request path takes no lock and touches no atomic.

pub mod balance;
pub mod breaker;
pub mod bus;
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod http;
pub mod ratelimit;
pub mod retry_budget;
pub mod route;
pub mod shard;
pub mod sys;
