//! One request/response exchange with a route's cluster, on the task that carries the request:
//! pick a usable endpoint (balancer over health and breakers), lease a pooled connection, run the
//! attempt through the client's side (`Downstream::attempt`), account the outcome to the breaker,
//! EWMA and statistics, and retry elsewhere when the route's policy and retry budget allow.
//! Failures are classified by side and answered by their own status. Shard thread.

use std::time::{Duration, Instant};

use super::choose::{account, acquire, acquire_h2, fail, pick, retry, MAX_REFUSED};
use super::exchanged::{Ctx, Exchanged, Outcome};
use super::{Context, Downstream};
use crate::error::{ProxyError, UpstreamError};
use crate::http::request::Request;
use crate::http::BodyFraming;
use crate::policy::breaker::Transition;
use crate::shard::upstream::attempt::{Done, Failed, Limits};
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

/// Runs one exchange. The client gets a canned error when no response head could be relayed.
pub async fn exchange<D: Downstream>(
    cx: &Context<'_>,
    d: &mut D,
    req: &Request,
    ctx: &Ctx<'_>,
) -> Exchanged {
    let mut ex = Exchanged::new(req.head_len);
    match proxy(cx, d, req, ctx, &mut ex).await {
        Ok(o) => ex.outcome = o,
        Err(f) => {
            if let Some(status) = f.error.status().filter(|_| !f.answered) {
                let idle = ctx.table.config.timeouts.body;
                ex.tally.status = status;
                ex.tally.bytes_out = d.refuse(f.error.response(), idle).await;
            }
            ex.outcome = Outcome::Close;
        }
    }
    ex
}

/// The route's effective timeouts and limits for this exchange, the upstream (response)
/// timeout capped by the client's own `deadline` (what is left of it at `now`).
fn limits<'t>(
    cx: &'t Context<'_>,
    ctx: &Ctx<'t>,
    deadline: Option<Instant>,
    now: Instant,
) -> Limits<'t> {
    let base = &ctx.table.config.timeouts;
    let t = &ctx.cfg.timeouts;
    let mut upstream = t.upstream.unwrap_or(base.upstream);
    if let Some(left) = deadline.map(|d| d.saturating_duration_since(now)) {
        upstream = upstream.min(left);
    }
    Limits {
        connect: t.connect,
        upstream,
        body: t.body.unwrap_or(base.body),
        max_body: ctx.cfg.max_body.unwrap_or(u64::MAX),
        remove: &ctx.route.response_drop,
        splice_at: cx.splice_at,
        fill: cx.fill,
        drain: cx.drain,
    }
}

