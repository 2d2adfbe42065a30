//! One library request against one cluster, on the caller's task: the proxy's exchange loop
//! (pipeline/choose.rs: pick over health and breakers, lease within the caps and the bounded
//! wait, account, retry under the route's policy and budget) around the library's HTTP/1.1
//! attempt (wire.rs) or, for an HTTP/2 cluster, its attempt on a stream (h2.rs), with the
//! proxy's rule for streams the upstream refused unprocessed (sent again, whatever the method,
//! up to `MAX_REFUSED` times beyond the retries). The response head is returned; its body keeps
//! the connection or stream (response.rs, h2body.rs). Embedding thread.

use std::time::{Duration, Instant};

use http::request::Parts;
use http::Method;

use super::body::{self, Body, Kind};
use super::h2body::H2Body;
use super::reply::{Limits, Reply};
use super::response::ResponseBody;
use super::wire;
use super::{h2, head};
use super::{Error, Inner, Response};
use crate::config::{RetryPolicy, Route};
use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::shard::pipeline::choose::{
    account, acquire, acquire_h2, fail, pick, retry, MAX_REFUSED,
};
use crate::shard::table::{RouteView, Table};
use crate::shard::upstream::cluster::{ClusterView, Endpoint};
use crate::shard::upstream::h2pool::H2Lease;
use crate::shard::upstream::pool::Lease;
use crate::shard::upstream::stream::UpStream;

/// What a request holds of an endpoint for one attempt: an HTTP/1.1 connection, or a stream's
/// place on an HTTP/2 connection.
enum Leased<'e> {
    H1(Lease<'e>),
    H2(H2Lease),
}

/// What one exchange reads of the table: the cluster, and the route whose policy applies
/// (`None`: `send_to` a cluster no route forwards to: no retries, the global `[timeouts]`).
pub struct Target<'t> {
    pub table: &'t Table,
    pub cluster: &'t ClusterView,
    pub route: Option<(&'t RouteView, &'t Route)>,
    /// The balancer's hash key (empty: none).
    pub key: &'t [u8],
}

/// Sends `parts` and `body` to the target's cluster; the response head, or why none came.
pub async fn exchange(
    inner: &Inner,
    t: &Target<'_>,
    parts: &Parts,
    body: Body,
) -> Result<Response, Error> {
    let r = run(inner, t, parts, &body).await;
    if let Kind::Stream { channel, .. } = body.kind() {
        body::close(channel);
    }
    r
}

