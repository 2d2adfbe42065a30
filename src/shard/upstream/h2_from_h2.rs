//! The HTTP/2 client side of one attempt whose client is an HTTP/2 stream (a sibling of
//! h1_from_h2.rs): the rewritten head goes out as an HTTP/2 request on a leased upstream stream,
//! the client's DATA follows chunk by chunk (no copy; each chunk's window given back to the
//! client only once the upstream's windows took it) and its trailers as trailers; the response
//! head goes through the usual rewrite (`response::process`) to the client, then its DATA within
//! the client's windows (each chunk's upstream window released once the client's took it) and
//! its trailers. Both directions stay bounded by the windows: a slow reader slows its writer.
//! Shard thread, on the client stream's task.

use bytes::Bytes;

use super::attempt::{client_io, Done, Failed, Limits, Tally};
use super::h1_from_h2::H2Side;
use super::h2pool::H2Lease;
use super::h2stream;
use crate::error::{ClientError, UpstreamError};
use crate::http::request::{Method, Request};
use crate::http::response::{self, ResponseCtx};
use crate::http::{h2 as translate, h2up, Head};
use crate::shard::h2io;
use crate::shard::io::IoFail;

/// One attempt on `lease`; `retry_status` is asked when the response head arrives whether the
/// route retries on its status (and grants the retry at once); what moved is added to `ex`.
pub async fn attempt(
    c: H2Side<'_>,
    req: &Request,
    lease: &mut H2Lease,
    limits: &Limits<'_>,
    mut retry_status: impl FnMut(u16) -> bool,
    ex: &mut Tally,
) -> Result<Done, Failed> {
    let idle = limits.body;
    let bodiless = c.body.is_end_stream();
    let (resp, mut send) =
        h2stream::open(lease, c.head, req.te_trailers, bodiless, limits.upstream).await?;
    if !bodiless {
        let mut total = 0u64;
        let read_failed = |e: IoFail| match e {
            IoFail::TimedOut => Failed::before(ClientError::BodyTimeout),
            e => Failed::before(client_io(e)),
        };
        let send_failed = |e: IoFail| {
            Failed::before(match e {
                IoFail::TimedOut => UpstreamError::BodyTimeout,
                IoFail::Eof => UpstreamError::Closed,
                IoFail::Err(k) => UpstreamError::Io(k),
            })
        };
        while let Some(chunk) = h2io::next_chunk(c.body, idle).await.map_err(read_failed)? {
            let n = chunk.len();
            total += n as u64;
            if total > limits.max_body {
                return Err(Failed::before(ClientError::TooLarge));
            }
            h2io::send_bytes(&mut send, chunk, false, idle)
                .await
                .map_err(send_failed)?;
            h2io::release(c.body, n);
        }
        match h2io::trailers(c.body, idle).await.map_err(read_failed)? {
            Some(t) => send
                .send_trailers(t)
                .map_err(|e| h2stream::before(&e, false))?,
            None => h2io::send_bytes(&mut send, Bytes::new(), true, idle)
                .await
                .map_err(send_failed)?,
        }
        ex.bytes_in += total;
    }
    let sent_at = std::time::Instant::now();
    let deadline = monoio::time::Instant::now() + limits.upstream;
    let resp = h2stream::head(resp, deadline, bodiless).await?;
    ex.upstream_time = Some(sent_at.elapsed());
    let status = resp.status().as_u16();
    if retry_status(status) {
        send.send_reset(h2::Reason::CANCEL);
        return Ok(Done::Retried(status));
    }
    ex.status = status;

    // --- the response head through the usual rewrite, then as HTTP/2 headers ---
    let (parts, mut body) = resp.into_parts();
    c.up_buf.consume(c.up_buf.len());
    h2up::response_head(&parts, body.is_end_stream(), &mut c.up_buf.v);
    let ctx = ResponseCtx {
        head_request: req.method == Method::Head,
        client_http10: false,
        client_keep_alive: true,
        upgrade_requested: false,
        remove: limits.remove,
        extra: c.extra,
    };
    match response::process(c.up_buf.data(), true, ctx, c.out) {
        Ok(Head::Complete(_)) => {}
        _ => return Err(Failed::before(UpstreamError::Malformed)),
    }
    c.up_buf.consume(c.up_buf.len());
    let (head, _) =
        translate::response(c.out).map_err(|_| Failed::before(UpstreamError::Malformed))?;
    let end = body.is_end_stream() || req.method == Method::Head;
    c.respond
        .send_head(head, end)
        .map_err(|e| Failed::answered(client_io(e)))?;
    ex.bytes_out += c.out.len() as u64;
    if end {
        return Ok(done(status));
    }

    // --- the body and trailers, within both sides' windows ---
    while let Some(chunk) = h2stream::next(&mut body, idle).await? {
        let n = chunk.len();
        ex.bytes_out += n as u64;
        c.respond
            .send_bytes(chunk, false, idle)
            .await
            .map_err(|e| Failed::answered(client_io(e)))?;
        h2stream::release(&mut body, n);
    }
    let sent = match h2stream::trailers(&mut body, idle).await? {
        Some(t) => c.respond.send_trailers(t),
        None => c.respond.finish(),
    };
    sent.map_err(|e| Failed::answered(client_io(e)))?;
    Ok(done(status))
}

fn done(status: u16) -> Done {
    Done::Response {
        status,
        reusable: true,
        close_client: false,
    }
}
