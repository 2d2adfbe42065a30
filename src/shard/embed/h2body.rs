//! A library response's body from an HTTP/2 upstream (`H2Body`, inside `ResponseBody`): DATA
//! chunks as `h2` received them (no copy), each one's flow-control capacity given back only when
//! the caller asks for the next, so a caller that reads slowly holds the upstream to the stream's
//! window (h2pool.rs `STREAM_WINDOW`) instead of growing a buffer; then the trailers (a gRPC
//! call's `grpc-status`). The stream's place on its connection is held until the body ends;
//! dropped before its end, the stream is reset (CANCEL) and the connection stays for other
//! streams. Embedding thread.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;

use super::h2::body_error;
use super::reply::H2Answer;
use super::Error;
use crate::shard::upstream::cluster::Endpoint;
use crate::shard::upstream::h2pool::H2Lease;
use crate::shard::upstream::h2stream;

/// The body still to come on an HTTP/2 stream.
pub struct H2Body {
    ep: Rc<Endpoint>,
    /// The stream's place on its connection; `None` once the body ended.
    lease: Option<H2Lease>,
    recv: RecvStream,
    send: SendStream<Bytes>,
    /// The chunk handed out last; its capacity is released at the next call.
    piece: Bytes,
    idle: Duration,
}

/// What `H2Body::next` found.
pub enum Step {
    /// A chunk, now in `H2Body::piece`.
    Data,
    /// The body ended, with the upstream's trailers if it sent some.
    End(Option<HeaderMap>),
}

impl H2Body {
    /// The body of `answer` on the stream `lease` holds (counted in `ep.in_flight`).
    pub fn new(ep: Rc<Endpoint>, lease: H2Lease, answer: H2Answer, idle: Duration) -> H2Body {
        H2Body {
            ep,
            lease: Some(lease),
            recv: answer.recv,
            send: answer.send,
            piece: Bytes::new(),
            idle,
        }
    }

    /// The response ended with its head (no body, no trailers).
    pub fn ended(&self) -> bool {
        self.recv.is_end_stream()
    }

    /// The chunk `next` found last.
    pub fn piece(&self) -> &[u8] {
        &self.piece
    }

    /// Releases the last chunk's capacity and waits (the body timeout at most) for the next one
    /// or the end; at the end the stream's place is given back.
    pub async fn next(&mut self) -> Result<Step, Error> {
        let done = std::mem::take(&mut self.piece);
        if !done.is_empty() {
            h2stream::release(&mut self.recv, done.len());
        }
        drop(done);
        loop {
            let chunk = h2stream::next(&mut self.recv, self.idle).await;
            match chunk {
                Ok(Some(b)) if b.is_empty() => continue,
                Ok(Some(b)) => {
                    self.piece = b;
                    return Ok(Step::Data);
                }
                Ok(None) => break,
                Err(f) => {
                    self.end();
                    return Err(body_error(f));
                }
            }
        }
        let trailers = h2stream::trailers(&mut self.recv, self.idle).await;
        self.end();
        trailers.map(Step::End).map_err(body_error)
    }

    /// Gives the stream's place back (once): a stream not at its end is reset first.
    pub fn end(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        if !self.recv.is_end_stream() {
            self.send.send_reset(Reason::CANCEL);
        }
        let ep = &self.ep;
        ep.in_flight.set(ep.in_flight.get().saturating_sub(1));
        drop(lease);
    }
}

impl Drop for H2Body {
    fn drop(&mut self) {
        self.end();
    }
}
