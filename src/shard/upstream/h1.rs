//! The HTTP/1.1 client side of one attempt on one upstream connection: send the rewritten head
//! (with the body's first bytes when small) and stream the body by its framing, read the response
//! head (1xx relayed, 101 hands over to the tunnel, a retryable status handed back unsent), then
//! stream the body back to the client's side (relay.rs), spliced when both ends are plain TCP.
//! Generic over both streams (`Wire`). Shard thread, on the task that owns the client.

use monoio::time::Instant;

use super::attempt::{client_io, upstream_io, Done, Failed, Limits, Tally};
use super::body::{self, RelayError};
use super::expect::{self, Continue, WaitError};
use super::relay::Relay;
use super::splice;
use crate::error::{ClientError, UpstreamError};
use crate::http::request::{Method, Request};
use crate::http::response::{self, Kind, ResponseCtx};
use crate::http::{canned, BodyFraming, Head};
use crate::shard::io::{
    read_at_most_until, read_more_until, write_buf, write_static, write_vec, Buf, IoFail, Wire,
};

/// Bytes of body appended to a head so both go out in one write. Also the most a response head
/// read takes when splice is on: what comes with the head goes out with it, the rest is spliced.
const COALESCE_LIMIT: usize = 16 * 1024;

/// One attempt: `retry_status` is asked when a final head arrives whether the route retries on
/// its status (and grants the retry at once); what moved is added to `ex`.
pub async fn attempt<S: Wire, U: Wire>(
    mut relay: Relay<'_, S>,
    req: &Request,
    up: &mut U,
    limits: &Limits<'_>,
    mut retry_status: impl FnMut(u16) -> bool,
    ex: &mut Tally,
) -> Result<Done, Failed> {
    let c = &mut relay;
    let retryable = Failed::sending;

    // --- request: head (with the body's first bytes when small), then the rest by its framing ---
    c.up_buf.consume(c.up_buf.len());
    // The head is kept in `c.head` across attempts of a retry: write a copy's worth by length.
    let head_len = c.head.len();
    // A forwarded expectation: the head goes alone, the body only after the upstream's 100.
    let left = if req.expect_forwarded {
        req.body
    } else {
        coalesce(&mut *c.head, &mut *c.buf, req.body)
    };
    // Body bytes that go out with the head were read from the client like the rest.
    ex.bytes_in += (c.head.len() - head_len) as u64;
    let sent = write_vec(up, &mut *c.head, limits.upstream).await;
    c.head.truncate(head_len);
    sent.map_err(retryable)?;
    let mut early = false;
    if req.expect_forwarded {
        let waited =
            expect::await_continue(c, up, req.upgrade, limits.body, &mut ex.bytes_out).await;
        early = waited.map_err(|e| match e {
            WaitError::Upstream(e) => retryable(e),
            WaitError::Client(e) => Failed::before(client_io(e)),
            WaitError::Malformed => Failed::before(UpstreamError::Malformed),
        })? == Continue::Final;
    }
    if !early && !matches!(left, BodyFraming::None | BodyFraming::Length(0)) {
        if req.expect_continue && !req.expect_forwarded {
            write_static(&mut *c.stream, canned::CONTINUE, limits.body)
                .await
                .map_err(|e| Failed::before(client_io(e)))?;
            ex.bytes_out += canned::CONTINUE.len() as u64;
        }
        let relayed = match left {
            BodyFraming::Length(n) => {
                body::length(&mut *c.stream, &mut *c.buf, up, n, limits.body).await
            }
            _ => {
                body::chunked(
                    &mut *c.stream,
                    &mut *c.buf,
                    up,
                    false,
                    limits.max_body,
                    limits.body,
                )
                .await
            }
        };
        ex.bytes_in += relayed.map_err(|e| match e {
            RelayError::Read(IoFail::TimedOut) => Failed::before(ClientError::BodyTimeout),
            RelayError::Read(e) => Failed::before(client_io(e)),
            RelayError::Framing => Failed::before(ClientError::BadBody),
            RelayError::TooLarge => Failed::before(ClientError::TooLarge),
            RelayError::Write(e) => Failed::before(upstream_io(e)),
        })?;
    }
    let sent_at = Instant::now();

    // --- response head, after any 1xx ---
    // With splice on, a head read starting on an empty buffer takes at most what goes out with the
    // head in one write: the rest of a large body stays in the socket for splice.
    let splicing = limits.splice_at > 0 && up.as_tcp().is_some() && c.stream.as_tcp().is_some();
    let deadline = sent_at + limits.upstream;
    let mut seen_bytes = false;
    let resp = loop {
        // Asked when the head arrives: a drain that started meanwhile still closes this connection.
        let ctx = ResponseCtx {
            head_request: req.method == Method::Head,
            client_http10: req.http10,
            // After an early answer the client's unsent body is still due: close.
            client_keep_alive: req.keep_alive && !early && !limits.drain.is_draining(),
            upgrade_requested: req.upgrade,
            remove: limits.remove,
            extra: c.extra,
        };
        let mut out = std::mem::take(c.out);
        let parsed = response::process(c.up_buf.data(), c.up_buf.is_full(), ctx, &mut out);
        *c.out = out;
        match parsed {
            Ok(Head::Complete(r)) => {
                c.up_buf.consume(r.head_len);
                match r.kind {
                    Kind::Interim => {
                        seen_bytes = true;
                        if !c.out.is_empty() {
                            write_vec(&mut *c.stream, &mut *c.out, limits.body)
                                .await
                                .map_err(|e| Failed::before(client_io(e)))?;
                            ex.bytes_out += c.out.len() as u64;
                        }
                    }
                    Kind::Switching => {
                        ex.upstream_time = Some(sent_at.elapsed());
                        ex.status = 101;
                        write_vec(&mut *c.stream, &mut *c.out, limits.body)
                            .await
                            .map_err(|e| Failed::answered(client_io(e)))?;
                        let n = c.up_buf.len();
                        write_buf(&mut *c.stream, &mut *c.up_buf, n, limits.body)
                            .await
                            .map_err(|e| Failed::answered(client_io(e)))?;
                        return Ok(Done::Switched);
                    }
                    // Asked when the head arrives, so that nothing spends the budget between
                    // the grant and the retry; refused, this answer is relayed like any other.
                    Kind::Final if retry_status(r.status) => {
                        ex.upstream_time = Some(sent_at.elapsed());
                        return Ok(Done::Retried(r.status));
                    }
                    Kind::Final => break r,
                }
            }
            Ok(Head::Partial) => {
                let read = if splicing && c.up_buf.is_empty() {
                    read_at_most_until(up, &mut *c.up_buf, deadline, COALESCE_LIMIT).await
                } else {
                    read_more_until(up, &mut *c.up_buf, deadline).await
                };
                if let Err(e) = read {
                    let mut f = retryable(e);
                    f.retryable &= !seen_bytes && c.up_buf.is_empty();
                    return Err(f);
                }
            }
            Err(_) => return Err(Failed::before(UpstreamError::Malformed)),
        }
    };
    ex.upstream_time = Some(sent_at.elapsed());
    ex.status = resp.status;

    // --- response body back to the client ---
    let left = coalesce(&mut *c.out, &mut *c.up_buf, resp.body);
    ex.bytes_out += c.out.len() as u64;
    write_vec(&mut *c.stream, &mut *c.out, limits.body)
        .await
        .map_err(|e| Failed::answered(client_io(e)))?;
    let relayed = relay_body(up, c, left, resp.dechunk, limits).await;
    ex.bytes_out += relayed.map_err(|e| match e {
        RelayError::Read(e) => Failed::answered(upstream_io(e)),
        RelayError::Framing | RelayError::TooLarge => {
            Failed::answered(UpstreamError::Malformed.into())
        }
        RelayError::Write(e) => Failed::answered(client_io(e)),
    })?;
    Ok(Done::Response {
        status: resp.status,
        // An upstream that answered early may still wait for the body it was announced.
        reusable: resp.upstream_reusable && c.up_buf.is_empty() && !early,
        close_client: resp.close_client,
    })
}

