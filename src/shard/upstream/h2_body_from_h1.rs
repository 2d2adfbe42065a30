//! The request body of an HTTP/1.1 client going up an HTTP/2 stream (for h2_from_h1.rs): read
//! from the client's connection and sent as DATA within the upstream's windows by its framing, a
//! length as is, a chunked body de-chunked (what each read brought as one DATA frame,
//! END_STREAM on the last unless trailers follow, which go as HTTP/2 trailers), a gRPC-Web
//! `-text` body base64-decoded; every byte taken from the client's buffer is kept for a replay
//! (replay.rs). Shard thread, on the client connection's task.

use bytes::Bytes;
use h2::SendStream;

use super::attempt::{client_io, Failed, Limits};
use super::grpc_web;
use super::h2stream;
use super::replay::RawReplay;
use crate::error::{ClientError, UpstreamError};
use crate::http::chunked::Decoder;
use crate::http::grpc_web::TextDecoder;
use crate::http::{h2up, BodyFraming};
use crate::shard::h2io;
use crate::shard::io::{read_more_within, Buf, IoFail, Wire};

/// A request body piece for the upstream, base64-decoded for a gRPC-Web `-text` call; `last`:
/// nothing follows (a cut base64 group is then a bad body).
pub fn decoded(dec: &mut Option<TextDecoder>, part: Bytes, last: bool) -> Result<Bytes, Failed> {
    let bad = |_| Failed::before(ClientError::BadBody);
    let part = grpc_web::up(dec, part).map_err(bad)?;
    if last {
        if let Some(d) = dec {
            d.finish().map_err(bad)?;
        }
    }
    Ok(part)
}

/// A write of the request body upstream failed: its stream was reset or the connection broke.
pub fn up_fail(e: IoFail) -> UpstreamError {
    match e {
        IoFail::TimedOut => UpstreamError::BodyTimeout,
        IoFail::Eof => UpstreamError::Closed,
        IoFail::Err(k) => UpstreamError::Io(k),
    }
}

/// Streams the request body from the client's connection upstream by its framing: a length as
/// is, a chunked body de-chunked with its trailers as HTTP/2 trailers. Each piece is read only
/// once the previous one went out within the upstream's windows. Returns the body bytes.
pub async fn send_body<S: Wire>(
    client: &mut S,
    buf: &mut Buf,
    up: &mut SendStream<Bytes>,
    framing: BodyFraming,
    limits: &Limits<'_>,
    text: &mut Option<TextDecoder>,
    replay: &mut RawReplay,
) -> Result<u64, Failed> {
    let idle = limits.body;
    let read_failed = |e: IoFail| match e {
        IoFail::TimedOut => Failed::before(ClientError::BodyTimeout),
        e => Failed::before(client_io(e)),
    };
    let send_failed = |e: IoFail| Failed::before(up_fail(e));
    match framing {
        BodyFraming::Length(n) => {
            let mut left = n;
            loop {
                let take = (buf.len() as u64).min(left) as usize;
                if take > 0 {
                    left -= take as u64;
                    let part = Bytes::copy_from_slice(&buf.data()[..take]);
                    replay.keep(&buf.data()[..take]);
                    buf.consume(take);
                    let part = decoded(text, part, left == 0)?;
                    h2io::send_bytes(up, part, left == 0, idle)
                        .await
                        .map_err(send_failed)?;
                }
                if left == 0 {
                    return Ok(n);
                }
                read_more_within(client, buf, idle)
                    .await
                    .map_err(read_failed)?;
            }
        }
        _ => {
            let mut dec = Decoder::default();
            let mut total = 0u64;
            let mut trailer = Vec::new();
            loop {
                // What this read brought goes up as one piece (not a frame per chunk).
                let mut consumed = 0;
                let mut part = Vec::new();
                while consumed < buf.len() && !dec.is_done() {
                    let in_trailers = dec.in_trailers();
                    let step = dec
                        .feed(&buf.data()[consumed..])
                        .map_err(|_| Failed::before(ClientError::BadBody))?;
                    let at = consumed;
                    consumed += step.consumed;
                    if in_trailers {
                        trailer.extend_from_slice(&buf.data()[at..consumed]);
                        continue;
                    }
                    if step.data.is_empty() {
                        continue;
                    }
                    total += step.data.len() as u64;
                    if total > limits.max_body {
                        return Err(Failed::before(ClientError::TooLarge));
                    }
                    if part.is_empty() {
                        part.reserve(buf.len() - at);
                    }
                    part.extend_from_slice(&buf.data()[at + step.data.start..at + step.data.end]);
                }
                replay.keep(&buf.data()[..consumed]);
                buf.consume(consumed);
                let done = dec.is_done();
                let t = if done {
                    h2up::trailers(&trailer).map_err(|_| Failed::before(ClientError::BadBody))?
                } else {
                    None
                };
                // The terminating chunk is here and no trailers follow: END_STREAM rides on
                // the last DATA frame.
                let end = done && t.is_none();
                let part = decoded(text, Bytes::from(part), done)?;
                if !part.is_empty() || end {
                    h2io::send_bytes(up, part, end, idle)
                        .await
                        .map_err(send_failed)?;
                }
                if let Some(t) = t {
                    up.send_trailers(t)
                        .map_err(|e| h2stream::before(&e, false))?;
                }
                if done {
                    return Ok(total);
                }
                read_more_within(client, buf, idle)
                    .await
                    .map_err(read_failed)?;
            }
        }
    }
}
