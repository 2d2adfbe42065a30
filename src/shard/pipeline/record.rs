//! Statistics and the access-log line of one request: per route (status class and latency) and
//! one JSON line per request when the log is on, for requests that reached the pipeline and for
//! those a front-end refused while reading the head. Shard thread.

use std::net::SocketAddr;
use std::time::SystemTime;

use monoio::time::Instant;

use super::exchanged::Exchanged;
use super::{Context, Downstream};
use crate::access_log::Entry;
use crate::http::request::Request;
use crate::shard::table::Table;
use crate::tls::Negotiated;

/// Records a request that went through the pipeline.
pub fn request<D: Downstream>(
    cx: &Context<'_>,
    table: &Table,
    d: &D,
    req: &Request,
    route: Option<usize>,
    ex: &Exchanged,
    started: Instant,
) {
    let total = started.elapsed();
    let protocol = d.protocol(req);
    count(cx, protocol);
    let t = &ex.tally;
    let name: &str = match route {
        Some(i) => {
            let s = &table.routes[i].stats;
            match t.status {
                // The client went away before any response: only its time is counted.
                0 => s.latency.record(total),
                status => s.record(status, total),
            }
            // An HTTP/2 front-end notes what it relayed; a bridged gRPC-Web call's status is
            // in its tally.
            if let Some(code) = d.grpc_status().or(t.grpc_status) {
                s.record_grpc(code);
            }
            &table.routes[i].name
        }
        None => "",
    };
    if cx.log.enabled() {
        let trace = req.trace_id;
        let scratch = d.scratch();
        cx.log.log(&Entry {
            time: SystemTime::now(),
            client: d.client(),
            method: &scratch.method,
            path: &scratch.path,
            protocol,
            status: t.status,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            upstream: ex.upstream,
            upstream_time: t.upstream_time,
            total_time: total,
            request_id: req.request_id.as_bytes(),
            trace_id: trace.as_ref().map(|t| &t[..]),
            shard: cx.shard,
            route: name,
            tls: d.tls(),
        });
    }
}

/// What a front-end knows of a request it refused before admission.
pub struct Refused<'a> {
    pub client: SocketAddr,
    pub method: &'a [u8],
    pub path: &'a [u8],
    /// `HTTP/1.1` or `HTTP/2` (an HTTP/1.x head refused before its version was read says 1.1).
    pub protocol: &'static str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub tls: Option<&'a Negotiated>,
}

/// The access log line of a request refused while its head was read (no route, no upstream).
pub fn refused(cx: &Context<'_>, r: &Refused<'_>, started: Instant) {
    count(cx, r.protocol);
    if !cx.log.enabled() {
        return;
    }
    cx.log.log(&Entry {
        time: SystemTime::now(),
        client: r.client,
        method: r.method,
        path: r.path,
        protocol: r.protocol,
        status: r.status,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        upstream: None,
        upstream_time: None,
        total_time: started.elapsed(),
        request_id: b"",
        trace_id: None,
        shard: cx.shard,
        route: "",
        tls: r.tls,
    });
}

/// Counts a request by its protocol.
#[inline]
fn count(cx: &Context<'_>, protocol: &str) {
    let c = &cx.by_protocol[usize::from(protocol == "HTTP/2")];
    c.set(c.get() + 1);
}
