//! Why an exchange failed, by side: the client or the upstream (`ProxyError`'s variant). The side
//! picks the response status, whether a retry is allowed, and (later) what logs and metrics say.

use std::io;

/// The client went away or broke framing mid-body: nothing more can be sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// EOF or a socket error on the client connection.
    Io(io::ErrorKind),
    /// The client stopped sending its body for longer than the body timeout.
    BodyTimeout,
    /// A chunked request body that breaks the chunked framing.
    BadBody,
    /// A chunked request body beyond the route's `max_body`.
    TooLarge,
}

/// The upstream failed; before the response head reached the client this becomes 502/503/504.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Connection refused or unreachable.
    Connect(io::ErrorKind),
    ConnectTimeout,
    /// No response head within the upstream timeout.
    ResponseTimeout,
    /// The connection closed or reset before a whole response head arrived.
    Closed,
    /// A socket error while exchanging.
    Io(io::ErrorKind),
    /// An unparseable or ambiguously framed response.
    Malformed,
    /// A body stalled beyond the body timeout.
    BodyTimeout,
    /// No endpoint may be chosen (none configured as usable).
    NoEndpoint,
    /// Every connection to the endpoint is busy and the wait queue is full.
    PoolFull,
    /// Waited for a free connection longer than the queue timeout.
    PoolTimeout,
    /// The cluster's connection limit on this shard is reached.
    ClusterFull,
    /// The cluster's pending-request limit on this shard is reached.
    PendingFull,
}

impl UpstreamError {
    /// The status the client gets when this happens before any response byte was sent.
    pub fn status(self) -> u16 {
        match self {
            UpstreamError::ConnectTimeout
            | UpstreamError::ResponseTimeout
            | UpstreamError::BodyTimeout => 504,
            UpstreamError::NoEndpoint
            | UpstreamError::PoolFull
            | UpstreamError::PoolTimeout
            | UpstreamError::ClusterFull
            | UpstreamError::PendingFull => 503,
            _ => 502,
        }
    }

    /// The canned response the client gets, naming the reason for a 503.
    pub fn response(self) -> &'static [u8] {
        use crate::http::canned;
        match self {
            UpstreamError::NoEndpoint => canned::NO_ENDPOINT,
            UpstreamError::ClusterFull => canned::CLUSTER_FULL,
            UpstreamError::PendingFull => canned::PENDING_FULL,
            e => canned::response(e.status()),
        }
    }

    /// A failure of the endpoint itself (counts against its circuit breaker).
    pub fn is_endpoint_fault(self) -> bool {
        !matches!(
            self,
            UpstreamError::NoEndpoint
                | UpstreamError::PoolFull
                | UpstreamError::PoolTimeout
                | UpstreamError::ClusterFull
                | UpstreamError::PendingFull
        )
    }
}

/// An exchange that did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    Client(ClientError),
    Upstream(UpstreamError),
}

impl From<ClientError> for ProxyError {
    fn from(e: ClientError) -> Self {
        ProxyError::Client(e)
    }
}

impl From<UpstreamError> for ProxyError {
    fn from(e: UpstreamError) -> Self {
        ProxyError::Upstream(e)
    }
}
