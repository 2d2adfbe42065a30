//! The HTTP/1.1 client side of one library attempt on one leased upstream connection: write the
//! head (with a small held body in the same write), stream the body from the caller's
//! `BodySender` (by length or chunked), then read the response head (1xx skipped) with the
//! upstream timeout. The head is validated and framed by the proxy's own `http::response`, so a
//! response the proxy would refuse is refused here too. The body is left to `ResponseBody`.
//! Generic over the stream (`Wire`: plain TCP or TLS). Also the client's free list of the
//! per-request buffers (`Kits`). Embedding thread.

use std::cell::RefCell;
use std::io::Write;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use monoio::io::AsyncWriteRentExt;
use monoio::time::{timeout, Instant};

use super::body::{next_chunk, Kind};
use super::reply::{Answer, Limits, Reply, Streamed};
use crate::error::{ClientError, UpstreamError};
use crate::http::response::{self, Kind as HeadKind, ResponseCtx};
use crate::http::Head;
use crate::shard::io::{read_more_until, write_vec, Buf, IoFail, Wire};
use crate::shard::upstream::attempt::{upstream_io, Failed};

/// Bytes of a held body sent in the same write as the head.
const COALESCE_LIMIT: usize = 16 * 1024;

/// Room for final response heads a kit starts with (the caller's header values live there).
const FIELDS_CAPACITY: usize = 2048;

/// The reused buffers of one request: the head sent (kept across retries), the upstream's
/// bytes, and where the caller's response header values are copied (`fields`: each final head
/// is split off it, and its allocation is used again once the caller has dropped the headers
/// that point into it). Boxed and taken from the client's free list per request, back when the
/// response body ends, so a request allocates none of them. (A caller that keeps a header map
/// keeps that buffer, a few KiB at most, alive; the kit then starts a new one.)
pub struct Kit {
    pub head: Vec<u8>,
    pub buf: Buf,
    pub fields: BytesMut,
}

/// Free buffers for requests (one per request in flight, reused).
pub struct Kits {
    // Boxed on purpose: a kit moves into the response body (a pointer, not the struct).
    #[allow(clippy::vec_box)]
    free: RefCell<Vec<Box<Kit>>>,
    size: usize,
}

impl Kits {
    pub fn new(size: usize) -> Kits {
        Kits {
            free: RefCell::default(),
            size,
        }
    }

    pub fn take(&self) -> Box<Kit> {
        self.free.borrow_mut().pop().unwrap_or_else(|| {
            Box::new(Kit {
                head: Vec::with_capacity(512),
                buf: Buf::with_capacity(self.size),
                fields: BytesMut::with_capacity(FIELDS_CAPACITY),
            })
        })
    }

    pub fn put(&self, mut kit: Box<Kit>) {
        kit.buf.consume(kit.buf.len());
        let mut free = self.free.borrow_mut();
        if free.len() < 256 {
            free.push(kit);
        }
    }
}

/// One attempt: `kit.head` holds the request head; `body` goes after it.
pub async fn attempt<U: Wire>(
    up: &mut U,
    kit: &mut Kit,
    body: &Kind,
    head_request: bool,
    t: Limits,
    mut retry_status: impl FnMut(u16) -> bool,
) -> Result<Reply, Failed> {
    let retryable = Failed::sending;
    kit.buf.consume(kit.buf.len());
    let head_len = kit.head.len();
    let mut rest = None;
    if let Kind::Full(b) = body {
        if b.len() <= COALESCE_LIMIT {
            kit.head.extend_from_slice(b);
        } else {
            rest = Some(b.clone());
        }
    }
    let sent = write_vec(up, &mut kit.head, t.upstream).await;
    kit.head.truncate(head_len);
    sent.map_err(retryable)?;
    if let Some(b) = rest {
        write_bytes(up, b, t.body).await.map_err(retryable)?;
    }
    if let Kind::Stream { channel, length } = body {
        let streamed = stream_body(up, channel, *length, t).await;
        streamed.map_err(|e| match e {
            Streamed::Caller => Failed::before(ClientError::BadBody),
            Streamed::TooLarge => Failed::before(ClientError::TooLarge),
            Streamed::Upstream(e) => Failed::before(upstream_io(e)),
        })?;
    }
    let sent_at = Instant::now();
    let deadline = sent_at + t.upstream;
    let mut seen_bytes = false;
    let ctx = ResponseCtx::plain(head_request, false, true, false);
    loop {
        // One parse: the framing decided and, for a final answer, the caller's header map
        // built from the same fields (no client head is written here).
        let data = kit.buf.data();
        let room = &mut kit.fields;
        let parsed = response::inspect(data, kit.buf.is_full(), &ctx, |p| {
            let fields = (p.response.kind == HeadKind::Final)
                .then(|| headers_of(room, data, p.response.head_len, p.fields));
            (p.response, fields)
        });
        match parsed {
            Ok(Head::Complete((r, fields))) => match r.kind {
                HeadKind::Interim => {
                    seen_bytes = true;
                    kit.buf.consume(r.head_len);
                }
                // Nothing here asks for an upgrade: a 101 is not an answer to this request.
                HeadKind::Switching => return Err(Failed::before(UpstreamError::Malformed)),
                HeadKind::Final if retry_status(r.status) => {
                    return Ok(Reply::Retried(r.status));
                }
                HeadKind::Final => {
                    let headers = fields
                        .flatten()
                        .ok_or(Failed::before(UpstreamError::Malformed))?;
                    kit.buf.consume(r.head_len);
                    let status = StatusCode::from_u16(r.status)
                        .map_err(|_| Failed::before(UpstreamError::Malformed))?;
                    return Ok(Reply::Head(Answer {
                        status,
                        headers,
                        framing: r.body,
                        reusable: r.upstream_reusable,
                    }));
                }
            },
            Ok(Head::Partial) => {
                if let Err(e) = read_more_until(up, &mut kit.buf, deadline).await {
                    let mut f = retryable(e);
                    f.retryable &= !seen_bytes && kit.buf.is_empty();
                    return Err(f);
                }
            }
            Err(_) => return Err(Failed::before(UpstreamError::Malformed)),
        }
    }
}

