//! What can go wrong with a library request (`Error`), and which side it was: the caller's
//! request, the library's own limits, or the upstream. Mapped from the upstream layer's
//! `UpstreamError`, so the proxy and the library classify a failure the same way (the proxy's
//! status for each is given in the variant's doc). Embedding thread.

use std::fmt;
use std::time::Duration;

use crate::error::UpstreamError;

/// Why a request sent through a [`Client`](super::Client) got no response (or its body stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No `[[routes]]` entry matched the request (the proxy answers 404).
    NoRoute,
    /// `send_to` named a cluster the config does not have.
    UnknownCluster,
    /// Every endpoint of the cluster is down (health checks), ejected (breaker) or none is
    /// configured (503).
    NoHealthyEndpoint,
    /// Every connection the caps allow is busy and the bounded wait for one was full or ran out
    /// (`pool.max_connections`, `pool.queue`, `pool.queue_timeout`, the cluster's
    /// `max_connections` and `max_pending`) (503).
    PoolFull,
    /// The route's rate limit refused the request; a token is back after `retry_after` (429).
    RateLimited {
        /// When the next request would be let through.
        retry_after: Duration,
    },
    /// The request's declared body is larger than the route's `max_body` (413).
    TooLarge,
    /// The request body's sender failed or was dropped before its end.
    RequestBody,
    /// The connection to the chosen endpoint failed: refused, unreachable, timed out or its TLS
    /// handshake failed (502).
    Connect,
    /// No response head within the route's upstream timeout, or the body stalled longer than
    /// the body timeout (504).
    UpstreamTimeout,
    /// The upstream closed or reset the connection before the response was complete (502).
    UpstreamClosed,
    /// The upstream's response was not valid HTTP/1.1 or HTTP/2, or the request could not be
    /// sent as HTTP/2 (502).
    UpstreamMalformed,
}

/// Which side a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request as the caller gave it (no route, too large, its body broke).
    Caller,
    /// The library's own policy and limits (rate limit, no usable endpoint, connection caps).
    Policy,
    /// The upstream endpoint (connect, timeout, closed, malformed).
    Upstream,
}

impl Error {
    /// The side that failed.
    ///
    /// ```
    /// use shardgate::embed::{Error, Side};
    /// assert_eq!(Error::PoolFull.side(), Side::Policy);
    /// assert_eq!(Error::UpstreamClosed.side(), Side::Upstream);
    /// ```
    pub fn side(self) -> Side {
        match self {
            Error::NoRoute | Error::UnknownCluster | Error::TooLarge | Error::RequestBody => {
                Side::Caller
            }
            Error::NoHealthyEndpoint | Error::PoolFull | Error::RateLimited { .. } => Side::Policy,
            Error::Connect
            | Error::UpstreamTimeout
            | Error::UpstreamClosed
            | Error::UpstreamMalformed => Side::Upstream,
        }
    }

    /// The status the proxy would answer with for the same failure.
    ///
    /// ```
    /// assert_eq!(shardgate::embed::Error::UpstreamTimeout.status(), 504);
    /// ```
    pub fn status(self) -> u16 {
        match self {
            Error::NoRoute | Error::UnknownCluster => 404,
            Error::NoHealthyEndpoint | Error::PoolFull => 503,
            Error::RateLimited { .. } => 429,
            Error::TooLarge => 413,
            Error::RequestBody => 400,
            Error::Connect | Error::UpstreamClosed | Error::UpstreamMalformed => 502,
            Error::UpstreamTimeout => 504,
        }
    }
}

impl From<UpstreamError> for Error {
    fn from(e: UpstreamError) -> Error {
        match e {
            UpstreamError::Connect(_) | UpstreamError::ConnectTimeout | UpstreamError::Tls(_) => {
                Error::Connect
            }
            UpstreamError::ResponseTimeout | UpstreamError::BodyTimeout => Error::UpstreamTimeout,
            // An HTTP/2 stream the upstream kept refusing (past the resends of unprocessed ones).
            UpstreamError::Closed | UpstreamError::Io(_) | UpstreamError::Refused => {
                Error::UpstreamClosed
            }
            // The proxy's gRPC check (an HTTP/2 client's call); a library request never is one.
            // Also the proxy's upgrade check; a library request is never an upgrade.
            UpstreamError::Malformed | UpstreamError::GrpcOverH1 | UpstreamError::UpgradeOverH2 => {
                Error::UpstreamMalformed
            }
            UpstreamError::NoEndpoint => Error::NoHealthyEndpoint,
            UpstreamError::PoolFull
            | UpstreamError::PoolTimeout
            | UpstreamError::ClusterFull
            | UpstreamError::PendingFull => Error::PoolFull,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Error::NoRoute => "no route matches the request",
            Error::UnknownCluster => "no cluster of that name",
            Error::NoHealthyEndpoint => "no healthy endpoint",
            Error::PoolFull => "connection pool full",
            Error::RateLimited { .. } => "rate limited",
            Error::TooLarge => "request body larger than the route's max_body",
            Error::RequestBody => "the request body failed before its end",
            Error::Connect => "cannot connect to the upstream",
            Error::UpstreamTimeout => "upstream timed out",
            Error::UpstreamClosed => "upstream closed the connection",
            Error::UpstreamMalformed => "malformed upstream response",
        };
        f.write_str(what)
    }
}

impl std::error::Error for Error {}
