//! The HTTP/1.1 client side of one attempt whose client is an HTTP/2 stream (a sibling of h1.rs,
//! which stays as it is for HTTP/1.1 clients): send the rewritten head, stream the request body
//! from the stream's DATA frames (each chunk's window released only once it went upstream, so a
//! slow upstream slows the client), read the response head (1xx dropped: HTTP/2 clients get the
//! final answer; a retryable status handed back unsent), send it as HTTP/2 headers, then stream
//! the body back as DATA frames within the client's windows, chunked bodies de-chunked. Trailers
//! are relayed both ways where the HTTP/1.1 side is chunked: the client's HTTP/2 trailers end a
//! chunked request body, a chunked response's trailers reach the client as HTTP/2 trailers. A
//! client that resets its stream while the response head is awaited ends the attempt at once
//! and the upstream connection closes (not pooled with a request on it). Shard thread, on the
//! stream's task.

use std::future::poll_fn;
use std::time::Duration;

use h2::RecvStream;
use monoio::io::AsyncWriteRentExt;
use monoio::time::{timeout, Instant};

use super::attempt::{client_io, upstream_io, Done, Failed, Limits, Tally};
use super::replay::ChunkReplay;
use crate::error::{ClientError, UpstreamError};
use crate::http::chunked::Decoder;
use crate::http::request::{Method, Request};
use crate::http::response::{self, Kind, ResponseCtx};
use crate::http::{h2 as translate, h2up, BodyFraming, Head};
use crate::shard::h2io::{self, Respond};
use crate::shard::io::{read_more_until, read_more_within, write_vec, Buf, IoFail, Wire};

/// The HTTP/2 stream's side of an exchange, borrowed for one attempt: its request body, its
/// response, the upstream buffer, the head sent upstream (kept across retries), a scratch
/// buffer (the rewritten response head, chunk framing), the lines admission adds to the
/// response, and the body kept for sending again after a refused HTTP/2 stream.
pub struct H2Side<'a> {
    pub body: &'a mut RecvStream,
    pub respond: &'a mut Respond,
    pub up_buf: &'a mut Buf,
    pub head: &'a mut Vec<u8>,
    pub out: &'a mut Vec<u8>,
    pub extra: &'a [u8],
    pub replay: &'a mut ChunkReplay,
}