/// Relays the rest of a response body to the client: spliced when it is large (or runs until the
/// upstream closes) and both ends are plain TCP sockets, else through `up_buf`.
async fn relay_body<S: Wire, U: Wire>(
    up: &mut U,
    c: &mut Relay<'_, S>,
    left: BodyFraming,
    dechunk: bool,
    limits: &Limits<'_>,
) -> Result<u64, RelayError> {
    let (idle, at) = (limits.body, limits.splice_at);
    let large = match left {
        BodyFraming::Length(n) => at > 0 && n.saturating_sub(c.up_buf.len() as u64) >= at,
        BodyFraming::UntilClose => at > 0,
        _ => false,
    };
    if large {
        if let (Some(u), Some(s)) = (up.as_tcp(), c.stream.as_tcp()) {
            // The part not read yet goes upstream -> pipe -> client, never through `up_buf`.
            return match left {
                BodyFraming::Length(n) => {
                    splice::length(u, c.up_buf, s, n, idle, limits.fill).await
                }
                _ => splice::until_close(u, c.up_buf, s, idle, limits.fill).await,
            };
        }
    }
    match left {
        BodyFraming::None | BodyFraming::Length(0) => Ok(0),
        BodyFraming::Length(n) => body::length(up, c.up_buf, c.stream, n, idle).await,
        BodyFraming::Chunked => {
            body::chunked(up, c.up_buf, c.stream, dechunk, u64::MAX, idle).await
        }
        BodyFraming::UntilClose => body::until_close(up, c.up_buf, c.stream, idle).await,
    }
}

/// Moves the first body bytes already read into the head buffer, so head and a small body go out
/// in one write; returns what is left to relay.
fn coalesce(head: &mut Vec<u8>, buf: &mut Buf, framing: BodyFraming) -> BodyFraming {
    let BodyFraming::Length(n) = framing else {
        return framing;
    };
    let take = (buf.len() as u64).min(n) as usize;
    if take > COALESCE_LIMIT {
        return framing;
    }
    head.extend_from_slice(&buf.data()[..take]);
    buf.consume(take);
    BodyFraming::Length(n - take as u64)
}

#[cfg(test)]
mod tests;
