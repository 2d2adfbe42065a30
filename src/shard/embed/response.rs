//! A library response's body (`ResponseBody`): read chunk by chunk straight from the leased
//! upstream connection, by the response's framing (length, chunked, until close), through the
//! request's one reused buffer, so memory stays bounded whatever the body's size. The body holds
//! the connection until it is read to its end; then the connection goes back to its endpoint's
//! pool (when the upstream allows keep-alive), and dropping the body before its end closes it.
//! A body from an HTTP/2 upstream is read from its stream instead (h2body.rs), and its trailers
//! are kept for the caller. Embedding thread.

use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use http::HeaderMap;

use super::h2body::{H2Body, Step};
use super::wire::{Kit, Kits};
use super::Error;
use crate::http::chunked::Decoder;
use crate::http::BodyFraming;
use crate::shard::io::{read_more_within, IoFail};
use crate::shard::upstream::attempt::upstream_io;
use crate::shard::upstream::cluster::Endpoint;
use crate::shard::upstream::stream::UpStream;

/// The body of a [`Response`](super::Response): call [`chunk`](Self::chunk) until it gives
/// `None` (or [`bytes`](Self::bytes) to collect it). Until then it holds the upstream connection;
/// read to its end, the connection goes back to the pool for the next request. Dropped before
/// its end, the connection is closed (from an HTTP/2 upstream: the stream is reset, the
/// connection stays).
pub struct ResponseBody {
    inner: Inner,
    /// The upstream's trailers, once the body ended (HTTP/2 upstreams).
    trailers: Option<HeaderMap>,
}

enum Inner {
    /// Read to its end, or had none.
    Done,
    /// A route's direct answer; `given` once `chunk` handed it out.
    Local {
        bytes: Bytes,
        given: bool,
    },
    Held(Box<Held>),
    /// On an HTTP/2 stream.
    H2(Box<H2Body>),
}

/// What a body being read holds.
struct Held {
    ep: Rc<Endpoint>,
    up: Option<UpStream>,
    kit: Option<Box<Kit>>,
    kits: Rc<Kits>,
    framing: Framing,
    reusable: bool,
    idle: Duration,
    /// Bytes handed out by the last `chunk`, consumed at the next call.
    pending: usize,
}

enum Framing {
    Length(u64),
    Chunked(Decoder),
    UntilClose,
}

impl ResponseBody {
    pub(super) fn empty() -> ResponseBody {
        ResponseBody::of(Inner::Done)
    }

    fn of(inner: Inner) -> ResponseBody {
        ResponseBody {
            inner,
            trailers: None,
        }
    }

    pub(super) fn local(b: Bytes) -> ResponseBody {
        ResponseBody::of(Inner::Local {
            bytes: b,
            given: false,
        })
    }

    /// The body still to come on an HTTP/2 stream (none when the head ended it).
    pub(super) fn h2(mut body: H2Body) -> ResponseBody {
        if body.ended() {
            body.end();
            return ResponseBody::empty();
        }
        ResponseBody::of(Inner::H2(Box::new(body)))
    }

    /// The body still to be read on `up` (its slot in `ep`'s pool still counted).
    pub(super) fn held(
        ep: Rc<Endpoint>,
        up: UpStream,
        kit: Box<Kit>,
        kits: Rc<Kits>,
        framing: BodyFraming,
        reusable: bool,
        idle: Duration,
    ) -> ResponseBody {
        let framing = match framing {
            BodyFraming::None => Framing::Length(0),
            BodyFraming::Length(n) => Framing::Length(n),
            BodyFraming::Chunked => Framing::Chunked(Decoder::default()),
            BodyFraming::UntilClose => Framing::UntilClose,
        };
        let mut held = Held {
            ep,
            up: Some(up),
            kit: Some(kit),
            kits,
            framing,
            reusable,
            idle,
            pending: 0,
        };
        if matches!(held.framing, Framing::Length(0)) {
            held.end(true);
            return ResponseBody::empty();
        }
        ResponseBody::of(Inner::Held(Box::new(held)))
    }

    /// The next piece of the body, `None` at its end. The slice borrows the request's buffer:
    /// it is valid until the next call. Each call waits at most the route's body timeout.
    ///
    /// ```no_run
    /// # async fn demo(client: &shardgate::embed::Client) -> Result<(), shardgate::embed::Error> {
    /// let req = http::Request::get("http://api.internal/big").body(().into()).unwrap();
    /// let mut body = client.send(req).await?.into_body();
    /// let mut total = 0;
    /// while let Some(piece) = body.chunk().await? {
    ///     total += piece.len(); // the connection is back in the pool after the last one
    /// }
    /// # let _ = total; Ok(()) }
    /// ```
    pub async fn chunk(&mut self) -> Result<Option<&[u8]>, Error> {
        let range = match &mut self.inner {
            Inner::Done => return Ok(None),
            Inner::Local { given, .. } if *given => {
                self.inner = Inner::Done;
                return Ok(None);
            }
            Inner::Local { given, .. } => {
                *given = true;
                None
            }
            Inner::Held(h) => match h.next().await {
                Ok(Some(r)) => Some(r),
                Ok(None) => {
                    self.inner = Inner::Done;
                    return Ok(None);
                }
                Err(e) => {
                    self.inner = Inner::Done;
                    return Err(e);
                }
            },
            Inner::H2(b) => match b.next().await {
                Ok(Step::Data) => None,
                Ok(Step::End(trailers)) => {
                    self.trailers = trailers;
                    self.inner = Inner::Done;
                    return Ok(None);
                }
                Err(e) => {
                    self.inner = Inner::Done;
                    return Err(e);
                }
            },
        };
        Ok(match (&self.inner, range) {
            (Inner::Held(h), Some(r)) => {
                let kit = h.kit.as_ref().expect("held until the end");
                Some(&kit.buf.data()[r])
            }
            (Inner::Local { bytes, .. }, _) => Some(&bytes[..]),
            (Inner::H2(b), _) => Some(b.piece()),
            _ => None,
        })
    }

