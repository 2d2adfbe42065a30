//! One library request against one cluster, on the caller's task: the proxy's exchange loop
//! (pipeline/choose.rs: pick over health and breakers, lease within the caps and the bounded
//! wait, account, retry under the route's policy and budget) around the library's HTTP/1.1
//! attempt (wire.rs). The response head is returned; its body keeps the connection
//! (response.rs). Embedding thread.

use std::time::Instant;

use http::request::Parts;
use http::Method;

use super::body::{self, Body, Kind};
use super::head;
use super::response::ResponseBody;
use super::wire::{self, Limits, Reply};
use super::{Error, Inner, Response};
use crate::config::{RetryPolicy, Route};
use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::shard::pipeline::choose::{account, acquire, fail, pick, retry};
use crate::shard::table::{RouteView, Table};
use crate::shard::upstream::cluster::ClusterView;
use crate::shard::upstream::stream::UpStream;

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
        let lease = acquire(cluster, ep, fresh_only, !replayable, limits.connect).await;
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
        let reused = lease.reused;
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
        let result = match lease.stream() {
            UpStream::Plain(s) => {
                wire::attempt(s, &mut kit, kind, head_request, limits, grant).await
            }
            UpStream::Tls { stream, .. } => {
                wire::attempt(&mut **stream, &mut kit, kind, head_request, limits, grant).await
            }
        };
        let rtt = sent_at.elapsed();
        match result {
            Ok(Reply::Head(answer)) => {
                let done = Instant::now();
                ep.ewma.observe(rtt, done);
                account(cluster, ep, ticket, answer.status.as_u16(), rtt, done);
                if let Some((view, _)) = t.route {
                    view.stats.record(answer.status.as_u16(), start.elapsed());
                }
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
            Ok(Reply::Retried(status)) => {
                ep.in_flight.set(ep.in_flight.get() - 1);
                account(cluster, ep, ticket, status, rtt, Instant::now());
                drop(lease);
                avoid = Some(i);
            }
            Err(f) if f.retryable && reused && !fresh_only && replayable => {
                ep.in_flight.set(ep.in_flight.get() - 1);
                ep.breaker.on_abandoned_for(ticket);
                fresh_only = true;
            }
            Err(f) => {
                ep.in_flight.set(ep.in_flight.get() - 1);
                let upstream_fault = matches!(f.error, ProxyError::Upstream(_));
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
