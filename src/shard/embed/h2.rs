//! The HTTP/2 client side of one library attempt, on a stream of a pooled upstream connection
//! (clusters with `protocol = "h2"` or `"h2c"`: upstream/h2pool.rs, the proxy's pool): the head
//! head.rs wrote becomes an HTTP/2 request as the proxy makes it (http/h2up.rs: Host →
//! `:authority`, connection-specific fields dropped, `te: trailers` kept), opens the stream, the
//! body goes as DATA frames within the upstream's flow-control windows (the last frame carries
//! END_STREAM; a streamed body of unknown length holds one chunk back to know its last), then the
//! response head comes back within the upstream timeout. A stream the upstream refused
//! unprocessed (REFUSED_STREAM, GOAWAY) says so (`Failed::retryable`) when its body can be sent
//! again. The body is left to h2body.rs. Embedding thread.

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, SendStream};
use http::HeaderMap;
use monoio::time::{timeout, Instant};

use super::body::{next_chunk, Channel, Kind};
use super::reply::{H2Answer, Limits, Reply, Streamed};
use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::http::h2up;
use crate::shard::h2io;
use crate::shard::upstream::attempt::Failed;
use crate::shard::upstream::h2pool::H2Lease;
use crate::shard::upstream::h2stream;

/// Whether the caller's `te` lists `trailers` (a gRPC call's does): sent on as `te: trailers`.
pub fn wants_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::TE).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    })
}

/// One attempt on `lease`: `head` is the HTTP/1.1 head head.rs wrote, `body` goes after it;
/// `retry_status` is asked at the response head whether the route retries on its status.
pub async fn attempt(
    lease: &mut H2Lease,
    head: &[u8],
    te_trailers: bool,
    body: &Kind,
    t: Limits,
    mut retry_status: impl FnMut(u16) -> bool,
) -> Result<Reply, Failed> {
    // A request HTTP/2 cannot carry is refused as the proxy refuses it.
    let req = h2up::request(head, lease.scheme, te_trailers)
        .map_err(|_| Failed::before(UpstreamError::Malformed))?;
    let end = matches!(body, Kind::Empty);
    let send = &mut lease.send;
    match timeout(t.upstream, poll_fn(|cx| send.poll_ready(cx))).await {
        Err(_) => return Err(Failed::before(UpstreamError::ResponseTimeout)),
        Ok(Err(e)) => return Err(h2stream::before(&e, true)),
        Ok(Ok(())) => {}
    }
    let (resp, mut send) = send
        .send_request(req, end)
        .map_err(|e| h2stream::before(&e, true))?;
    let sent = match body {
        Kind::Empty => Ok(()),
        Kind::Full(b) => h2io::send_bytes(&mut send, b.clone(), true, t.body)
            .await
            .map_err(Streamed::Upstream),
        Kind::Stream { channel, length } => stream_body(&mut send, channel, *length, t).await,
    };
    match sent {
        // The upstream stopped taking the body (it answered early, or refused the stream): its
        // answer, or why none came, is what the response head's wait finds.
        Ok(()) | Err(Streamed::Upstream(_)) => {}
        Err(e) => {
            send.send_reset(Reason::CANCEL);
            return Err(match e {
                Streamed::TooLarge => Failed::before(ClientError::TooLarge),
                _ => Failed::before(ClientError::BadBody),
            });
        }
    }
    let replayable = !matches!(body, Kind::Stream { .. });
    let deadline = Instant::now() + t.upstream;
    let resp = h2stream::head(resp, deadline, replayable).await?;
    let status = resp.status();
    if retry_status(status.as_u16()) {
        send.send_reset(Reason::CANCEL);
        return Ok(Reply::Retried(status.as_u16()));
    }
    let (parts, recv) = resp.into_parts();
    Ok(Reply::H2(H2Answer {
        status,
        headers: parts.headers,
        recv,
        send,
    }))
}

/// Streams the caller's chunks as DATA: with a declared length, the chunk that completes it
/// carries END_STREAM; without, each chunk waits for the next (or the end) so the last one does.
async fn stream_body(
    up: &mut SendStream<Bytes>,
    channel: &std::cell::RefCell<Channel>,
    length: Option<u64>,
    t: Limits,
) -> Result<(), Streamed> {
    let idle = t.body;
    let mut total = 0u64;
    let mut held: Option<Bytes> = None;
    loop {
        let chunk = next_chunk(channel).await.map_err(|_| Streamed::Caller)?;
        let Some(chunk) = chunk else { break };
        total += chunk.len() as u64;
        if length.is_some_and(|n| total > n) {
            return Err(Streamed::Caller);
        }
        if total > t.max_body {
            return Err(Streamed::TooLarge);
        }
        if let Some(n) = length {
            send(up, chunk, total == n, idle).await?;
            if total == n {
                return Ok(());
            }
            continue;
        }
        if let Some(prev) = held.replace(chunk) {
            send(up, prev, false, idle).await?;
        }
    }
    match length {
        Some(n) if n != total => Err(Streamed::Caller),
        // Nothing carried END_STREAM yet (an empty body): an empty DATA frame does.
        _ => send(up, held.unwrap_or_default(), true, idle).await,
    }
}

async fn send(
    up: &mut SendStream<Bytes>,
    b: Bytes,
    end: bool,
    idle: Duration,
) -> Result<(), Streamed> {
    h2io::send_bytes(up, b, end, idle)
        .await
        .map_err(Streamed::Upstream)
}

/// A response body's failure as the caller's error.
pub fn body_error(f: Failed) -> super::Error {
    match f.error {
        ProxyError::Upstream(e) => e.into(),
        ProxyError::Client(_) => super::Error::UpstreamClosed,
    }
}
