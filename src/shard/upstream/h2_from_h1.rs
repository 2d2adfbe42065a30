//! The HTTP/2 client side of one attempt whose client is an HTTP/1.1 connection (a sibling of
//! h1.rs): the rewritten head goes out as an HTTP/2 request on a leased stream, the body follows
//! from the client's connection as DATA within the upstream's windows (h2_body_from_h1.rs; a
//! body that arrived whole with the head stays in the client's buffer until the response head,
//! one streamed from the client is kept up to `replay::RETRY_BUFFER`, so a refused stream can
//! send it again), then the response head comes back as an HTTP/1.1 head (rewritten by
//! `response::process` like any upstream's; a body of unknown length sent chunked, the
//! upstream's trailers as chunked trailers), and its body is written to the client chunk by
//! chunk, each chunk's window released only once it was written. An upstream that answers early
//! and stops taking the body has its answer relayed; the client's connection closes after it. A
//! plain TCP client that closes its connection while the response head is awaited has the
//! upstream's stream reset (CANCEL). Shard thread, on the client connection's task.

use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use monoio::io::AsyncWriteRentExt;
use monoio::time::{timeout, Instant};

use super::attempt::{client_io, Done, Failed, Limits, Tally};
use super::grpc_web;
use super::h2_body_from_h1::{decoded, send_body, up_fail};
use super::h2pool::H2Lease;
use super::h2stream;
use super::relay::Relay;
use crate::error::{ProxyError, UpstreamError};
use crate::http::grpc_web::Web;
use crate::http::request::{Method, Request};
use crate::http::response::{self, ResponseCtx};
use crate::http::{canned, h2up, BodyFraming, Head};
use crate::shard::h2io;
use crate::shard::io::{peer_closed, write_static, write_vec, IoFail, Wire};

/// How often a plain TCP client is looked at for a close while the response head is awaited.
const CLIENT_CHECK: Duration = Duration::from_millis(250);

/// One attempt on `lease`; `retry_status` is asked when the response head arrives whether the
/// route retries on its status (and grants the retry at once); what moved is added to `ex`.
pub async fn attempt<S: Wire>(
    c: Relay<'_, S>,
    req: &Request,
    lease: &mut H2Lease,
    limits: &Limits<'_>,
    mut retry_status: impl FnMut(u16) -> bool,
    ex: &mut Tally,
) -> Result<Done, Failed> {
    let bodiless = matches!(req.body, BodyFraming::None | BodyFraming::Length(0));
    // A retry after a refused stream reads what the refused attempts took again.
    if !bodiless {
        c.replay.restore(c.buf);
    }
    // A body that came whole with the head is sent from the buffer and kept there until the
    // response head: a refused stream can then be sent again.
    let held = match req.body {
        BodyFraming::Length(n) if n > 0 && c.buf.len() as u64 >= n => n as usize,
        _ => 0,
    };
    let mut early = false;
    // Counted once the stream was not refused (a replay would count its body twice).
    let mut body_in = 0;
    let (resp, mut send, web) =
        h2stream::open(lease, c.head, req.te_trailers, bodiless, limits.upstream).await?;
    let mut text = grpc_web::decoder(web);
    if !bodiless {
        if req.expect_continue && !c.replay.continued {
            c.replay.continued = true;
            write_static(&mut *c.stream, canned::CONTINUE, limits.body)
                .await
                .map_err(|e| Failed::before(client_io(e)))?;
            ex.bytes_out += canned::CONTINUE.len() as u64;
        }
        let sent = if held > 0 {
            let body = Bytes::copy_from_slice(&c.buf.data()[..held]);
            let body = decoded(&mut text, body, true)?;
            h2io::send_bytes(&mut send, body, true, limits.body)
                .await
                .map(|()| held as u64)
                .map_err(|e| Failed::before(up_fail(e)))
        } else {
            send_body(
                &mut *c.stream,
                &mut *c.buf,
                &mut send,
                req.body,
                limits,
                &mut text,
                c.replay,
            )
            .await
        };
        match sent {
            Ok(n) => body_in = n,
            // The upstream stopped taking the body (it reset the stream after an early final
            // answer, a 413 say): that answer is relayed if it came, and the client's unread
            // body closes its connection after it.
            Err(f) if matches!(f.error, ProxyError::Upstream(_)) => early = true,
            Err(f) => return Err(f),
        }
    }
    let sent_at = Instant::now();
    let replayable = bodiless || held > 0 || c.replay.replayable();
    // A client that closes its connection meanwhile cancels the upstream's stream.
    let fd = c.stream.as_tcp().map(|t| t.as_raw_fd());
    let resp = monoio::select! {
        r = h2stream::head(resp, sent_at + limits.upstream, replayable) => r,
        _ = peer_closed(fd, CLIENT_CHECK) => {
            send.send_reset(h2::Reason::CANCEL);
            ex.bytes_in += body_in;
            return Err(Failed::client_gone());
        }
    };
    let resp = match resp {
        Ok(r) => r,
        Err(f) => {
            if !f.retryable {
                ex.bytes_in += body_in;
            }
            return Err(f);
        }
    };
    ex.bytes_in += body_in;
    c.buf.consume(held);
    c.replay.answered(c.buf);
    ex.upstream_time = Some(sent_at.elapsed());
    let status = resp.status().as_u16();
    if retry_status(status) {
        send.send_reset(h2::Reason::CANCEL);
        return Ok(Done::Retried(status));
    }
    ex.status = status;

    // --- the response head, as an upstream's HTTP/1.1 head through the usual rewrite ---
    let (mut parts, mut body) = resp.into_parts();
    let bridged = grpc_web::response(web, &mut parts.headers);
    if bridged.is_some() {
        ex.grpc_status = grpc_web::status(Some(&parts.headers));
    }
    c.up_buf.consume(c.up_buf.len());
    h2up::response_head(&parts, body.is_end_stream(), &mut c.up_buf.v);
    let ctx = ResponseCtx {
        head_request: req.method == Method::Head,
        client_http10: req.http10,
        // After an early answer the client's unsent body is still due: close.
        client_keep_alive: req.keep_alive && !early && !limits.drain.is_draining(),
        upgrade_requested: false,
        remove: limits.remove,
        extra: c.extra,
    };
    let r = match response::process(c.up_buf.data(), true, ctx, c.out) {
        Ok(Head::Complete(r)) => r,
        _ => return Err(Failed::before(UpstreamError::Malformed)),
    };
    c.up_buf.consume(c.up_buf.len());
    write_vec(&mut *c.stream, &mut *c.out, limits.body)
        .await
        .map_err(|e| Failed::answered(client_io(e)))?;
    ex.bytes_out += c.out.len() as u64;

    // --- the body, chunk by chunk within the upstream's windows ---
    if !matches!(r.body, BodyFraming::None | BodyFraming::Length(0)) {
        let chunked = r.body == BodyFraming::Chunked && !r.dechunk;
        let idle = limits.body;
        let grpc = &mut ex.grpc_status;
        let web = bridged.map(|w| (w, grpc));
        ex.bytes_out += relay(&mut *c.stream, &mut body, c.out, chunked, web, idle).await?;
    }
    Ok(Done::Response {
        status,
        reusable: true,
        close_client: r.close_client || early,
    })
}

