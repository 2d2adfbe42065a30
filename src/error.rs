//! Why an exchange failed, by side: the client or the upstream (`ProxyError`'s variant). The side
//! picks the response status, whether a retry is allowed, and (later) what logs and metrics say.
//! Each error type says its own status here (`status()`), and the bytes that carry it
//! (`response()`); callers never map a failure to a status themselves. Pure code, any thread.

use std::io;

use crate::http::canned;

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

impl ClientError {
    /// The status the client gets, if it can still be answered (`None`: it went away).
    pub fn status(self) -> Option<u16> {
        match self {
            ClientError::Io(_) => None,
            ClientError::BadBody => Some(400),
            ClientError::BodyTimeout => Some(408),
            ClientError::TooLarge => Some(413),
        }
    }
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
    /// An HTTP/2 upstream did not process the stream (REFUSED_STREAM, or above its GOAWAY's last
    /// stream id): it may be sent again on another connection, whatever the method.
    Refused,
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
    /// The TLS handshake with the upstream failed (its certificate was rejected, or it refused
    /// ours, or it spoke no TLS we accept). Never retried with verification off.
    Tls(TlsFailure),
    /// A gRPC request for a cluster that speaks HTTP/1.1 (which cannot carry its trailers): a
    /// configuration error, not the endpoint's fault.
    GrpcOverH1,
    /// An HTTP/1.1 `Upgrade` (WebSocket) for a cluster that speaks HTTP/2, which has no such
    /// upgrade (answered 501; not the endpoint's fault).
    UpgradeOverH2,
}

/// Why a TLS handshake with an upstream failed: the `reason` label of
/// `shardgate_upstream_tls_failures_total`, in `TlsFailure::ALL` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate does not chain to a trusted CA (`tls.ca` or the system roots).
    UnknownIssuer,
    /// The certificate is not valid for the name checked (`tls.sni` or the endpoint's host).
    NameMismatch,
    /// The certificate has expired or is not valid yet.
    Expired,
    /// Any other certificate problem (bad signature, wrong purpose, unreadable).
    BadCertificate,
    /// No certificate problem seen here: an alert from the upstream, no common version or
    /// cipher, or the connection closed mid-handshake.
    Handshake,
    /// The handshake did not finish within the connect timeout (answered 504).
    Timeout,
    /// The upstream wants a client certificate and refused ours, or the cluster has none: its
    /// alert (`certificate_required`, `bad_certificate`, `unknown_ca`, ...) came during the
    /// handshake (TLS 1.2) or on the first read after it (TLS 1.3, where the client's side of
    /// the handshake ends before the server has looked at the certificate).
    ClientCertificate,
}

impl TlsFailure {
    pub const ALL: [TlsFailure; 7] = [
        TlsFailure::UnknownIssuer,
        TlsFailure::NameMismatch,
        TlsFailure::Expired,
        TlsFailure::BadCertificate,
        TlsFailure::Handshake,
        TlsFailure::Timeout,
        TlsFailure::ClientCertificate,
    ];
    /// Label values, by `index()`.
    pub const NAMES: [&'static str; 7] = [
        "unknown_issuer",
        "name_mismatch",
        "expired",
        "bad_certificate",
        "handshake",
        "timeout",
        "client_certificate",
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The upstream's certificate was rejected (the client is told so).
    pub fn is_certificate(self) -> bool {
        matches!(
            self,
            TlsFailure::UnknownIssuer
                | TlsFailure::NameMismatch
                | TlsFailure::Expired
                | TlsFailure::BadCertificate
        )
    }
}

impl UpstreamError {
    /// The status the client gets when this happens before any response byte was sent.
    pub fn status(self) -> u16 {
        match self {
            UpstreamError::ConnectTimeout
            | UpstreamError::ResponseTimeout
            | UpstreamError::BodyTimeout
            | UpstreamError::Tls(TlsFailure::Timeout) => 504,
            UpstreamError::NoEndpoint
            | UpstreamError::PoolFull
            | UpstreamError::PoolTimeout
            | UpstreamError::ClusterFull
            | UpstreamError::PendingFull => 503,
            UpstreamError::Connect(_)
            | UpstreamError::Closed
            | UpstreamError::Io(_)
            | UpstreamError::Malformed
            | UpstreamError::Refused
            | UpstreamError::GrpcOverH1
            | UpstreamError::Tls(_) => 502,
            UpstreamError::UpgradeOverH2 => 501,
        }
    }

    /// The canned response the client gets, naming the reason for a 503.
    pub fn response(self) -> &'static [u8] {
        match self {
            UpstreamError::NoEndpoint => canned::NO_ENDPOINT,
            UpstreamError::ClusterFull => canned::CLUSTER_FULL,
            UpstreamError::PendingFull => canned::PENDING_FULL,
            UpstreamError::GrpcOverH1 => canned::GRPC_OVER_H1,
            UpstreamError::UpgradeOverH2 => canned::UPGRADE_OVER_H2,
            UpstreamError::Tls(f) if f.is_certificate() => canned::UPSTREAM_CERT_REJECTED,
            UpstreamError::Tls(TlsFailure::Handshake) => canned::UPSTREAM_TLS_FAILED,
            UpstreamError::Tls(TlsFailure::ClientCertificate) => {
                canned::UPSTREAM_CLIENT_CERT_REFUSED
            }
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
                | UpstreamError::GrpcOverH1
                | UpstreamError::UpgradeOverH2
        )
    }
}

