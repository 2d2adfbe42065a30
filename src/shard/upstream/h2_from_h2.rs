//! The HTTP/2 client side of one attempt whose client is an HTTP/2 stream (a sibling of
//! h1_from_h2.rs): the rewritten head goes out as an HTTP/2 request on a leased upstream stream;
//! then both directions run at once (bidirectional streaming, as gRPC needs): the client's DATA
//! goes up chunk by chunk (no copy; each chunk's window given back to the client only once the
//! upstream's windows took it) and its trailers as trailers, while the response head goes
//! through the usual rewrite (`response::process`) to the client, then its DATA within the
//! client's windows (each chunk's upstream window released once the client's took it) and its
//! trailers. Both directions stay bounded by the windows: a slow reader slows its writer. The
//! body taken from the client is kept (replay.rs), up to its bound, so
//! a stream the upstream refused unprocessed can be sent again with it. Shard
//! thread, on the client stream's task.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{RecvStream, SendStream};

use super::attempt::{client_io, Done, Failed, Limits, Tally};
use super::grpc_web;
use super::h1_from_h2::H2Side;
use super::h2pool::H2Lease;
use super::h2stream;
use super::replay::ChunkReplay;
use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::http::grpc_web::{TextDecoder, Web};
use crate::http::request::{Method, Request};
use crate::http::response::{self, ResponseCtx};
use crate::http::{h2 as translate, h2up, Head};
use crate::shard::h2io::{self, Respond};
use crate::shard::io::{Buf, IoFail};

/// One attempt on `lease`; `retry_status` is asked when the response head arrives whether the
/// route retries on its status (and grants the retry at once); what moved is added to `ex`.
pub async fn attempt(
    c: H2Side<'_>,
    req: &Request,
    lease: &mut H2Lease,
    limits: &Limits<'_>,
    retry_status: impl FnMut(u16) -> bool,
    ex: &mut Tally,
) -> Result<Done, Failed> {
    // A retry after a refused stream sends what the refused attempts took first.
    let bodiless = c.body.is_end_stream() && c.replay.is_empty();
    let (resp, mut send, web) =
        h2stream::open(lease, c.head, req.te_trailers, bodiless, limits.upstream).await?;
    let mut sent = 0u64;
    let replay = c.replay;
    let (result, body_done) = {
        let mut sending = pin!(send_body(
            c.body,
            &mut send,
            &mut *replay,
            limits.max_body,
            limits.body,
            &mut sent,
            grpc_web::decoder(web),
        ));
        let mut receiving = pin!(receive(
            resp,
            web,
            c.respond,
            c.up_buf,
            c.out,
            c.extra,
            req,
            limits,
            retry_status,
            bodiless,
            ex
        ));
        let mut body_done = bodiless;
        // The request body moves while the response comes back. A failure on the client's side
        // ends the attempt; one on the upstream's side is left for the response to report (a
        // refused or reset stream, an early final answer).
        let result = poll_fn(|cx| {
            if !body_done {
                if let Poll::Ready(r) = sending.as_mut().poll(cx) {
                    body_done = true;
                    if let Err(f) = r {
                        if matches!(f.error, ProxyError::Client(_)) {
                            return Poll::Ready(Err(f));
                        }
                    }
                }
            }
            receiving.as_mut().poll(cx)
        })
        .await;
        (result, body_done)
    };
    if !body_done || result.is_err() {
        send.send_reset(h2::Reason::CANCEL);
    }
    match result {
        // Refused unprocessed: sent again when all of the body taken so far was kept (and its
        // bytes counted then).
        Err(mut f) if !f.answered && f.error == ProxyError::Upstream(UpstreamError::Refused) => {
            f.retryable = replay.replayable();
            if !f.retryable {
                ex.bytes_in += sent;
            }
            Err(f)
        }
        r => {
            ex.bytes_in += sent;
            r
        }
    }
}

