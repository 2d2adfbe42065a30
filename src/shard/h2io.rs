//! I/O on one downstream HTTP/2 stream, for the HTTP/2 front-end and the upstream attempt that
//! relays to it: the response side (`Respond`: the head once, then body bytes sent only within
//! the flow-control capacity the client granted, so a slow reader slows the upstream instead of
//! growing a buffer; an unfinished response is reset) and the request body (chunks with a
//! timeout; capacity released by the caller once a chunk was forwarded). Shard thread, on the
//! stream's task.

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::Response;
use monoio::time::timeout;

use super::io::IoFail;

/// The most body bytes asked for at once (the capacity reserved per send).
const RESERVE: usize = 64 * 1024;
/// Request body bytes read and dropped after a complete early response (see `Respond::close`).
const DISCARD: usize = 256 * 1024;

/// The response side of a stream: before the head (`SendResponse`), then its body (`SendStream`).
pub struct Respond {
    head: Option<SendResponse<Bytes>>,
    body: Option<SendStream<Bytes>>,
    /// END_STREAM was sent: the response is complete.
    ended: bool,
    /// Notes the `grpc-status` of what it relays (a gRPC call's: `watch_grpc`).
    grpc: GrpcSeen,
}

/// The `grpc-status` a relayed response carried, in its head (trailers-only) or its trailers.
#[derive(Clone, Copy)]
enum GrpcSeen {
    NotWatched,
    Watching,
    Status(u8),
}

impl Respond {
    pub fn new(s: SendResponse<Bytes>) -> Respond {
        Respond {
            head: Some(s),
            body: None,
            ended: false,
            grpc: GrpcSeen::NotWatched,
        }
    }

    /// The response answers a gRPC call: note the `grpc-status` it carries.
    pub fn watch_grpc(&mut self) {
        self.grpc = GrpcSeen::Watching;
    }

    /// The `grpc-status` the relayed head or trailers carried (a watched call only).
    pub fn grpc_status(&self) -> Option<u8> {
        match self.grpc {
            GrpcSeen::Status(s) => Some(s),
            _ => None,
        }
    }

    fn note_grpc(&mut self, h: &http::HeaderMap) {
        if let (GrpcSeen::Watching, Some(v)) = (self.grpc, h.get("grpc-status")) {
            self.grpc = GrpcSeen::Status(crate::http::grpc::status_code(v.as_bytes()));
        }
    }

    /// The head went out: an error now can only reset the stream.
    pub fn head_sent(&self) -> bool {
        self.head.is_none()
    }

    /// Sends the response head; `end`: no body follows.
    pub fn send_head(&mut self, resp: Response<()>, end: bool) -> Result<(), IoFail> {
        let mut s = self
            .head
            .take()
            .ok_or(IoFail::Err(std::io::ErrorKind::Other))?;
        self.note_grpc(resp.headers());
        self.body = Some(s.send_response(resp, end).map_err(h2_fail)?);
        self.ended = end;
        Ok(())
    }

    /// Sends `data` as DATA frames, each within the capacity the client's windows allow; `end`
    /// closes the stream with the last one. Waits at most `idle` for capacity each time.
    pub async fn send_data(
        &mut self,
        mut data: &[u8],
        end: bool,
        idle: Duration,
    ) -> Result<(), IoFail> {
        let s = self.body.as_mut().ok_or(IoFail::Eof)?;
        while !data.is_empty() {
            s.reserve_capacity(data.len().min(RESERVE));
            let granted = match timeout(idle, poll_fn(|cx| s.poll_capacity(cx))).await {
                Err(_) => return Err(IoFail::TimedOut),
                Ok(None) => return Err(IoFail::Eof),
                Ok(Some(Err(e))) => return Err(h2_fail(e)),
                Ok(Some(Ok(0))) => continue,
                Ok(Some(Ok(n))) => n.min(data.len()),
            };
            let last = end && granted == data.len();
            s.send_data(Bytes::copy_from_slice(&data[..granted]), last)
                .map_err(h2_fail)?;
            self.ended = last;
            data = &data[granted..];
        }
        if end {
            // An empty `data` had no frame to carry END_STREAM.
            self.finish()?;
        }
        Ok(())
    }

    /// Sends `data` (a chunk as it came from an upstream's HTTP/2 stream: no copy) within the
    /// client's windows; `end` closes the stream with it.
    pub async fn send_bytes(
        &mut self,
        data: Bytes,
        end: bool,
        idle: Duration,
    ) -> Result<(), IoFail> {
        let s = self.body.as_mut().ok_or(IoFail::Eof)?;
        send_bytes(s, data, end, idle).await?;
        self.ended = end;
        Ok(())
    }

