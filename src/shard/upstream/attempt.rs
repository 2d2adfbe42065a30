//! What one attempt on one upstream connection reads and reports, whichever protocol carries the
//! client's side: its limits (`Limits`), what it moved (`Tally`), how it ended (`Done`, `Failed`),
//! and the mapping of I/O failures to the side that failed. Shard thread.

use std::time::Duration;

use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::shard::drain::Drain;
use crate::shard::io::IoFail;

/// The route's effective timeouts and limits for one exchange, and the shard settings an attempt
/// needs (splice, buffer fill, whether a drain started).
pub struct Limits<'t> {
    pub connect: Option<Duration>,
    pub upstream: Duration,
    pub body: Duration,
    pub max_body: u64,
    /// Response headers the route removes or replaces.
    pub remove: &'t [String],
    /// Bodies at least this large go through splice when both ends can (0: never).
    pub splice_at: u64,
    /// The most bytes of a body held at once (the upstream buffer size).
    pub fill: usize,
    /// Asked when a response head arrives: a drain that started meanwhile closes the client.
    pub drain: &'t Drain,
}

/// What an exchange moved, for statistics and the access log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// The status the client got (0: none, the client went away).
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// From sending the request to the response head, on the last attempt.
    pub upstream_time: Option<Duration>,
    /// The `grpc-status` a bridged gRPC-Web call's client got (in the trailer frame, or the
    /// head of a trailers-only answer).
    pub grpc_status: Option<u8>,
}

/// How an attempt that reached the upstream ended.
pub enum Done {
    Response {
        status: u16,
        reusable: bool,
        close_client: bool,
    },
    Switched,
    /// A final status the route retries on, and the retry was granted (attempt and budget
    /// spent) when it arrived; nothing was sent to the client.
    Retried(u16),
}

/// An attempt that failed; `answered` says whether the client already has response bytes.
pub struct Failed {
    pub error: ProxyError,
    pub answered: bool,
    /// Failed on the connection before any response byte: safe to resend if idempotent.
    pub retryable: bool,
}

impl Failed {
    pub fn before(e: impl Into<ProxyError>) -> Failed {
        Failed {
            error: e.into(),
            answered: false,
            retryable: false,
        }
    }

    pub fn answered(e: ProxyError) -> Failed {
        Failed {
            error: e,
            answered: true,
            retryable: false,
        }
    }

    /// The client went away (reset its HTTP/2 stream, closed its connection) while the
    /// response was awaited: the attempt ends, nothing is answered (no one to answer).
    pub fn client_gone() -> Failed {
        Failed::answered(ClientError::Io(std::io::ErrorKind::ConnectionReset).into())
    }

    /// The upstream failed while the request went out or before the response head: resendable
    /// on a fresh connection unless it timed out.
    pub fn sending(e: IoFail) -> Failed {
        Failed {
            error: ProxyError::Upstream(match e {
                IoFail::TimedOut => UpstreamError::ResponseTimeout,
                IoFail::Eof => UpstreamError::Closed,
                IoFail::Err(k) => UpstreamError::Io(k),
            }),
            answered: false,
            retryable: e != IoFail::TimedOut,
        }
    }
}

/// A failed read or write on the client's side.
pub fn client_io(e: IoFail) -> ProxyError {
    ProxyError::Client(match e {
        IoFail::TimedOut => ClientError::BodyTimeout,
        IoFail::Eof => ClientError::Io(std::io::ErrorKind::UnexpectedEof),
        IoFail::Err(k) => ClientError::Io(k),
    })
}

/// A failed read or write on the upstream's side while a body moves.
pub fn upstream_io(e: IoFail) -> ProxyError {
    ProxyError::Upstream(match e {
        IoFail::TimedOut => UpstreamError::BodyTimeout,
        IoFail::Eof => UpstreamError::Closed,
        IoFail::Err(k) => UpstreamError::Io(k),
    })
}
