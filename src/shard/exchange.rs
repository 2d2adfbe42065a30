//! One attempt on one upstream connection: send the rewritten head (with the body's first bytes
//! when small) and stream the body by its framing, read the response head (1xx relayed, 101
//! hands over to the tunnel, a retryable status handed back unsent), then stream the body back.
//! Shard thread, on the connection task that owns the client.

use std::time::Duration;

use monoio::net::TcpStream;
use monoio::time::Instant;

use super::body::{self, RelayError};
use super::client::Client;
use super::exchanged::{Ctx, Exchanged};
use super::expect::{self, Continue, WaitError};
use super::io::{
    read_at_most_until, read_more_until, write_buf, write_static, write_vec, Buf, IoFail,
};
use super::{splice, Shard};
use crate::config::Timeouts;
use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::http::request::{Method, Request};
use crate::http::response::{self, Kind, ResponseCtx};
use crate::http::{canned, BodyFraming, Head};

/// Bytes of body appended to a head so both go out in one write. Also the most a response head
/// read takes when splice is on: what comes with the head goes out with it, the rest is spliced.
const COALESCE_LIMIT: usize = 16 * 1024;

/// The route's effective timeouts and limits for this exchange.
pub struct Limits<'t> {
    pub connect: Option<Duration>,
    pub upstream: Duration,
    pub body: Duration,
    pub max_body: u64,
    /// Response headers the route removes or replaces.
    pub remove: &'t [String],
}

impl<'t> Limits<'t> {
    pub fn of(ctx: &Ctx<'t>, base: &Timeouts) -> Limits<'t> {
        let t = &ctx.cfg.timeouts;
        Limits {
            connect: t.connect,
            upstream: t.upstream.unwrap_or(base.upstream),
            body: t.body.unwrap_or(base.body),
            max_body: ctx.cfg.max_body.unwrap_or(u64::MAX),
            remove: &ctx.route.response_drop,
        }
    }
}

pub enum Done {
    Response {
        status: u16,
        reusable: bool,
        close_client: bool,
    },
    Switched,
    /// A final status the route retries on, and the retry was granted (attempt and budget
    /// spent) when it arrived; nothing was sent to the client.
    Retried(u16),
}

/// An attempt that failed; `answered` says whether the client already has response bytes.
pub struct Failed {
    pub error: ProxyError,
    pub answered: bool,
    /// Failed on the connection before any response byte: safe to resend if idempotent.
    pub retryable: bool,
}

impl Failed {
    pub fn before(e: impl Into<ProxyError>) -> Failed {
        Failed {
            error: e.into(),
            answered: false,
            retryable: false,
        }
    }

