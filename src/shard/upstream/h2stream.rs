//! One stream on an upstream HTTP/2 connection, the pieces both client kinds share
//! (h2_from_h1.rs, h2_from_h2.rs): open it with the request head the pipeline rewrote (as an
//! HTTP/2 request, http/h2up.rs), wait for the response head within the upstream timeout, relay
//! body chunks with their capacity released only once they went on, and say which side failed
//! and whether the upstream never processed the stream (REFUSED_STREAM, or above a GOAWAY's last
//! stream id: safe to send again on another connection, whatever the method). Shard thread, on
//! the task that carries the request.

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{Reason, RecvStream, SendStream};
use monoio::time::{timeout, timeout_at, Instant};

use super::attempt::Failed;
use super::grpc_web;
use super::h2pool::H2Lease;
use crate::error::{ProxyError, UpstreamError};
use crate::http::grpc_web::Web;
use crate::http::h2up;

/// An upstream stream error as the side that failed: not processed (`Refused`), the
/// connection's I/O, or a reset or protocol error (`Closed`).
pub fn error(e: &h2::Error) -> UpstreamError {
    let refused = e.is_remote()
        && ((e.is_reset() && e.reason() == Some(Reason::REFUSED_STREAM)) || e.is_go_away());
    if refused {
        UpstreamError::Refused
    } else if let Some(io) = e.get_io() {
        UpstreamError::Io(io.kind())
    } else {
        UpstreamError::Closed
    }
}

/// A failure before any response byte reached the client; a refused stream may be sent again
/// when `replayable` (its body, if any, can be sent once more).
pub fn before(e: &h2::Error, replayable: bool) -> Failed {
    let error = error(e);
    Failed {
        error: ProxyError::Upstream(error),
        answered: false,
        retryable: replayable && error == UpstreamError::Refused,
    }
}

/// Opens the stream: `head` is the HTTP/1.1 head the pipeline rewrote for the upstream; `end`:
/// no body follows. Waits within `limit` for the connection to take the stream. A gRPC-Web call
/// goes up as gRPC (grpc_web.rs), and its form comes back with the stream.
pub async fn open(
    lease: &mut H2Lease,
    head: &[u8],
    te_trailers: bool,
    end: bool,
    limit: Duration,
) -> Result<(ResponseFuture, SendStream<Bytes>, Option<Web>), Failed> {
    let mut req = h2up::request(head, lease.scheme, te_trailers)
        .map_err(|_| Failed::before(UpstreamError::Malformed))?;
    let web = grpc_web::request(&mut req);
    let send = &mut lease.send;
    match timeout(limit, poll_fn(|cx| send.poll_ready(cx))).await {
        Err(_) => return Err(Failed::before(UpstreamError::ResponseTimeout)),
        Ok(Err(e)) => return Err(before(&e, true)),
        Ok(Ok(())) => {}
    }
    let (resp, body) = send.send_request(req, end).map_err(|e| before(&e, true))?;
    Ok((resp, body, web))
}

/// The response head, by `deadline`; a refused stream is resendable when `replayable`.
pub async fn head(
    resp: ResponseFuture,
    deadline: Instant,
    replayable: bool,
) -> Result<http::Response<RecvStream>, Failed> {
    match timeout_at(deadline, resp).await {
        Err(_) => Err(Failed::before(UpstreamError::ResponseTimeout)),
        Ok(Err(e)) => Err(before(&e, replayable)),
        Ok(Ok(r)) => Ok(r),
    }
}

/// The next DATA chunk of the upstream's response (`None` at its end), within `idle`; its
/// capacity is released by the caller once it went on (`release`).
pub async fn next(body: &mut RecvStream, idle: Duration) -> Result<Option<Bytes>, Failed> {
    match timeout(idle, body.data()).await {
        Err(_) => Err(Failed::answered(UpstreamError::BodyTimeout.into())),
        Ok(None) => Ok(None),
        Ok(Some(Ok(b))) => Ok(Some(b)),
        Ok(Some(Err(e))) => Err(Failed::answered(error(&e).into())),
    }
}

/// The response's trailers after its DATA, within `idle`.
pub async fn trailers(
    body: &mut RecvStream,
    idle: Duration,
) -> Result<Option<http::HeaderMap>, Failed> {
    match timeout(idle, body.trailers()).await {
        Err(_) => Err(Failed::answered(UpstreamError::BodyTimeout.into())),
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(Failed::answered(error(&e).into())),
    }
}

/// Gives `n` relayed bytes back to the upstream's stream and connection windows.
pub fn release(body: &mut RecvStream, n: usize) {
    let _ = body.flow_control().release_capacity(n);
}
