//! The request body an attempt on an HTTP/2 upstream already took from its client, kept while
//! the upstream has not answered, so that a stream the upstream refused unprocessed
//! (REFUSED_STREAM, or above a GOAWAY's last stream id) can be sent again on another stream,
//! whatever the method, as Envoy does: the kept bytes go first, then the rest streams on from the
//! client. Bounded by `RETRY_BUFFER` per request: a body that passed it before the refusal
//! cannot be replayed (the client gets 502, docs/CONTRACT.md). Nothing is allocated for a
//! request without a body. Owned by the client's side (its connection for HTTP/1.1, its stream
//! for HTTP/2) across the attempts of one request. Shard thread, on the request's task.

use bytes::Bytes;
use http::HeaderMap;

use crate::shard::io::Buf;

/// Most request body bytes kept for a replay (64 KiB, the default initial stream window of most
/// HTTP/2 servers: what an upstream may take before it answers or refuses).
pub const RETRY_BUFFER: usize = 64 * 1024;

/// The raw bytes of an HTTP/1.1 client's body (framing included) taken from its connection's
/// buffer by the attempts so far.
#[derive(Default)]
pub struct RawReplay {
    bytes: Vec<u8>,
    /// More than `RETRY_BUFFER` went: no replay.
    over: bool,
    /// `100 Continue` was sent to the client (never twice).
    pub continued: bool,
    /// The client buffer's capacity before `restore` had to grow it (0: not grown).
    grown_from: usize,
}

impl RawReplay {
    /// A new request: nothing kept.
    pub fn reset(&mut self) {
        if self.bytes.capacity() > RETRY_BUFFER {
            self.bytes = Vec::new();
        }
        self.bytes.clear();
        self.over = false;
        self.continued = false;
        self.grown_from = 0;
    }

    /// `b` was taken from the client's buffer and is on its way upstream.
    pub fn keep(&mut self, b: &[u8]) {
        if self.over {
            return;
        }
        if self.bytes.len() + b.len() > RETRY_BUFFER {
            self.over = true;
            self.bytes = Vec::new();
            return;
        }
        self.bytes.extend_from_slice(b);
    }

    /// Everything sent so far can be sent again.
    pub fn replayable(&self) -> bool {
        !self.over
    }

    /// The response head came: nothing needs sending again, and a client buffer `restore`
    /// grew goes back to its size (its capacity bounds a request head).
    pub fn answered(&mut self, buf: &mut Buf) {
        self.bytes.clear();
        if self.grown_from > 0 {
            buf.v.shrink_to(self.grown_from);
            self.grown_from = 0;
        }
    }

    /// A new attempt: the kept bytes go back in front of the client's buffer, which the
    /// attempt then reads as if they had just arrived.
    pub fn restore(&mut self, buf: &mut Buf) {
        if self.bytes.is_empty() {
            return;
        }
        let cap = buf.v.capacity();
        let at = buf.pos;
        buf.v.splice(at..at, self.bytes.drain(..));
        if buf.v.capacity() > cap && self.grown_from == 0 {
            self.grown_from = cap;
        }
    }
}

/// The DATA chunks (as the client sent them) and trailers of an HTTP/2 client's body taken from
/// its stream by the attempts so far; `Bytes` are shared, not copied.
#[derive(Default)]
pub struct ChunkReplay {
    pub chunks: Vec<Bytes>,
    len: usize,
    /// More than `RETRY_BUFFER` went: no replay.
    over: bool,
    /// The client's body ended (END_STREAM seen, with or without trailers).
    pub ended: bool,
    pub trailers: Option<HeaderMap>,
    /// Bytes taken from the client whose window was not given back yet.
    pub unreleased: usize,
}

impl ChunkReplay {
    /// `chunk` was taken from the client and is on its way upstream.
    pub fn keep(&mut self, chunk: &Bytes) {
        self.unreleased += chunk.len();
        if self.over {
            return;
        }
        self.len += chunk.len();
        if self.len > RETRY_BUFFER {
            self.over = true;
            self.chunks = Vec::new();
            return;
        }
        self.chunks.push(chunk.clone());
    }

    /// Everything sent so far can be sent again.
    pub fn replayable(&self) -> bool {
        !self.over
    }

    /// Nothing to send again.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && !self.ended
    }
}