/// The response's header fields, as the caller gets them: the head (`data[..head_len]`) copied
/// once into `room` and split off as one shared buffer the values point into (the map's two
/// allocations; none for the values while `room` has space or gets its old space back).
fn headers_of(
    room: &mut BytesMut,
    data: &[u8],
    head_len: usize,
    fields: &[httparse::Header<'_>],
) -> Option<HeaderMap> {
    room.clear();
    room.extend_from_slice(&data[..head_len]);
    let head: Bytes = room.split().freeze();
    let base = data.as_ptr() as usize;
    let mut map = HeaderMap::with_capacity(fields.len());
    for h in fields {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if h.value.is_empty() {
            map.append(name, HeaderValue::from_static(""));
            continue;
        }
        // The value is a slice of `data[..head_len]` (httparse borrows it from there).
        let start = (h.value.as_ptr() as usize).checked_sub(base)?;
        let end = start
            .checked_add(h.value.len())
            .filter(|&e| e <= head.len())?;
        let value = HeaderValue::from_maybe_shared(head.slice(start..end)).ok()?;
        map.append(name, value);
    }
    Some(map)
}

/// Streams the caller's chunks: as they come with a length, chunk-framed without.
async fn stream_body<U: Wire>(
    up: &mut U,
    channel: &std::cell::RefCell<super::body::Channel>,
    length: Option<u64>,
    t: Limits,
) -> Result<(), Streamed> {
    let idle = t.body;
    let mut sent = 0u64;
    let mut frame = Vec::new();
    loop {
        let chunk = next_chunk(channel).await.map_err(|_| Streamed::Caller)?;
        let Some(chunk) = chunk else { break };
        sent += chunk.len() as u64;
        if length.is_some_and(|n| sent > n) {
            return Err(Streamed::Caller);
        }
        if sent > t.max_body {
            return Err(Streamed::TooLarge);
        }
        if length.is_none() {
            frame.clear();
            let _ = write!(frame, "{:x}\r\n", chunk.len());
            write_vec(up, &mut frame, idle)
                .await
                .map_err(Streamed::Upstream)?;
        }
        write_bytes(up, chunk, idle)
            .await
            .map_err(Streamed::Upstream)?;
        if length.is_none() {
            write_bytes(up, Bytes::from_static(b"\r\n"), idle)
                .await
                .map_err(Streamed::Upstream)?;
        }
    }
    match length {
        Some(n) if n != sent => Err(Streamed::Caller),
        Some(_) => Ok(()),
        None => write_bytes(up, Bytes::from_static(b"0\r\n\r\n"), idle)
            .await
            .map_err(Streamed::Upstream),
    }
}

/// Writes all of `b` within `idle`.
async fn write_bytes<U: Wire>(up: &mut U, b: Bytes, idle: Duration) -> Result<(), IoFail> {
    match timeout(idle, up.write_all(b)).await {
        Ok((Ok(_), _)) => Ok(()),
        Ok((Err(e), _)) => Err(IoFail::Err(e.kind())),
        Err(_) => Err(IoFail::TimedOut),
    }
}
