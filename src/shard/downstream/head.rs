//! Reading an HTTP/1.1 request head: the PROXY protocol header a load balancer sends first, then
//! each head within the header timeout and size limits, parsed, validated and admitted in one
//! pass (`request::process` calls admission once the head is whole); a refused head is answered
//! (400/408/413/431/501…) and logged. Over any `Wire`. Shard thread, on the connection's task.

use monoio::time::Instant;

use super::client::{refuse, Client};
use crate::http::proxy_protocol;
use crate::http::request::{self, Forwarding, Request};
use crate::http::{canned, Head};
use crate::shard::io::{read_more_until, IoFail, Wire};
use crate::shard::pipeline::admission::{self, Verdict};
use crate::shard::pipeline::record::{self, Refused};
use crate::shard::table::Table;
use crate::shard::Shard;

/// Reads the PROXY protocol header a load balancer sends first. False: refuse the connection.
pub(super) async fn read_proxy_header<S: Wire>(shard: &Shard, c: &mut Client<S>) -> bool {
    let table = shard.table();
    // Before the header is read, the client is the peer (the load balancer).
    if !table.trusted.is_empty() && !table.trusted.contains(c.client.ip()) {
        return false;
    }
    let t = table.config.timeouts;
    let deadline = Instant::now() + t.header;
    loop {
        match proxy_protocol::parse(c.buf.data()) {
            Ok(proxy_protocol::Parsed::Complete {
                consumed, source, ..
            }) => {
                c.buf.consume(consumed);
                if let Some(s) = source {
                    c.client = s;
                }
                return true;
            }
            Ok(proxy_protocol::Parsed::Partial) => {
                if read_more_until(&mut c.stream, &mut c.buf, deadline)
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            Err(_) => {
                refuse(&mut c.stream, canned::response(400), t.body).await;
                return false;
            }
        }
    }
}

/// The access log line of a request refused while its head was read (no route, no upstream).
pub(super) fn record_refused<S>(shard: &Shard, c: &Client<S>, status: u16, started: Instant) {
    if !shard.log.enabled() {
        return;
    }
    // Method and target as far as the request line goes (it may be cut or malformed).
    let data = c.buf.data();
    let line = &data[..data.iter().position(|&b| b == b'\n').unwrap_or(data.len())];
    let mut words = line.split(|&b| b == b' ');
    let method = words.next().unwrap_or(b"");
    let path = words.next().unwrap_or(b"");
    let refused = Refused {
        client: c.client,
        method,
        path,
        protocol: "HTTP/1.1",
        status,
        bytes_in: data.len() as u64,
        bytes_out: canned::response(status).len() as u64,
        tls: c.tls.as_deref(),
    };
    record::refused(&shard.pipeline(), &refused, started);
}

/// Reads until a whole head is buffered, validated and admitted; answers when refused and returns
/// the status it answered with (`None`: the client went away).
pub(super) async fn read_head<S: Wire>(
    shard: &Shard,
    table: &Table,
    c: &mut Client<S>,
) -> Result<(Request, Option<usize>, Verdict), Option<u16>> {
    let limits = &shard.base.shards;
    let t = table.config.timeouts;
    let deadline = Instant::now() + t.header;
    let fwd = Forwarding {
        client_ip: c.client.ip(),
        request_id: shard.next_request_id(),
        fallback_host: &table.fallback_host,
        rules: table.config.head_rules,
        https: c.stream.secure(),
        client_cert: c
            .tls
            .as_ref()
            .and_then(|t| t.client_cert.as_ref())
            .map(|cc| &*cc.xfcc),
        trusted_peer: !table.trusted.is_empty() && table.trusted.contains(c.client.ip()),
    };
    let log = shard.log.enabled();
    loop {
        let mut decided = (None, Verdict::Forward);
        let client = c.client.ip();
        let scratch = &mut c.scratch;
        let processed = request::process(
            c.buf.data(),
            c.buf.is_full(),
            limits.max_request_line,
            &fwd,
            |p| {
                let ids = (shard.next_span_id(), shard.next_request_id());
                let (plan, route, verdict) = admission::admit(table, client, log, ids, p, scratch);
                decided = (route, verdict);
                plan
            },
            &mut c.head,
        );
        match processed {
            Ok(Head::Complete(req)) => return Ok((req, decided.0, decided.1)),
            Ok(Head::Partial) => match read_more_until(&mut c.stream, &mut c.buf, deadline).await {
                Ok(_) => {}
                Err(IoFail::TimedOut) => {
                    refuse(&mut c.stream, canned::response(408), t.body).await;
                    return Err(Some(408));
                }
                Err(_) => return Err(None),
            },
            Err(reject) => {
                refuse(&mut c.stream, reject.response(), t.body).await;
                return Err(Some(reject.status()));
            }
        }
    }
}