async fn run(inner: &Inner, t: &Target<'_>, parts: &Parts, body: &Body) -> Result<Response, Error> {
    let no_retries = RetryPolicy {
        attempts: 0,
        ..RetryPolicy::default()
    };
    let (policy, limits) = match t.route {
        Some((_, cfg)) => (&cfg.retry, limits_of(t.table, Some(cfg))),
        None => (&no_retries, limits_of(t.table, None)),
    };
    let replayable = is_idempotent(&parts.method) && !matches!(body.kind(), Kind::Stream { .. });
    let start = Instant::now();
    if let Some((view, _)) = t.route {
        view.budget.on_request(start);
    }
    let mut first = Some(start);
    let mut retries_left = if replayable { policy.attempts } else { 0 };
    let mut avoid = None;
    let mut fresh_only = false;
    let mut refusals = 0;
    let te_trailers = h2::wants_trailers(&parts.headers);
    let cluster = t.cluster;
    let head_request = parts.method == Method::HEAD;
    let mut kit = inner.kits.take();
    loop {
        let now = first.take().unwrap_or_else(Instant::now);
        let i = pick(cluster, t.key, now, avoid).ok_or(Error::NoHealthyEndpoint)?;
        let ep = &cluster.endpoints[i];
        let (admitted, tr) = ep.breaker.admit(now);
        ep.note(tr);
        if !admitted {
            return Err(Error::NoHealthyEndpoint);
        }
        let ticket = ep.breaker.ticket();
        let lease = lease(cluster, ep, fresh_only, !replayable, limits.connect).await;
        let mut lease = match lease {
            Ok(l) => l,
            Err(e) => {
                if e.is_endpoint_fault() {
                    fail(ep, ticket);
                } else {
                    ep.breaker.on_abandoned_for(ticket);
                }
                let again = policy.on_connect && e.is_endpoint_fault();
                if again && spend(t, &mut retries_left, now) {
                    avoid = Some(i);
                    continue;
                }
                inner.kits.put(kit);
                return Err(e.into());
            }
        };
        let reused = match &lease {
            Leased::H1(l) => l.reused,
            Leased::H2(l) => l.reused,
        };
        head::write(
            &mut kit.head,
            parts,
            body,
            t.route.map(|(_, r)| r),
            &ep.name,
        );
        ep.in_flight.set(ep.in_flight.get() + 1);
        let left = &mut retries_left;
        let grant = |status| policy.on_status.contains(&status) && spend(t, left, Instant::now());
        let sent_at = Instant::now();
        let kind = body.kind();
        let result = match &mut lease {
            Leased::H1(l) => match l.stream() {
                UpStream::Plain(s) => {
                    wire::attempt(s, &mut kit, kind, head_request, limits, grant).await
                }
                UpStream::Tls { stream, .. } => {
                    wire::attempt(&mut **stream, &mut kit, kind, head_request, limits, grant).await
                }
            },
            Leased::H2(l) => h2::attempt(l, &kit.head, te_trailers, kind, limits, grant).await,
        };
        // One clock read for the round trip, the accounting and the route's latency.
        let done = Instant::now();
        let rtt = done.saturating_duration_since(sent_at);
        match result {
            Ok(Reply::Head(answer)) => {
                ep.ewma.observe(rtt, done);
                account(cluster, ep, ticket, answer.status.as_u16(), rtt, done);
                if let Some((view, _)) = t.route {
                    view.stats.record(answer.status.as_u16(), done - start);
                }
                let Leased::H1(lease) = lease else {
                    return Err(mismatched(inner, ep, kit));
                };
                let mut resp = Response::new(ResponseBody::held(
                    ep.clone(),
                    lease.unbind(),
                    kit,
                    inner.kits.clone(),
                    answer.framing,
                    answer.reusable,
                    limits.body,
                ));
                *resp.status_mut() = answer.status;
                *resp.headers_mut() = answer.headers;
                return Ok(resp);
            }
            Ok(Reply::H2(mut answer)) => {
                ep.ewma.observe(rtt, done);
                let status = answer.status;
                account(cluster, ep, ticket, status.as_u16(), rtt, done);
                if let Some((view, _)) = t.route {
                    view.stats.record(status.as_u16(), done - start);
                }
                let Leased::H2(lease) = lease else {
                    return Err(mismatched(inner, ep, kit));
                };
                inner.kits.put(kit);
                let headers = std::mem::take(&mut answer.headers);
                let body = H2Body::new(ep.clone(), lease, answer, limits.body);
                let mut resp = Response::new(ResponseBody::h2(body));
                *resp.status_mut() = status;
                *resp.headers_mut() = headers;
                return Ok(resp);
            }
            Ok(Reply::Retried(status)) => {
                ep.in_flight.set(ep.in_flight.get() - 1);
                account(cluster, ep, ticket, status, rtt, done);
                drop(lease);
                avoid = Some(i);
            }
            // The HTTP/2 upstream did not process the stream: sent again (on another
            // connection when this one is going away), whatever the method.
            Err(f)
                if f.retryable
                    && f.error == ProxyError::Upstream(UpstreamError::Refused)
                    && refusals < MAX_REFUSED =>
            {
                ep.in_flight.set(ep.in_flight.get() - 1);
                ep.breaker.on_abandoned_for(ticket);
                refusals += 1;
            }
            Err(f) if f.retryable && reused && !fresh_only && replayable => {
                ep.in_flight.set(ep.in_flight.get() - 1);
                ep.breaker.on_abandoned_for(ticket);
                fresh_only = true;
            }
            Err(f) => {
                ep.in_flight.set(ep.in_flight.get() - 1);
                let upstream_fault =
                    matches!(f.error, ProxyError::Upstream(e) if e != UpstreamError::Refused);
                if upstream_fault {
                    fail(ep, ticket);
                } else {
                    ep.breaker.on_abandoned_for(ticket);
                }
                let again = match f.error {
                    ProxyError::Upstream(UpstreamError::ResponseTimeout) => policy.on_timeout,
                    ProxyError::Upstream(UpstreamError::Closed | UpstreamError::Io(_)) => {
                        policy.on_reset
                    }
                    _ => false,
                };
                if again && spend(t, &mut retries_left, now) {
                    avoid = Some(i);
                    fresh_only = false;
                    continue;
                }
                inner.kits.put(kit);
                return Err(match f.error {
                    ProxyError::Upstream(e) => e.into(),
                    ProxyError::Client(ClientError::TooLarge) => Error::TooLarge,
                    ProxyError::Client(_) => Error::RequestBody,
                });
            }
        }
    }
}

/// A pooled connection within the cluster's limits (HTTP/1.1) or a stream on one (HTTP/2).
async fn lease<'e>(
    cluster: &ClusterView,
    ep: &'e Endpoint,
    fresh_only: bool,
    check: bool,
    connect: Option<Duration>,
) -> Result<Leased<'e>, UpstreamError> {
    match &ep.h2 {
        None => acquire(cluster, ep, fresh_only, check, connect)
            .await
            .map(Leased::H1),
        Some(h2) => acquire_h2(cluster, h2, connect).await.map(Leased::H2),
    }
}

/// An attempt answered in the other protocol than its lease (cannot happen: each lease kind
/// runs its own attempt); the request fails instead of panicking.
fn mismatched(inner: &Inner, ep: &Endpoint, kit: Box<wire::Kit>) -> Error {
    ep.in_flight.set(ep.in_flight.get() - 1);
    inner.kits.put(kit);
    Error::UpstreamMalformed
}

/// Spends a retry of the route (none without one).
fn spend(t: &Target<'_>, left: &mut u32, now: Instant) -> bool {
    match t.route {
        Some((view, _)) => retry(view, left, now),
        None => false,
    }
}

/// The route's timeouts over the global ones, and its body limit.
fn limits_of(table: &Table, route: Option<&Route>) -> Limits {
    let base = &table.config.timeouts;
    let r = route.map(|r| r.timeouts).unwrap_or_default();
    Limits {
        connect: r.connect,
        upstream: r.upstream.unwrap_or(base.upstream),
        body: r.body.unwrap_or(base.body),
        max_body: route.and_then(|r| r.max_body).unwrap_or(u64::MAX),
    }
}

/// RFC 9110 §9.2.2: safe to send twice.
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}
