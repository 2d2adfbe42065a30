//! One request/response exchange with an upstream, on the connection task that owns the client:
//! pick an endpoint, lease a pooled connection, send the rewritten head and stream the body, read
//! the response head (1xx relayed, 101 hands over to the tunnel), stream the body back, and return
//! the connection to the pool when it is still clean. Failures are classified by side.

use monoio::net::TcpStream;
use monoio::time::Instant;

use super::body::{self, RelayError};
use super::conn::{refuse, Client};
use super::io::{read_more_until, write_static, write_vec, Buf, IoFail};
use super::Shard;
use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::http::request::{Method, Request};
use crate::http::response::{self, Kind, ResponseCtx};
use crate::http::{canned, chunked, BodyFraming, Head};

/// What the connection task does after an exchange.
pub enum Outcome {
    /// Read the next request.
    KeepAlive,
    Close,
    /// The upstream switched protocols: tunnel bytes both ways until either side closes.
    Tunnel(TcpStream),
}

/// An exchange that failed; `answered` says whether the client already has response bytes.
struct Failed {
    error: ProxyError,
    answered: bool,
    /// Failed on a reused connection before any response byte: safe to retry if idempotent.
    retryable: bool,
}

fn before_response(e: impl Into<ProxyError>) -> Failed {
    Failed {
        error: e.into(),
        answered: false,
        retryable: false,
    }
}

/// Bytes of body appended to a head so both go out in one write.
const COALESCE_LIMIT: usize = 16 * 1024;

/// Runs one exchange. The client gets a canned error when the proxy could not get a response head.
pub async fn exchange(shard: &Shard, c: &mut Client, req: &Request) -> Outcome {
    match proxy(shard, c, req).await {
        Ok(o) => o,
        Err(f) => {
            if !f.answered {
                let status = match f.error {
                    ProxyError::Upstream(e) => e.status(),
                    ProxyError::Client(ClientError::BadBody) => 400,
                    ProxyError::Client(ClientError::BodyTimeout) => 408,
                    ProxyError::Client(ClientError::Io(_)) => 0,
                };
                if status != 0 {
                    refuse(&mut c.stream, status, shard.config.timeouts.body).await;
                }
            }
            Outcome::Close
        }
    }
}

async fn proxy(shard: &Shard, c: &mut Client, req: &Request) -> Result<Outcome, Failed> {
    c.buf.consume(req.head_len);
    if req.body == BodyFraming::Chunked && chunked::check_prefix(c.buf.data()).is_err() {
        // The framing is already broken in what arrived with the head: the upstream sees nothing.
        return Err(before_response(ClientError::BadBody));
    }
    let mut fresh_only = false;
    loop {
        let ep = shard
            .balancer
            .pick(shard.pools.len(), |_| true)
            .ok_or(before_response(UpstreamError::NoEndpoint))?;
        let pool = &shard.pools[ep];
        let mut lease = pool.acquire(fresh_only).await.map_err(before_response)?;
        let reused = lease.reused;
        match attempt(shard, c, req, lease.stream()).await {
            Ok(Done::Response {
                reusable,
                close_client,
            }) => {
                if reusable {
                    lease.release();
                }
                return Ok(if close_client {
                    Outcome::Close
                } else {
                    Outcome::KeepAlive
                });
            }
            Ok(Done::Switched) => return Ok(Outcome::Tunnel(lease.detach())),
            Err(f)
                if f.retryable
                    && reused
                    && !fresh_only
                    && req.method.is_idempotent()
                    && req.body == BodyFraming::None =>
            {
                fresh_only = true;
            }
            Err(f) => return Err(f),
        }
    }
}

enum Done {
    Response { reusable: bool, close_client: bool },
    Switched,
}

