//! The protocol-neutral steps of an exchange with a cluster, shared by the proxy's pipeline
//! (forward.rs) and the library's client (shard::embed): pick a usable endpoint (balancer over
//! health and breakers, avoiding the one a retry left), lease a connection within the cluster's
//! limits (an HTTP/1.1 connection, or a stream on an HTTP/2 one), spend a retry under the
//! route's attempts and budget, and account an outcome to the endpoint's statistics and breaker. They report breaker transitions instead of publishing them:
//! the proxy tells the coordinator, a library instance has nobody to tell. Shard thread (or the
//! embedding thread).

use std::time::{Duration, Instant};

use crate::error::UpstreamError;
use crate::policy::balance::Candidates;
use crate::policy::breaker::Transition;
use crate::shard::table::RouteView;
use crate::shard::upstream::cluster::{self, ClusterView, Endpoint};
use crate::shard::upstream::h2pool::{H2Lease, H2Pool};
use crate::shard::upstream::pool::Lease;

/// The balancer's choice, avoiding the endpoint a retry left when another is usable.
pub fn pick(
    cluster: &ClusterView,
    key: &[u8],
    now: Instant,
    avoid: Option<usize>,
) -> Option<usize> {
    let key = (!key.is_empty()).then_some(key);
    let view = cluster::View {
        cluster,
        now,
        avoid,
    };
    cluster.balancer.pick(&view, key, now).or_else(|| {
        let all = cluster::View {
            cluster,
            now,
            avoid: None,
        };
        avoid
            .filter(|_| (0..all.len()).any(|i| all.usable(i)))
            .and_then(|_| cluster.balancer.pick(&all, key, now))
    })
}

/// A pooled connection within the cluster's per-shard limits.
pub async fn acquire<'e>(
    cluster: &ClusterView,
    ep: &'e Endpoint,
    fresh_only: bool,
    check: bool,
    connect: Option<Duration>,
) -> Result<Lease<'e>, UpstreamError> {
    if cluster.max_connections > 0
        && (fresh_only || ep.pool.idle_count() == 0)
        && cluster.open_connections() >= cluster.max_connections
    {
        return Err(UpstreamError::ClusterFull);
    }
    if cluster.pending.get() >= cluster.max_pending {
        return Err(UpstreamError::PendingFull);
    }
    cluster.pending.set(cluster.pending.get() + 1);
    let lease = ep.pool.acquire(fresh_only, check, connect).await;
    cluster.pending.set(cluster.pending.get() - 1);
    lease
}

/// Streams the upstream refused unprocessed that one request sends again (REFUSED_STREAM,
/// above a GOAWAY's last stream id), beyond the route's retries: an upstream that refuses every
/// stream ends the request with an error rather than a loop.
pub const MAX_REFUSED: u32 = 2;

/// A stream on one of the endpoint's HTTP/2 connections (`h2`), within the cluster's pending
/// limit. The endpoint's own cap already includes the cluster's max_connections; a full
/// connection's requests wait in the pool's queue.
pub async fn acquire_h2(
    cluster: &ClusterView,
    h2: &H2Pool,
    connect: Option<Duration>,
) -> Result<H2Lease, UpstreamError> {
    if cluster.pending.get() >= cluster.max_pending {
        return Err(UpstreamError::PendingFull);
    }
    cluster.pending.set(cluster.pending.get() + 1);
    let lease = h2.acquire(connect).await;
    cluster.pending.set(cluster.pending.get() - 1);
    lease
}

/// Spends one retry if the route has attempts left and its budget allows.
pub fn retry(route: &RouteView, left: &mut u32, now: Instant) -> bool {
    if *left == 0 {
        return false;
    }
    let stats = &route.stats;
    if !route.budget.try_retry(now) {
        stats.budget_exhausted.set(stats.budget_exhausted.get() + 1);
        return false;
    }
    *left -= 1;
    stats.retries.set(stats.retries.get() + 1);
    true
}

/// A response came back: statistics, and the breaker learns whether it counts as a failure.
/// Returns the breaker's transition, if any, for the caller to publish.
pub fn account(
    cluster: &ClusterView,
    ep: &Endpoint,
    ticket: u32,
    status: u16,
    rtt: Duration,
    now: Instant,
) -> Option<Transition> {
    let s = &ep.stats;
    s.record(status, rtt);
    let t = if cluster.failure_statuses.contains(&status) {
        s.failures.set(s.failures.get() + 1);
        ep.breaker.on_failure_for(ticket, now)
    } else {
        ep.breaker.on_success_for(ticket, now)
    };
    ep.note(t)
}

/// The endpoint failed (connect error, timeout, reset, malformed response). Returns the
/// breaker's transition, if any, for the caller to publish.
pub fn fail(ep: &Endpoint, ticket: u32) -> Option<Transition> {
    let s = &ep.stats;
    s.failures.set(s.failures.get() + 1);
    let t = ep.breaker.on_failure_for(ticket, Instant::now());
    ep.note(t)
}
