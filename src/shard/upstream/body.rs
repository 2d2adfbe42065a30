//! Streams a message body from one socket to another through the reading side's buffer, by its
//! framing (length, chunked verbatim or de-chunked, until close), in bounded memory: never more
//! than one buffer of body is held. Shard thread only.

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};

use crate::http::chunked::Decoder;
use crate::shard::io::{read_more_within, write_buf, Buf, IoFail};

/// Where a relay stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    /// The sending side failed (EOF mid-body, timeout, socket error).
    Read(IoFail),
    /// The receiving side failed.
    Write(IoFail),
    /// The sender broke chunked framing.
    Framing,
    /// A chunked request body passed the route's `max_body`.
    TooLarge,
}

/// Relays exactly `n` bytes: first what `buf` holds, then from `src`. Leaves extra bytes in `buf`.
pub async fn length<R, W>(
    src: &mut R,
    buf: &mut Buf,
    dst: &mut W,
    n: u64,
    idle: Duration,
) -> Result<u64, RelayError>
where
    R: AsyncReadRent,
    W: AsyncWriteRent,
{
    let mut left = n;
    loop {
        let take = (buf.len() as u64).min(left) as usize;
        if take > 0 {
            write_buf(dst, buf, take, idle)
                .await
                .map_err(RelayError::Write)?;
            left -= take as u64;
        }
        if left == 0 {
            return Ok(n);
        }
        read_more_within(src, buf, idle)
            .await
            .map_err(RelayError::Read)?;
    }
}

/// Relays a chunked body, validating its framing. Verbatim, or payload only when `dechunk`.
/// Stops exactly at the end of the trailers; bytes after it stay in `buf`. Returns the bytes
/// written; more than `limit` bytes of payload (chunk data, not framing) is `TooLarge`.
pub async fn chunked<R, W>(
    src: &mut R,
    buf: &mut Buf,
    dst: &mut W,
    dechunk: bool,
    limit: u64,
    idle: Duration,
) -> Result<u64, RelayError>
where
    R: AsyncReadRent,
    W: AsyncWriteRent,
{
    let mut dec = Decoder::default();
    let mut total = 0u64;
    let mut body = 0u64;
    loop {
        let mut consumed = 0;
        let mut payload = 0;
        let start = buf.pos;
        while consumed < buf.len() && !dec.is_done() {
            let step = dec
                .feed(&buf.data()[consumed..])
                .map_err(|_| RelayError::Framing)?;
            body += step.data.len() as u64;
            if dechunk && !step.data.is_empty() {
                // Move payload down over the framing already consumed; ranges only move left.
                let from = start + consumed + step.data.start..start + consumed + step.data.end;
                buf.v.copy_within(from, start + payload);
                payload += step.data.len();
            }
            consumed += step.consumed;
        }
        total += if dechunk { payload } else { consumed } as u64;
        if body > limit {
            return Err(RelayError::TooLarge);
        }
        if dechunk {
            if payload > 0 {
                write_buf(dst, buf, payload, idle)
                    .await
                    .map_err(RelayError::Write)?;
            }
            buf.consume(consumed - payload);
        } else if consumed > 0 {
            write_buf(dst, buf, consumed, idle)
                .await
                .map_err(RelayError::Write)?;
        }
        if dec.is_done() {
            return Ok(total);
        }
        read_more_within(src, buf, idle)
            .await
            .map_err(RelayError::Read)?;
    }
}

/// Relays everything until `src` closes.
pub async fn until_close<R, W>(
    src: &mut R,
    buf: &mut Buf,
    dst: &mut W,
    idle: Duration,
) -> Result<u64, RelayError>
where
    R: AsyncReadRent,
    W: AsyncWriteRent,
{
    let mut total = 0u64;
    loop {
        let n = buf.len();
        total += n as u64;
        if n > 0 {
            write_buf(dst, buf, n, idle)
                .await
                .map_err(RelayError::Write)?;
        }
        match read_more_within(src, buf, idle).await {
            Ok(_) => {}
            Err(IoFail::Eof) => return Ok(total),
            Err(e) => return Err(RelayError::Read(e)),
        }
    }
}
