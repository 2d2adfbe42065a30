//! The protocol-neutral pipeline for one request: admission (route, body limit, rate limit, the
//! rewrite plan), then either a local answer or the exchange with the route's cluster (pick an
//! endpoint over health and breakers, lease a pooled connection, run the attempt, retry under the
//! route's policy and budget, account to breaker, EWMA and outlier detection), then statistics
//! and the access-log line. It reads a narrow `Context`, never the whole shard, and drives the
//! client's side through `Downstream`: the HTTP/1.1 connection implements it today; an HTTP/2
//! stream implements it the same way, so both share everything here. Shard thread, on the task
//! that carries the request.

pub mod admission;
pub mod choose;
pub mod exchanged;
mod forward;
pub mod record;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use monoio::time::Instant;

use self::admission::{Scratch, Verdict};
use self::exchanged::{Ctx, Exchanged, Outcome};
use super::drain::Drain;
use super::io::Wire;
use super::table::Table;
use super::upstream::attempt::{Done, Failed, Limits, Tally};
use super::upstream::h2pool::H2Lease;
use crate::access_log::ShardLog;
use crate::bus::{HealthEvent, HealthNews, Reports, ToCoordinator};
use crate::error::ClientError;
use crate::http::canned;
use crate::http::request::Request;
use crate::tls::Negotiated;

/// What the pipeline reads of the shard: its id, access log, drain state, report channel and
/// the two shard settings an attempt needs. Built by `Shard::pipeline`, borrowed per request.
pub struct Context<'s> {
    pub shard: usize,
    pub log: &'s ShardLog,
    pub drain: &'s Drain,
    pub reports: &'s Reports,
    /// Response bodies at least this large are spliced where both ends allow (0: never).
    pub splice_at: u64,
    /// The upstream buffer size: the most body bytes held at once.
    pub fill: usize,
    /// Requests recorded, by protocol (HTTP/1.x, HTTP/2), for the shard's statistics.
    pub by_protocol: &'s [std::cell::Cell<u64>; 2],
}

impl Context<'_> {
    /// Tells the coordinator (and so every other shard) about an endpoint's new state.
    pub fn publish(&self, cluster: &Arc<str>, endpoint: &Arc<str>, event: HealthEvent) {
        let _ = self.reports.send(ToCoordinator::Health(HealthNews {
            from: self.shard,
            cluster: cluster.clone(),
            endpoint: endpoint.clone(),
            event,
        }));
    }
}