    /// Ends the response with trailers (a HEADERS frame with END_STREAM).
    pub fn send_trailers(&mut self, trailers: http::HeaderMap) -> Result<(), IoFail> {
        self.note_grpc(&trailers);
        let s = self.body.as_mut().ok_or(IoFail::Eof)?;
        s.send_trailers(trailers).map_err(h2_fail)?;
        self.ended = true;
        Ok(())
    }

    /// Ready when the client reset the stream (or its connection went): a relay waiting on the
    /// upstream polls it to cancel the upstream's stream at once.
    pub fn poll_reset(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let polled = match (&mut self.body, &mut self.head) {
            (Some(b), _) => b.poll_reset(cx),
            (None, Some(h)) => h.poll_reset(cx),
            (None, None) => return std::task::Poll::Pending,
        };
        polled.map(|_| ())
    }

    /// Whether the client has reset the stream (or its connection went), looked at without
    /// waiting.
    pub fn reset_seen(&mut self) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        self.poll_reset(&mut cx).is_ready()
    }

    /// Ends the body (an empty DATA frame with END_STREAM) unless it has ended.
    pub fn finish(&mut self) -> Result<(), IoFail> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        let s = self.body.as_mut().ok_or(IoFail::Eof)?;
        s.send_data(Bytes::new(), true).map_err(h2_fail)
    }

    /// Ends the stream. An unfinished response is reset with INTERNAL_ERROR (a response cut
    /// short must not look whole to the client). After a complete response whose request body is
    /// still coming (a 413, a local answer), up to `DISCARD` more body bytes are read and dropped
    /// within `idle`: a reset now would drop the response frames `h2` has not written yet, and
    /// some clients (curl 7.88) fail a response followed by RST_STREAM NO_ERROR. Past that the
    /// handles go and `h2` resets the stream.
    pub async fn close(&mut self, body: &mut RecvStream, idle: Duration) {
        if !self.ended {
            if let Some(s) = &mut self.body {
                s.send_reset(Reason::INTERNAL_ERROR);
            } else if let Some(s) = &mut self.head {
                s.send_reset(Reason::INTERNAL_ERROR);
            }
            return;
        }
        let mut dropped = 0;
        while !body.is_end_stream() && dropped < DISCARD {
            match next_chunk(body, idle).await {
                Ok(Some(b)) => {
                    dropped += b.len();
                    release(body, b.len());
                }
                _ => return,
            }
        }
    }
}

/// The next chunk of a request body: `None` at its end. The caller releases the chunk's
/// capacity once it has been forwarded (`release`).
pub async fn next_chunk(body: &mut RecvStream, idle: Duration) -> Result<Option<Bytes>, IoFail> {
    match timeout(idle, body.data()).await {
        Err(_) => Err(IoFail::TimedOut),
        Ok(None) => Ok(None),
        Ok(Some(Ok(b))) => Ok(Some(b)),
        Ok(Some(Err(e))) => Err(h2_fail(e)),
    }
}

/// Gives `n` forwarded bytes back to the client's stream and connection windows.
pub fn release(body: &mut RecvStream, n: usize) {
    let _ = body.flow_control().release_capacity(n);
}

/// An `h2` stream error as an I/O failure: a reset or a broken connection.
fn h2_fail(e: h2::Error) -> IoFail {
    match e.get_io() {
        Some(io) => IoFail::Err(io.kind()),
        None => IoFail::Err(std::io::ErrorKind::ConnectionReset),
    }
}

/// Sends `data` on `s` as DATA frames, each within the capacity the peer's windows allow (so a
/// peer that reads slowly slows the sender; nothing queues beyond the window); `end` closes the
/// stream with the last one (an empty `data` still carries it). Waits at most `idle` for
/// capacity each time. For either side: a response to a client, a request body to an upstream.
pub async fn send_bytes(
    s: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    idle: Duration,
) -> Result<(), IoFail> {
    if data.is_empty() {
        return if end {
            s.send_data(data, true).map_err(h2_fail)
        } else {
            Ok(())
        };
    }
    while !data.is_empty() {
        s.reserve_capacity(data.len().min(RESERVE));
        let granted = match timeout(idle, poll_fn(|cx| s.poll_capacity(cx))).await {
            Err(_) => return Err(IoFail::TimedOut),
            Ok(None) => return Err(IoFail::Eof),
            Ok(Some(Err(e))) => return Err(h2_fail(e)),
            Ok(Some(Ok(0))) => continue,
            Ok(Some(Ok(n))) => n.min(data.len()),
        };
        let part = data.split_to(granted);
        s.send_data(part, end && data.is_empty()).map_err(h2_fail)?;
    }
    Ok(())
}

/// The trailers that end a stream's body, once its DATA is read (`None`: it ended without).
pub async fn trailers(
    body: &mut RecvStream,
    idle: Duration,
) -> Result<Option<http::HeaderMap>, IoFail> {
    match timeout(idle, body.trailers()).await {
        Err(_) => Err(IoFail::TimedOut),
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(h2_fail(e)),
    }
}