/// An exchange that did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    Client(ClientError),
    Upstream(UpstreamError),
}

impl ProxyError {
    /// The status the client gets when no response byte was sent yet (`None`: nobody to answer).
    pub fn status(self) -> Option<u16> {
        match self {
            ProxyError::Client(e) => e.status(),
            ProxyError::Upstream(e) => Some(e.status()),
        }
    }

    /// The canned response carrying `status()` (empty when there is none).
    pub fn response(self) -> &'static [u8] {
        match self {
            ProxyError::Client(e) => e.status().map_or(&[][..], canned::response),
            ProxyError::Upstream(e) => e.response(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use io::ErrorKind::{ConnectionRefused, ConnectionReset, UnexpectedEof};

    /// The status line of a canned response.
    fn status_of(bytes: &[u8]) -> u16 {
        std::str::from_utf8(&bytes[9..12]).unwrap().parse().unwrap()
    }

    #[test]
    fn each_client_error_has_one_status_and_its_response_carries_it() {
        let cases = [
            (ClientError::Io(UnexpectedEof), None),
            (ClientError::Io(ConnectionReset), None),
            (ClientError::BadBody, Some(400)),
            (ClientError::BodyTimeout, Some(408)),
            (ClientError::TooLarge, Some(413)),
        ];
        for (e, want) in cases {
            assert_eq!(e.status(), want, "{e:?}");
            let p = ProxyError::from(e);
            assert_eq!(p.status(), want, "{e:?} as ProxyError");
            match want {
                None => assert!(p.response().is_empty(), "{e:?}: nothing to send"),
                Some(s) => assert_eq!(status_of(p.response()), s, "{e:?}"),
            }
        }
    }

    #[test]
    fn each_upstream_error_has_one_status_and_its_response_carries_it() {
        use UpstreamError::*;
        let cases = [
            (Connect(ConnectionRefused), 502),
            (ConnectTimeout, 504),
            (ResponseTimeout, 504),
            (Closed, 502),
            (Io(ConnectionReset), 502),
            (Malformed, 502),
            (BodyTimeout, 504),
            (NoEndpoint, 503),
            (PoolFull, 503),
            (PoolTimeout, 503),
            (ClusterFull, 503),
            (PendingFull, 503),
            (Tls(TlsFailure::UnknownIssuer), 502),
            (Tls(TlsFailure::Handshake), 502),
            (Tls(TlsFailure::Timeout), 504),
        ];
        for (e, want) in cases {
            assert_eq!(e.status(), want, "{e:?}");
            assert_eq!(status_of(e.response()), want, "{e:?}");
            let p = ProxyError::from(e);
            assert_eq!(
                (p.status(), p.response()),
                (Some(want), e.response()),
                "{e:?}"
            );
        }
        // A 503 names its reason when the proxy knows it.
        assert_eq!(NoEndpoint.response(), canned::NO_ENDPOINT);
        assert_eq!(ClusterFull.response(), canned::CLUSTER_FULL);
        assert_eq!(PendingFull.response(), canned::PENDING_FULL);
        for f in TlsFailure::ALL.into_iter().filter(|f| f.is_certificate()) {
            assert_eq!(Tls(f).response(), canned::UPSTREAM_CERT_REJECTED, "{f:?}");
        }
        assert_eq!(
            Tls(TlsFailure::Handshake).response(),
            canned::UPSTREAM_TLS_FAILED
        );
        assert_eq!(
            Tls(TlsFailure::ClientCertificate).response(),
            canned::UPSTREAM_CLIENT_CERT_REFUSED
        );
        assert_eq!(Tls(TlsFailure::ClientCertificate).status(), 502);
        for (i, f) in TlsFailure::ALL.into_iter().enumerate() {
            assert_eq!(f.index(), i);
        }
    }

    #[test]
    fn only_endpoint_failures_count_against_the_breaker() {
        use UpstreamError::*;
        for e in [NoEndpoint, PoolFull, PoolTimeout, ClusterFull, PendingFull] {
            assert!(!e.is_endpoint_fault(), "{e:?}");
        }
        for e in [
            Connect(ConnectionRefused),
            ConnectTimeout,
            ResponseTimeout,
            Closed,
        ] {
            assert!(e.is_endpoint_fault(), "{e:?}");
        }
        for e in [
            Io(ConnectionReset),
            Malformed,
            BodyTimeout,
            Tls(TlsFailure::NameMismatch),
            Tls(TlsFailure::Handshake),
        ] {
            assert!(e.is_endpoint_fault(), "{e:?}");
        }
    }
}