async fn proxy<D: Downstream>(
    cx: &Context<'_>,
    d: &mut D,
    req: &Request,
    ctx: &Ctx<'_>,
    ex: &mut Exchanged,
) -> Result<Outcome, Failed> {
    // A body whose framing is already broken in what arrived with the head: the upstream sees
    // nothing.
    d.begin_body(req).map_err(Failed::before)?;
    if d.grpc() && !ctx.cluster.speaks_h2() {
        return Err(Failed::before(UpstreamError::GrpcOverH1));
    }
    // HTTP/2 has no Upgrade: a clear 501 rather than a plain request the client did not send.
    if req.upgrade && ctx.cluster.speaks_h2() {
        let refused = &ctx.route.stats.upgrades_refused;
        refused.set(refused.get() + 1);
        return Err(Failed::before(UpstreamError::UpgradeOverH2));
    }
    let policy = &ctx.cfg.retry;
    // One clock read for the first attempt's decisions, one when it ends.
    let start = Instant::now();
    let limits = limits(cx, ctx, d.deadline(), start);
    let replayable = req.method.is_idempotent()
        && matches!(req.body, BodyFraming::None | BodyFraming::Length(0))
        && !req.upgrade;
    let budget = &ctx.route.budget;
    budget.on_request(start);
    let mut first = Some(start);
    let mut retries_left = if replayable { policy.attempts } else { 0 };
    let mut avoid = None;
    let mut fresh_only = false;
    let mut refusals = 0;
    let cluster = ctx.cluster;
    loop {
        let now = first.take().unwrap_or_else(Instant::now);
        let i = pick(cluster, &d.scratch().key, now, avoid)
            .ok_or(Failed::before(UpstreamError::NoEndpoint))?;
        let ep = &cluster.endpoints[i];
        ex.upstream = Some(ep.addr);
        let (admitted, t) = ep.breaker.admit(now);
        publish(cx, ep, ep.note(t));
        if !admitted {
            return Err(Failed::before(UpstreamError::NoEndpoint));
        }
        let ticket = ep.breaker.ticket();
        let lease = lease(cluster, ep, fresh_only, !replayable, limits.connect).await;
        let mut lease = match lease {
            Ok(l) => l,
            Err(e) => {
                if e.is_endpoint_fault() {
                    publish(cx, ep, fail(ep, ticket));
                } else {
                    ep.breaker.on_abandoned_for(ticket);
                }
                let again = policy.on_connect && e.is_endpoint_fault();
                if again && retry(ctx.route, &mut retries_left, now) {
                    avoid = Some(i);
                    continue;
                }
                return Err(Failed::before(e));
            }
        };
        let reused = match &lease {
            Leased::H1(l) => l.reused,
            Leased::H2(l) => l.reused,
        };
        ep.in_flight.set(ep.in_flight.get() + 1);
        // A status the route retries on is held back only when a retry is granted the moment it
        // arrives (attempt and budget spent then, with no await in between): with no attempt or
        // budget left, the client gets the upstream's own answer, even when another request
        // spent the budget while this attempt was waiting.
        let left = &mut retries_left;
        let grant =
            |status| policy.on_status.contains(&status) && retry(ctx.route, left, Instant::now());
        // One match per attempt: each kind runs its own attempt, so a plain connection's reads
        // and writes stay direct calls (and splice stays possible).
        let result = match &mut lease {
            Leased::H1(l) => match l.stream() {
                UpStream::Plain(s) => d.attempt(req, s, &limits, grant, &mut ex.tally).await,
                UpStream::Tls { stream, .. } => {
                    d.attempt(req, &mut **stream, &limits, grant, &mut ex.tally)
                        .await
                }
            },
            Leased::H2(l) => d.attempt_h2(req, l, &limits, grant, &mut ex.tally).await,
        };
        ep.in_flight.set(ep.in_flight.get() - 1);
        let result = match &mut lease {
            Leased::H1(l) => result.map_err(|f| refused_client_certificate(f, l.stream(), ep)),
            Leased::H2(l) => l.account(result),
        };
        // Set whenever a response head arrived, which is when `rtt` is used.
        let rtt = ex.tally.upstream_time.unwrap_or_default();
        match result {
            Ok(Done::Response {
                status,
                reusable,
                close_client,
            }) => {
                let done = Instant::now();
                ep.ewma.observe(rtt, done);
                publish(cx, ep, account(cluster, ep, ticket, status, rtt, done));
                if let (true, Leased::H1(l)) = (reusable, lease) {
                    l.release();
                }
                return Ok(if close_client {
                    Outcome::Close
                } else {
                    Outcome::KeepAlive
                });
            }
            Ok(Done::Switched) => {
                publish(
                    cx,
                    ep,
                    account(cluster, ep, ticket, 101, rtt, Instant::now()),
                );
                return Ok(match lease {
                    Leased::H1(l) => Outcome::Tunnel(l.detach()),
                    Leased::H2(_) => Outcome::Close,
                });
            }
            Ok(Done::Retried(status)) => {
                publish(
                    cx,
                    ep,
                    account(cluster, ep, ticket, status, rtt, Instant::now()),
                );
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
                ep.breaker.on_abandoned_for(ticket);
                refusals += 1;
            }
            // A pooled connection the upstream had closed: not the endpoint's fault, and safe
            // to send again on a fresh connection (once).
            Err(f) if f.retryable && reused && !fresh_only && replayable => {
                ep.breaker.on_abandoned_for(ticket);
                fresh_only = true;
            }
            Err(f) => {
                let upstream_fault =
                    matches!(f.error, ProxyError::Upstream(e) if e != UpstreamError::Refused);
                if upstream_fault {
                    publish(cx, ep, fail(ep, ticket));
                } else {
                    ep.breaker.on_abandoned_for(ticket);
                }
                let again = !f.answered
                    && match f.error {
                        ProxyError::Upstream(UpstreamError::ResponseTimeout) => policy.on_timeout,
                        ProxyError::Upstream(UpstreamError::Closed | UpstreamError::Io(_)) => {
                            policy.on_reset
                        }
                        _ => false,
                    };
                if again && retry(ctx.route, &mut retries_left, now) {
                    avoid = Some(i);
                    fresh_only = false;
                    continue;
                }
                return Err(f);
            }
        }
    }
}

/// An attempt that failed before any response byte because the TLS 1.3 upstream refused our
/// client certificate (or our having none) after the handshake: its alert came on the first
/// read. Counted and answered as that TLS failure, not as a reset connection (no retry: every
/// connection would be refused alike).
fn refused_client_certificate(f: Failed, up: &mut UpStream, ep: &Endpoint) -> Failed {
    if f.answered {
        return f;
    }
    match up.refused_after_handshake() {
        Some(reason) => {
            let c = &ep.stats.tls_failures[reason.index()];
            c.set(c.get() + 1);
            Failed::before(UpstreamError::Tls(reason))
        }
        None => f,
    }
}

/// A pooled connection (HTTP/1.1, within the cluster's limits: `choose::acquire`) or a stream
/// on one (HTTP/2).
async fn lease<'e>(
    cluster: &ClusterView,
    ep: &'e Endpoint,
    fresh_only: bool,
    check: bool,
    connect: Option<Duration>,
) -> Result<Leased<'e>, UpstreamError> {
    let Some(h2) = &ep.h2 else {
        return acquire(cluster, ep, fresh_only, check, connect)
            .await
            .map(Leased::H1);
    };
    acquire_h2(cluster, h2, connect).await.map(Leased::H2)
}

/// Tells the coordinator of a breaker transition (one message per transition, never per
/// request): it logs each one and relays ejections and readmissions to the other shards
/// (passive outlier detection).
fn publish(cx: &Context<'_>, ep: &Endpoint, t: Option<Transition>) {
    let event = match t {
        Some(Transition::Opened) => crate::bus::HealthEvent::Ejected,
        Some(Transition::HalfOpened) => crate::bus::HealthEvent::HalfOpened,
        Some(Transition::Closed) => crate::bus::HealthEvent::Readmitted,
        None => return,
    };
    cx.publish(&ep.cluster, &ep.name, event);
}