    fn answered(e: ProxyError) -> Failed {
        Failed {
            error: e,
            answered: true,
            retryable: false,
        }
    }
}

pub async fn attempt(
    c: &mut Client,
    req: &Request,
    up: &mut TcpStream,
    limits: &Limits<'_>,
    shard: &Shard,
    mut retry_status: impl FnMut(u16) -> bool,
    ex: &mut Exchanged,
) -> Result<Done, Failed> {
    let retryable = |e: IoFail| Failed {
        error: ProxyError::Upstream(match e {
            IoFail::TimedOut => UpstreamError::ResponseTimeout,
            IoFail::Eof => UpstreamError::Closed,
            IoFail::Err(k) => UpstreamError::Io(k),
        }),
        answered: false,
        retryable: e != IoFail::TimedOut,
    };

    // --- request: head (with the body's first bytes when small), then the rest by its framing ---
    c.up_buf.consume(c.up_buf.len());
    // The head is kept in `c.head` across attempts of a retry: write a copy's worth by length.
    let head_len = c.head.len();
    // A forwarded expectation: the head goes alone, the body only after the upstream's 100.
    let left = if req.expect_forwarded {
        req.body
    } else {
        coalesce(&mut c.head, &mut c.buf, req.body)
    };
    // Body bytes that go out with the head were read from the client like the rest.
    ex.bytes_in += (c.head.len() - head_len) as u64;
    let sent = write_vec(up, &mut c.head, limits.upstream).await;
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
            write_static(&mut c.stream, canned::CONTINUE, limits.body)
                .await
                .map_err(|e| Failed::before(client_io(e)))?;
            ex.bytes_out += canned::CONTINUE.len() as u64;
        }
        let relayed = match left {
            BodyFraming::Length(n) => {
                body::length(&mut c.stream, &mut c.buf, up, n, limits.body).await
            }
            _ => {
                body::chunked(
                    &mut c.stream,
                    &mut c.buf,
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
    let splice_at = shard.base.shards.splice_threshold;
    let deadline = sent_at + limits.upstream;
    let mut seen_bytes = false;
    let resp = loop {
        // Asked when the head arrives: a drain that started meanwhile still closes this connection.
        let ctx = ResponseCtx {
            head_request: req.method == Method::Head,
            client_http10: req.http10,
            // After an early answer the client's unsent body is still due: close.
            client_keep_alive: req.keep_alive && !early && !shard.drain.is_draining(),
            upgrade_requested: req.upgrade,
            remove: limits.remove,
            extra: &c.scratch.extra,
        };
        let mut out = std::mem::take(&mut c.out);
        let parsed = response::process(c.up_buf.data(), c.up_buf.is_full(), ctx, &mut out);
        c.out = out;
        match parsed {
            Ok(Head::Complete(r)) => {
                c.up_buf.consume(r.head_len);
                match r.kind {
                    Kind::Interim => {
                        seen_bytes = true;
                        if !c.out.is_empty() {
                            write_vec(&mut c.stream, &mut c.out, limits.body)
                                .await
                                .map_err(|e| Failed::before(client_io(e)))?;
                            ex.bytes_out += c.out.len() as u64;
                        }
                    }
                    Kind::Switching => {
                        ex.upstream_time = Some(sent_at.elapsed());
                        ex.status = 101;
                        write_vec(&mut c.stream, &mut c.out, limits.body)
                            .await
                            .map_err(|e| Failed::answered(client_io(e)))?;
                        let n = c.up_buf.len();
                        write_buf(&mut c.stream, &mut c.up_buf, n, limits.body)
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
                let read = if splice_at > 0 && c.up_buf.is_empty() {
                    read_at_most_until(up, &mut c.up_buf, deadline, COALESCE_LIMIT).await
                } else {
                    read_more_until(up, &mut c.up_buf, deadline).await
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
    let left = coalesce(&mut c.out, &mut c.up_buf, resp.body);
    ex.bytes_out += c.out.len() as u64;
    write_vec(&mut c.stream, &mut c.out, limits.body)
        .await
        .map_err(|e| Failed::answered(client_io(e)))?;
    let fill = shard.base.shards.upstream_buffer_size;
    let relayed = match left {
        BodyFraming::None | BodyFraming::Length(0) => Ok(0),
        // Large: the part not read yet goes upstream -> pipe -> client, never through `up_buf`.
        BodyFraming::Length(n)
            if splice_at > 0 && n.saturating_sub(c.up_buf.len() as u64) >= splice_at =>
        {
            splice::length(up, &mut c.up_buf, &mut c.stream, n, limits.body, fill).await
        }
        BodyFraming::Length(n) => {
            body::length(up, &mut c.up_buf, &mut c.stream, n, limits.body).await
        }
        BodyFraming::Chunked => {
            body::chunked(
                up,
                &mut c.up_buf,
                &mut c.stream,
                resp.dechunk,
                u64::MAX,
                limits.body,
            )
            .await
        }
        BodyFraming::UntilClose if splice_at > 0 => {
            splice::until_close(up, &mut c.up_buf, &mut c.stream, limits.body, fill).await
        }
        BodyFraming::UntilClose => {
            body::until_close(up, &mut c.up_buf, &mut c.stream, limits.body).await
        }
    };
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

fn client_io(e: IoFail) -> ProxyError {
    ProxyError::Client(match e {
        IoFail::TimedOut => ClientError::BodyTimeout,
        IoFail::Eof => ClientError::Io(std::io::ErrorKind::UnexpectedEof),
        IoFail::Err(k) => ClientError::Io(k),
    })
}

fn upstream_io(e: IoFail) -> ProxyError {
    ProxyError::Upstream(match e {
        IoFail::TimedOut => UpstreamError::BodyTimeout,
        IoFail::Eof => UpstreamError::Closed,
        IoFail::Err(k) => UpstreamError::Io(k),
    })
}
