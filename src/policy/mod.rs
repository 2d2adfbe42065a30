//! The per-request policy decisions, pure code a shard calls on its request path: routing
//! (`route`), balancing (`balance`), circuit breaking (`breaker`), rate limits (`ratelimit`, with
//! `ratelimit_headers`, the response fields), retry budgets (`retry_budget`), the trusted-proxy
//! client address (`trusted`), and the hash they share (`hash`). No I/O, no runtime: state is in
//! `Cell`s owned by the shard that calls them, so each is unit-tested on its own.

pub mod balance;
pub mod breaker;
mod hash;
pub mod ratelimit;
pub mod ratelimit_headers;
pub mod retry_budget;
pub mod route;
pub mod trusted;