/// Streams the client's DATA and trailers up, after what refused attempts took (`replay`),
/// keeping what it takes there; `sent` counts the body bytes.
async fn send_body(
    body: &mut RecvStream,
    send: &mut SendStream<Bytes>,
    replay: &mut ChunkReplay,
    max_body: u64,
    idle: Duration,
    sent: &mut u64,
    mut text: Option<TextDecoder>,
) -> Result<(), Failed> {
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
    let bad = |_| Failed::before(ClientError::BadBody);
    let kept = replay.chunks.len();
    for i in 0..kept {
        let chunk = replay.chunks[i].clone();
        *sent += chunk.len() as u64;
        let chunk = grpc_web::up(&mut text, chunk).map_err(bad)?;
        let last = i + 1 == kept
            && replay.ended
            && replay.trailers.is_none()
            && text.as_ref().is_none_or(|t| t.finish().is_ok());
        h2io::send_bytes(send, chunk, last, idle)
            .await
            .map_err(send_failed)?;
    }
    // Windows a refused attempt took and never gave back.
    if replay.unreleased > 0 {
        h2io::release(body, replay.unreleased);
        replay.unreleased = 0;
    }
    if replay.ended {
        if text.as_ref().is_some_and(|t| t.finish().is_err()) {
            return Err(Failed::before(ClientError::BadBody));
        }
        return match replay.trailers.clone() {
            Some(t) => send
                .send_trailers(t)
                .map_err(|e| h2stream::before(&e, false)),
            None if kept == 0 => h2io::send_bytes(send, Bytes::new(), true, idle)
                .await
                .map_err(send_failed),
            None => Ok(()),
        };
    }
    while let Some(chunk) = h2io::next_chunk(body, idle).await.map_err(read_failed)? {
        let n = chunk.len();
        replay.keep(&chunk);
        *sent += n as u64;
        if *sent > max_body {
            return Err(Failed::before(ClientError::TooLarge));
        }
        let chunk = grpc_web::up(&mut text, chunk).map_err(bad)?;
        // The client's last DATA carries END_STREAM upstream too: an extra empty frame after a
        // small non-final one costs the upstream's small-frame budget (h2 servers GOAWAY with
        // ENHANCE_YOUR_CALM "too_many_data_frames" under load) and a frame per request.
        let last = body.is_end_stream() && text.as_ref().is_none_or(|t| t.finish().is_ok());
        replay.ended = last;
        h2io::send_bytes(send, chunk, last, idle)
            .await
            .map_err(send_failed)?;
        h2io::release(body, n);
        replay.unreleased -= n;
        if last {
            return Ok(());
        }
    }
    if text.as_ref().is_some_and(|t| t.finish().is_err()) {
        return Err(Failed::before(ClientError::BadBody));
    }
    let t = h2io::trailers(body, idle).await.map_err(read_failed)?;
    replay.ended = true;
    if replay.replayable() {
        replay.trailers.clone_from(&t);
    }
    match t {
        Some(t) => send
            .send_trailers(t)
            .map_err(|e| h2stream::before(&e, false)),
        None => h2io::send_bytes(send, Bytes::new(), true, idle)
            .await
            .map_err(send_failed),
    }
}

/// The response: its head through the usual rewrite to the client, then its DATA and trailers.
/// A client that resets its stream meanwhile ends it at once.
#[allow(clippy::too_many_arguments)] // the client side's parts, borrowed apart from its body
async fn receive(
    resp: ResponseFuture,
    web: Option<Web>,
    respond: &mut Respond,
    up_buf: &mut Buf,
    out: &mut Vec<u8>,
    extra: &[u8],
    req: &Request,
    limits: &Limits<'_>,
    mut retry_status: impl FnMut(u16) -> bool,
    replayable: bool,
    ex: &mut Tally,
) -> Result<Done, Failed> {
    let idle = limits.body;
    let sent_at = std::time::Instant::now();
    let deadline = monoio::time::Instant::now() + limits.upstream;
    let resp = monoio::select! {
        r = h2stream::head(resp, deadline, replayable) => r?,
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return Err(Failed::client_gone()),
    };
    ex.upstream_time = Some(sent_at.elapsed());
    let status = resp.status().as_u16();
    if retry_status(status) {
        return Ok(Done::Retried(status));
    }
    ex.status = status;

    let (mut parts, mut body) = resp.into_parts();
    let bridged = grpc_web::response(web, &mut parts.headers);
    if bridged.is_some() {
        ex.grpc_status = grpc_web::status(Some(&parts.headers));
    }
    up_buf.consume(up_buf.len());
    h2up::response_head(&parts, body.is_end_stream(), &mut up_buf.v);
    let ctx = ResponseCtx {
        head_request: req.method == Method::Head,
        client_http10: false,
        client_keep_alive: true,
        upgrade_requested: false,
        remove: limits.remove,
        extra,
    };
    match response::process(up_buf.data(), true, ctx, out) {
        Ok(Head::Complete(_)) => {}
        _ => return Err(Failed::before(UpstreamError::Malformed)),
    }
    up_buf.consume(up_buf.len());
    let (head, _) =
        translate::response(out).map_err(|_| Failed::before(UpstreamError::Malformed))?;
    let end = body.is_end_stream() || req.method == Method::Head;
    respond
        .send_head(head, end)
        .map_err(|e| Failed::answered(client_io(e)))?;
    ex.bytes_out += out.len() as u64;
    if !end {
        let mut ended = false;
        loop {
            let next = monoio::select! {
                r = h2stream::next(&mut body, idle) => r?,
                _ = poll_fn(|cx| respond.poll_reset(cx)) => return Err(Failed::client_gone()),
            };
            let Some(chunk) = next else { break };
            let n = chunk.len();
            let chunk = match bridged {
                Some(web) => grpc_web::down(web, chunk),
                None => chunk,
            };
            ex.bytes_out += chunk.len() as u64;
            // The upstream's last DATA ends the client's stream too (no empty frame after it).
            let last = bridged.is_none() && body.is_end_stream();
            respond
                .send_bytes(chunk, last, idle)
                .await
                .map_err(|e| Failed::answered(client_io(e)))?;
            h2stream::release(&mut body, n);
            if last {
                ended = true;
                break;
            }
        }
        let t = if ended {
            None
        } else {
            h2stream::trailers(&mut body, idle).await?
        };
        let sent = match (bridged, t) {
            (Some(web), t) => {
                if let Some(code) = grpc_web::status(t.as_ref()) {
                    ex.grpc_status = Some(code);
                }
                let frame = grpc_web::trailer_frame(web, t.as_ref());
                ex.bytes_out += frame.len() as u64;
                respond.send_bytes(frame, true, idle).await
            }
            (None, Some(t)) => respond.send_trailers(t),
            (None, None) => respond.finish(),
        };
        sent.map_err(|e| Failed::answered(client_io(e)))?;
    }
    Ok(Done::Response {
        status,
        reusable: true,
        close_client: false,
    })
}