/// A response the proxy gives itself (404, 429, a route's direct answer).
pub struct Local<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// The client's side of one request, as the pipeline drives it: who the client is, what
/// admission noted, the request body's source and the response's sink. An HTTP/1.1 connection
/// implements it over its stream and buffers (downstream/h1.rs); an HTTP/2 stream implements it
/// over its frames, with the same pipeline above and the same upstream side below.
#[allow(async_fn_in_trait)] // used with static dispatch on the shard thread only: no Send bound
pub trait Downstream {
    /// The client as policy sees it: the peer, or the source a PROXY header names.
    fn client(&self) -> SocketAddr;
    /// What admission noted for this request (hash key, response lines, method and path).
    fn scratch(&self) -> &Scratch;
    /// What the client's TLS connection negotiated, for the access log; `None` on plain HTTP.
    fn tls(&self) -> Option<&Negotiated>;
    /// The protocol `req` came in, for the access log: `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`.
    fn protocol(&self, req: &Request) -> &'static str;
    /// When the client stops waiting (a gRPC `grpc-timeout`): the exchange's connect and
    /// response timeouts are capped to it. `None`: only the route's timeouts apply.
    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }
    /// A gRPC request (`content-type: application/grpc*`): it needs an HTTP/2 cluster.
    fn grpc(&self) -> bool {
        false
    }
    /// The `grpc-status` the client got, for a gRPC call (counted by route).
    fn grpc_status(&self) -> Option<u8> {
        None
    }
    /// Takes the request head off the input before the body is relayed; an error is a body
    /// already broken in what arrived with the head.
    fn begin_body(&mut self, req: &Request) -> Result<(), ClientError>;
    /// Sends a canned error response; the client is closed after it. Returns the bytes sent.
    async fn refuse(&mut self, bytes: &'static [u8], idle: Duration) -> u64;
    /// Sends a local answer: the bytes sent and whether the client may send another request,
    /// `None` when the client went away.
    async fn answer(
        &mut self,
        req: &Request,
        local: &Local<'_>,
        draining: bool,
        idle: Duration,
    ) -> Option<(u64, bool)>;
    /// One attempt on a leased upstream connection: the request goes out with its body from
    /// this side, the response comes back to it. `retry_status` grants a retry on a final status
    /// the moment it arrives; what moved is added to `tally`.
    ///
    /// Not an `async fn`: an implementation returns the protocol's attempt future itself, so the
    /// request's future nests one level less (each level moves the whole inner future once).
    fn attempt<'a, U: Wire>(
        &'a mut self,
        req: &'a Request,
        up: &'a mut U,
        limits: &'a Limits<'a>,
        retry_status: impl FnMut(u16) -> bool + 'a,
        tally: &'a mut Tally,
    ) -> impl Future<Output = Result<Done, Failed>> + 'a;
    /// The same attempt on a stream of an upstream HTTP/2 connection (`protocol = "h2"`/`"h2c"`):
    /// the request goes out as an HTTP/2 request on `up`, its body and the response's within the
    /// flow-control windows, trailers relayed both ways.
    fn attempt_h2<'a>(
        &'a mut self,
        req: &'a Request,
        up: &'a mut H2Lease,
        limits: &'a Limits<'a>,
        retry_status: impl FnMut(u16) -> bool + 'a,
        tally: &'a mut Tally,
    ) -> impl Future<Output = Result<Done, Failed>> + 'a;
}

/// Runs one admitted request to its end (local answer or exchange), then records it; `started`
/// is when its head began to arrive. Returns what the front-end does next. (One `async fn` for
/// both: each nested level would move the whole exchange future once more.)
pub async fn handle<D: Downstream>(
    cx: &Context<'_>,
    table: &Table,
    d: &mut D,
    req: &Request,
    route: Option<usize>,
    verdict: Verdict,
    started: Instant,
) -> Exchanged {
    let ex = 'done: {
        let mut ex = Exchanged::new(req.head_len);
        let idle = table.config.timeouts.body;
        let local = match verdict {
            Verdict::Forward => {
                let i = route.unwrap_or(0);
                let view = &table.routes[i];
                let Some(cluster) = view.cluster.as_deref() else {
                    ex.tally.status = 500;
                    ex.tally.bytes_out = d.refuse(canned::response(500), idle).await;
                    break 'done ex;
                };
                let ctx = Ctx {
                    table,
                    route: view,
                    cfg: &table.config.routes[i],
                    cluster,
                };
                break 'done forward::exchange(cx, d, req, &ctx).await;
            }
            Verdict::TooLarge => {
                ex.tally.status = 413;
                ex.tally.bytes_out = d.refuse(canned::response(413), idle).await;
                break 'done ex;
            }
            Verdict::NotFound => Local {
                status: 404,
                content_type: "text/plain",
                body: b"not found\n",
            },
            Verdict::Limited => Local {
                status: 429,
                content_type: "text/plain",
                body: b"too many requests\n",
            },
            Verdict::Direct => {
                let d = table.config.routes[route.unwrap_or(0)]
                    .direct
                    .as_ref()
                    .expect("a direct verdict has a direct response");
                Local {
                    status: d.status,
                    content_type: d.content_type.as_str(),
                    body: d.body.as_bytes(),
                }
            }
        };
        if let Some((n, keep)) = d.answer(req, &local, cx.drain.is_draining(), idle).await {
            ex.tally.status = local.status;
            ex.tally.bytes_out = n;
            if keep {
                ex.outcome = Outcome::KeepAlive;
            }
        }
        ex
    };
    record::request(cx, table, d, req, route, &ex, started);
    ex
}