    /// Reads the whole body into memory (a body larger than memory should be read by `chunk`).
    ///
    /// ```no_run
    /// # async fn demo(client: &shardgate::embed::Client) -> Result<(), shardgate::embed::Error> {
    /// let req = http::Request::get("http://api.internal/").body(().into()).unwrap();
    /// let text = client.send(req).await?.into_body().bytes().await?;
    /// # let _ = text; Ok(()) }
    /// ```
    pub async fn bytes(mut self) -> Result<Vec<u8>, Error> {
        let mut all = Vec::new();
        while let Some(piece) = self.chunk().await? {
            all.extend_from_slice(piece);
        }
        Ok(all)
    }

    /// The trailers the upstream sent after the body, once [`chunk`](Self::chunk) gave `None`
    /// (`None` before that, and when it sent none). HTTP/2 upstreams only: a gRPC call's
    /// `grpc-status` and `grpc-message` arrive here (unless the answer was trailers-only: then
    /// they are in the response's headers).
    ///
    /// ```no_run
    /// # async fn demo(client: &shardgate::embed::Client) -> Result<(), shardgate::embed::Error> {
    /// let req = http::Request::post("http://grpc.internal/test.Echo/Unary")
    ///     .header("content-type", "application/grpc")
    ///     .header("te", "trailers")
    ///     .body(shardgate::embed::Body::from(&b"\0\0\0\0\x02hi"[..]))
    ///     .unwrap();
    /// let resp = client.send(req).await?;
    /// let grpc_status = resp.headers().get("grpc-status").cloned(); // trailers-only
    /// let mut body = resp.into_body();
    /// while let Some(message) = body.chunk().await? {
    ///     let _ = message; // length-prefixed gRPC messages
    /// }
    /// let status = grpc_status.or_else(|| body.trailers()?.get("grpc-status").cloned());
    /// assert_eq!(status.as_ref().map(|s| s.as_bytes()), Some(&b"0"[..]));
    /// # Ok(()) }
    /// ```
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }
}

// === impl Held ===

impl Held {
    /// The next piece's range in the buffer, `None` at the end (the connection is then given
    /// back or closed).
    async fn next(&mut self) -> Result<Option<Range<usize>>, Error> {
        let kit = self.kit.as_mut().expect("held until the end");
        kit.buf.consume(std::mem::take(&mut self.pending));
        loop {
            let kit = self.kit.as_mut().expect("held until the end");
            let have = kit.buf.len();
            match &mut self.framing {
                Framing::Length(0) => {
                    self.end(true);
                    return Ok(None);
                }
                Framing::Length(n) if have > 0 => {
                    let take = (have as u64).min(*n) as usize;
                    *n -= take as u64;
                    self.pending = take;
                    return Ok(Some(0..take));
                }
                Framing::Chunked(dec) if have > 0 => {
                    let Ok(step) = dec.feed(kit.buf.data()) else {
                        self.end(false);
                        return Err(Error::UpstreamMalformed);
                    };
                    if !step.data.is_empty() {
                        self.pending = step.consumed;
                        return Ok(Some(step.data));
                    }
                    kit.buf.consume(step.consumed);
                    if step.done {
                        self.end(true);
                        return Ok(None);
                    }
                    continue;
                }
                Framing::UntilClose if have > 0 => {
                    self.pending = have;
                    return Ok(Some(0..have));
                }
                _ => {}
            }
            let up = self.up.as_mut().expect("held until the end");
            match read_more_within(up, &mut kit.buf, self.idle).await {
                Ok(_) => {}
                Err(IoFail::Eof) if matches!(self.framing, Framing::UntilClose) => {
                    self.end(false);
                    return Ok(None);
                }
                Err(e) => {
                    self.end(false);
                    return Err(Error::from(upstream_error(e)));
                }
            }
        }
    }

    /// The body ended (`clean`: at its framing's end): the connection goes back to the pool
    /// when the upstream keeps it and sent nothing more, else it is closed; the buffers go back
    /// to the client's free list.
    fn end(&mut self, clean: bool) {
        let Some(up) = self.up.take() else { return };
        let ep = &self.ep;
        ep.in_flight.set(ep.in_flight.get().saturating_sub(1));
        let kit = self.kit.take().expect("held until the end");
        let lease = ep.pool.rebind(up);
        if clean && self.reusable && kit.buf.is_empty() {
            lease.release();
        } else {
            drop(lease);
        }
        self.kits.put(kit);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Not read to its end: the connection is closed, its slot freed.
        self.end(false);
    }
}

fn upstream_error(e: IoFail) -> crate::error::UpstreamError {
    match upstream_io(e) {
        crate::error::ProxyError::Upstream(u) => u,
        crate::error::ProxyError::Client(_) => crate::error::UpstreamError::Closed,
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.inner {
            Inner::Done => "done",
            Inner::Local { .. } => "local",
            Inner::Held(_) | Inner::H2(_) => "streaming",
        };
        f.debug_struct("ResponseBody")
            .field("state", &state)
            .finish()
    }
}