async fn attempt(
    shard: &Shard,
    c: &mut Client,
    req: &Request,
    up: &mut TcpStream,
) -> Result<Done, Failed> {
    let t = &shard.config.timeouts;
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
    let left = coalesce(&mut c.head, &mut c.buf, req.body);
    write_vec(up, &mut c.head, t.upstream)
        .await
        .map_err(retryable)?;
    if !matches!(left, BodyFraming::None | BodyFraming::Length(0)) {
        if req.expect_continue && !req.http10 {
            write_static(&mut c.stream, canned::CONTINUE, t.body)
                .await
                .map_err(|e| before_response(client_io(e)))?;
        }
        let relayed = match left {
            BodyFraming::Length(n) => body::length(&mut c.stream, &mut c.buf, up, n, t.body).await,
            _ => body::chunked(&mut c.stream, &mut c.buf, up, false, t.body).await,
        };
        relayed.map_err(|e| match e {
            RelayError::Read(IoFail::TimedOut) => before_response(ClientError::BodyTimeout),
            RelayError::Read(e) => before_response(client_io(e)),
            RelayError::Framing => before_response(ClientError::BadBody),
            RelayError::Write(e) => before_response(upstream_io(e)),
        })?;
    }

    // --- response head, after any 1xx ---
    c.up_buf.consume(c.up_buf.len());
    let deadline = Instant::now() + t.upstream;
    let mut seen_bytes = false;
    let resp = loop {
        // Asked when the head arrives: a drain that started meanwhile still closes this connection.
        let ctx = ResponseCtx {
            head_request: req.method == Method::Head,
            client_http10: req.http10,
            client_keep_alive: req.keep_alive && !shard.drain.is_draining(),
            upgrade_requested: req.upgrade,
        };
        match response::process(c.up_buf.data(), c.up_buf.is_full(), ctx, &mut c.head) {
            Ok(Head::Complete(r)) => {
                c.up_buf.consume(r.head_len);
                match r.kind {
                    Kind::Interim => {
                        seen_bytes = true;
                        if !c.head.is_empty() {
                            write_vec(&mut c.stream, &mut c.head, t.body)
                                .await
                                .map_err(|e| before_response(client_io(e)))?;
                        }
                    }
                    Kind::Switching => {
                        write_vec(&mut c.stream, &mut c.head, t.body)
                            .await
                            .map_err(|e| answered(client_io(e)))?;
                        let n = c.up_buf.len();
                        super::io::write_buf(&mut c.stream, &mut c.up_buf, n, t.body)
                            .await
                            .map_err(|e| answered(client_io(e)))?;
                        return Ok(Done::Switched);
                    }
                    Kind::Final => break r,
                }
            }
            Ok(Head::Partial) => {
                if let Err(e) = read_more_until(up, &mut c.up_buf, deadline).await {
                    let mut f = retryable(e);
                    f.retryable &= !seen_bytes && c.up_buf.is_empty();
                    return Err(f);
                }
            }
            Err(_) => return Err(before_response(UpstreamError::Malformed)),
        }
    };

    // --- response body back to the client ---
    let left = coalesce(&mut c.head, &mut c.up_buf, resp.body);
    write_vec(&mut c.stream, &mut c.head, t.body)
        .await
        .map_err(|e| answered(client_io(e)))?;
    let relayed = match left {
        BodyFraming::None | BodyFraming::Length(0) => Ok(()),
        BodyFraming::Length(n) => body::length(up, &mut c.up_buf, &mut c.stream, n, t.body).await,
        BodyFraming::Chunked => {
            body::chunked(up, &mut c.up_buf, &mut c.stream, resp.dechunk, t.body).await
        }
        BodyFraming::UntilClose => {
            body::until_close(up, &mut c.up_buf, &mut c.stream, t.body).await
        }
    };
    relayed.map_err(|e| match e {
        RelayError::Read(e) => answered(upstream_io(e)),
        RelayError::Framing => answered(UpstreamError::Malformed.into()),
        RelayError::Write(e) => answered(client_io(e)),
    })?;
    Ok(Done::Response {
        reusable: resp.upstream_reusable && c.up_buf.is_empty(),
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

fn answered(e: ProxyError) -> Failed {
    Failed {
        error: e,
        answered: true,
        retryable: false,
    }
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