/// One attempt; `retry_status` is asked when a final head arrives whether the route retries on
/// its status (and grants the retry at once); what moved is added to `ex`.
pub async fn attempt<U: Wire>(
    c: H2Side<'_>,
    req: &Request,
    up: &mut U,
    limits: &Limits<'_>,
    mut retry_status: impl FnMut(u16) -> bool,
    ex: &mut Tally,
) -> Result<Done, Failed> {
    c.up_buf.consume(c.up_buf.len());
    write_vec(up, c.head, limits.upstream)
        .await
        .map_err(Failed::sending)?;
    ex.bytes_in += send_body(c.body, up, c.out, req.body, limits).await?;
    let sent_at = Instant::now();

    // --- response head, after any 1xx ---
    let deadline = sent_at + limits.upstream;
    let mut seen_bytes = false;
    let resp = loop {
        let ctx = ResponseCtx {
            head_request: req.method == Method::Head,
            client_http10: false,
            client_keep_alive: true,
            upgrade_requested: false,
            remove: limits.remove,
            extra: c.extra,
        };
        match response::process(c.up_buf.data(), c.up_buf.is_full(), ctx, c.out) {
            Ok(Head::Complete(r)) => {
                c.up_buf.consume(r.head_len);
                match r.kind {
                    Kind::Interim | Kind::Switching => seen_bytes = true,
                    Kind::Final if retry_status(r.status) => {
                        ex.upstream_time = Some(sent_at.elapsed());
                        return Ok(Done::Retried(r.status));
                    }
                    Kind::Final => break r,
                }
            }
            Ok(Head::Partial) => {
                // A client that resets its stream meanwhile ends the wait at once; the
                // connection, a request still on it, closes (the lease is not released).
                let cap = c.up_buf.v.capacity();
                let respond = &mut *c.respond;
                let read = monoio::select! {
                    r = read_more_until(up, c.up_buf, deadline) => Some(r),
                    _ = poll_fn(|cx| respond.poll_reset(cx)) => None,
                };
                let Some(read) = read else {
                    // The abandoned read kept the buffer it was lent.
                    *c.up_buf = Buf::with_capacity(cap);
                    return Err(Failed::client_gone());
                };
                if let Err(e) = read {
                    let mut f = Failed::sending(e);
                    f.retryable &= !seen_bytes && c.up_buf.is_empty();
                    return Err(f);
                }
            }
            Err(_) => return Err(Failed::before(UpstreamError::Malformed)),
        }
    };
    ex.upstream_time = Some(sent_at.elapsed());
    ex.status = resp.status;
    let (head, _) =
        translate::response(c.out).map_err(|_| Failed::before(UpstreamError::Malformed))?;
    let bodiless = matches!(resp.body, BodyFraming::None | BodyFraming::Length(0));
    c.respond
        .send_head(head, bodiless)
        .map_err(|e| Failed::answered(client_io(e)))?;
    ex.bytes_out += c.out.len() as u64;

    // --- response body back to the client ---
    let mut trailers = None;
    let relayed = match resp.body {
        BodyFraming::None | BodyFraming::Length(0) => Ok(0),
        BodyFraming::Length(n) => length(up, c.up_buf, c.respond, n, limits.body).await,
        BodyFraming::Chunked => dechunk(up, c.up_buf, c.respond, &mut trailers, limits.body).await,
        BodyFraming::UntilClose => until_close(up, c.up_buf, c.respond, limits.body).await,
    };
    ex.bytes_out += relayed?;
    match trailers {
        Some(t) => c.respond.send_trailers(t),
        None => c.respond.finish(),
    }
    .map_err(|e| Failed::answered(client_io(e)))?;
    Ok(Done::Response {
        status: resp.status,
        reusable: resp.upstream_reusable && c.up_buf.is_empty(),
        close_client: false,
    })
}

/// Streams the request body upstream by the framing the synthesized head announced: as is for a
/// length, chunk-framed otherwise (through `scratch`, one write per DATA frame). Each frame's
/// window goes back to the client once its bytes are written. Returns the body bytes.
async fn send_body<U: Wire>(
    body: &mut RecvStream,
    up: &mut U,
    scratch: &mut Vec<u8>,
    framing: BodyFraming,
    limits: &Limits<'_>,
) -> Result<u64, Failed> {
    let chunked = match framing {
        BodyFraming::None | BodyFraming::Length(0) => return Ok(0),
        BodyFraming::Length(_) => false,
        _ => true,
    };
    let idle = limits.body;
    let mut total = 0u64;
    while let Some(chunk) = h2io::next_chunk(body, idle).await.map_err(|e| match e {
        IoFail::TimedOut => Failed::before(ClientError::BodyTimeout),
        e => Failed::before(client_io(e)),
    })? {
        let n = chunk.len();
        total += n as u64;
        if total > limits.max_body {
            return Err(Failed::before(ClientError::TooLarge));
        }
        if n == 0 {
            continue;
        }
        let written = if chunked {
            scratch.clear();
            let _ = std::io::Write::write_fmt(scratch, format_args!("{n:x}\r\n"));
            scratch.extend_from_slice(&chunk);
            scratch.extend_from_slice(b"\r\n");
            write_vec(up, scratch, idle).await
        } else {
            write_bytes(up, chunk, idle).await
        };
        written.map_err(|e| Failed::before(upstream_io(e)))?;
        h2io::release(body, n);
    }
    if chunked {
        // The client's trailers (if any) end the chunked body.
        let trailers = h2io::trailers(body, idle).await.map_err(|e| match e {
            IoFail::TimedOut => Failed::before(ClientError::BodyTimeout),
            e => Failed::before(client_io(e)),
        })?;
        scratch.clear();
        h2up::chunked_end(trailers.as_ref(), scratch);
        write_vec(up, scratch, idle)
            .await
            .map_err(|e| Failed::before(upstream_io(e)))?;
    }
    Ok(total)
}