/// Writes the response body to the client: chunk-framed (then the trailers) when `chunked`,
/// as it comes otherwise; a gRPC-Web answer (`bridged`) ends with the trailer frame instead of
/// trailers, its `grpc-status` noted. Returns the bytes written.
async fn relay<S: Wire>(
    client: &mut S,
    body: &mut RecvStream,
    out: &mut Vec<u8>,
    chunked: bool,
    mut bridged: Option<(Web, &mut Option<u8>)>,
    idle: Duration,
) -> Result<u64, Failed> {
    let mut total = 0u64;
    loop {
        let Some(chunk) = h2stream::next(body, idle).await? else {
            let Some((web, grpc)) = bridged else { break };
            let t = h2stream::trailers(body, idle).await?;
            if let Some(code) = grpc_web::status(t.as_ref()) {
                *grpc = Some(code);
            }
            total += write_chunk(
                client,
                out,
                grpc_web::trailer_frame(web, t.as_ref()),
                chunked,
                idle,
            )
            .await?;
            if chunked {
                total += write_chunk(client, out, Bytes::new(), true, idle).await?;
            }
            return Ok(total);
        };
        let n = chunk.len();
        if n == 0 {
            continue;
        }
        let chunk = match &mut bridged {
            Some((web, _)) => grpc_web::down(*web, chunk),
            None => chunk,
        };
        let n_out = chunk.len();
        if chunked {
            out.clear();
            let _ = std::io::Write::write_fmt(out, format_args!("{n_out:x}\r\n"));
            out.extend_from_slice(&chunk);
            out.extend_from_slice(b"\r\n");
            total += out.len() as u64;
            write_vec(client, out, idle)
                .await
                .map_err(answered_client)?;
        } else {
            total += n_out as u64;
            write_bytes(client, chunk, idle)
                .await
                .map_err(answered_client)?;
        }
        h2stream::release(body, n);
    }
    if chunked {
        let t = h2stream::trailers(body, idle).await?;
        out.clear();
        h2up::chunked_end(t.as_ref(), out);
        total += out.len() as u64;
        write_vec(client, out, idle)
            .await
            .map_err(answered_client)?;
    }
    Ok(total)
}

/// Writes `data` to the client, chunk-framed when `chunked` (empty: the last chunk, no
/// trailers). Returns the bytes written.
async fn write_chunk<S: Wire>(
    client: &mut S,
    out: &mut Vec<u8>,
    data: Bytes,
    chunked: bool,
    idle: Duration,
) -> Result<u64, Failed> {
    if !chunked {
        let n = data.len() as u64;
        write_bytes(client, data, idle)
            .await
            .map_err(answered_client)?;
        return Ok(n);
    }
    out.clear();
    let _ = std::io::Write::write_fmt(out, format_args!("{:x}\r\n", data.len()));
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\r\n");
    if data.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    let n = out.len() as u64;
    write_vec(client, out, idle)
        .await
        .map_err(answered_client)?;
    Ok(n)
}

fn answered_client(e: IoFail) -> Failed {
    Failed::answered(client_io(e))
}

/// Writes one DATA chunk as it came (no copy).
async fn write_bytes<S: Wire>(s: &mut S, b: Bytes, idle: Duration) -> Result<(), IoFail> {
    match timeout(idle, s.write_all(b)).await {
        Err(_) => Err(IoFail::TimedOut),
        Ok((Ok(_), _)) => Ok(()),
        Ok((Err(e), _)) => Err(IoFail::Err(e.kind())),
    }
}
