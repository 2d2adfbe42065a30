//! What one library attempt reads and reports, whichever protocol the cluster speaks: the
//! route's limits for it (`Limits`), how it ended when it reached the upstream (`Reply`: an
//! HTTP/1.1 head with its body's framing, an HTTP/2 head with the stream its body comes on, or a
//! status the route retries on), and where streaming the caller's body failed (`Streamed`).
//! Shared by wire.rs (HTTP/1.1) and h2.rs (HTTP/2). Embedding thread.

use std::time::Duration;

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, StatusCode};

use crate::http::BodyFraming;
use crate::shard::io::IoFail;

/// The route's timeouts and body limit for one exchange.
#[derive(Clone, Copy)]
pub struct Limits {
    pub connect: Option<Duration>,
    pub upstream: Duration,
    pub body: Duration,
    /// The most bytes a streamed body may carry (the route's `max_body`; a declared length was
    /// checked before anything was sent).
    pub max_body: u64,
}

/// A response head from an HTTP/1.1 upstream as the caller gets it, and how its body is framed.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: BodyFraming,
    /// The connection may go back to the pool once the body is read to its end.
    pub reusable: bool,
}

/// A response head from an HTTP/2 upstream, and the stream its body comes on.
pub struct H2Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub recv: RecvStream,
    /// The request's side, held until the response ends (dropped early, `h2` resets the stream).
    pub send: SendStream<Bytes>,
}

/// How one attempt ended when it reached the upstream.
pub enum Reply {
    Head(Answer),
    /// From an HTTP/2 upstream (h2.rs).
    H2(H2Answer),
    /// A status the route retries on, the retry granted when it arrived.
    Retried(u16),
}

/// Where streaming the request body failed.
pub enum Streamed {
    /// The caller's sender failed, or sent a length other than the one declared.
    Caller,
    /// More than the route's `max_body`.
    TooLarge,
    Upstream(IoFail),
}