/// Writes one DATA frame's bytes as they came (no copy).
async fn write_bytes<U: Wire>(up: &mut U, b: bytes::Bytes, idle: Duration) -> Result<(), IoFail> {
    match timeout(idle, up.write_all(b)).await {
        Err(_) => Err(IoFail::TimedOut),
        Ok((Ok(_), _)) => Ok(()),
        Ok((Err(e), _)) => Err(IoFail::Err(e.kind())),
    }
}

/// A relay step failed on the upstream's side (read) or the client's (send).
fn read_failed(e: IoFail) -> Failed {
    Failed::answered(upstream_io(e))
}

fn send_failed(e: IoFail) -> Failed {
    Failed::answered(client_io(e))
}

/// Relays exactly `n` body bytes: what `buf` holds, then from `up`.
async fn length<U: Wire>(
    up: &mut U,
    buf: &mut Buf,
    out: &mut Respond,
    n: u64,
    idle: Duration,
) -> Result<u64, Failed> {
    let mut left = n;
    loop {
        let take = (buf.len() as u64).min(left) as usize;
        if take > 0 {
            left -= take as u64;
            out.send_data(&buf.data()[..take], left == 0, idle)
                .await
                .map_err(send_failed)?;
            buf.consume(take);
        }
        if left == 0 {
            return Ok(n);
        }
        read_more_within(up, buf, idle).await.map_err(read_failed)?;
    }
}

/// Relays a chunked body's payload, validating its framing; stops at the end of the trailers,
/// which are left in `trailers` for the caller to send.
async fn dechunk<U: Wire>(
    up: &mut U,
    buf: &mut Buf,
    out: &mut Respond,
    trailers: &mut Option<http::HeaderMap>,
    idle: Duration,
) -> Result<u64, Failed> {
    let mut dec = Decoder::default();
    let mut total = 0u64;
    let mut section = Vec::new();
    loop {
        let mut consumed = 0;
        while consumed < buf.len() && !dec.is_done() {
            let in_trailers = dec.in_trailers();
            let step = dec
                .feed(&buf.data()[consumed..])
                .map_err(|_| Failed::answered(UpstreamError::Malformed.into()))?;
            if in_trailers {
                section.extend_from_slice(&buf.data()[consumed..consumed + step.consumed]);
                consumed += step.consumed;
                continue;
            }
            if !step.data.is_empty() {
                let data = &buf.data()[consumed + step.data.start..consumed + step.data.end];
                total += data.len() as u64;
                out.send_data(data, false, idle)
                    .await
                    .map_err(send_failed)?;
            }
            consumed += step.consumed;
        }
        buf.consume(consumed);
        if dec.is_done() {
            *trailers = h2up::trailers(&section)
                .map_err(|_| Failed::answered(UpstreamError::Malformed.into()))?;
            return Ok(total);
        }
        read_more_within(up, buf, idle).await.map_err(read_failed)?;
    }
}

/// Relays everything until the upstream closes.
async fn until_close<U: Wire>(
    up: &mut U,
    buf: &mut Buf,
    out: &mut Respond,
    idle: Duration,
) -> Result<u64, Failed> {
    let mut total = 0u64;
    loop {
        let n = buf.len();
        if n > 0 {
            total += n as u64;
            out.send_data(buf.data(), false, idle)
                .await
                .map_err(send_failed)?;
            buf.consume(n);
        }
        match read_more_within(up, buf, idle).await {
            Ok(_) => {}
            Err(IoFail::Eof) => return Ok(total),
            Err(e) => return Err(read_failed(e)),
        }
    }
}
