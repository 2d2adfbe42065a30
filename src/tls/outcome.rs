//! How a TLS handshake on a listener ended, as the handshake counter splits it
//! (`shardgate_tls_handshakes_total{listener,result}`): done with TLS 1.3 or 1.2, or failed by
//! reason.
//! Pure; the TLS front-end classifies each accepted connection once, on its shard.

/// One handshake's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOutcome {
    Tls13,
    Tls12,
    /// Plain HTTP sent to the TLS port (answered with a 400).
    PlainHttp,
    /// Not finished within `--tls-handshake-timeout` (or nothing sent at all).
    Timeout,
    /// No protocol version or cipher suite in common (rustls `PeerIncompatible`).
    NoSharedCipher,
    /// A client certificate missing or refused (mTLS), or the client refused ours.
    BadCertificate,
    /// Bytes that are not TLS, or a malformed handshake message.
    Invalid,
    /// The peer closed or reset the connection, or anything else.
    Failed,
}

impl HandshakeOutcome {
    /// The `result` label of each outcome, by `index()`.
    pub const NAMES: [&'static str; 8] = [
        "tls1.3",
        "tls1.2",
        "plain_http",
        "timeout",
        "no_shared_cipher",
        "bad_certificate",
        "invalid",
        "failed",
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// A finished handshake's version index (0: TLS 1.3, 1: TLS 1.2); `None` for a failure.
    pub fn version(self) -> Option<usize> {
        match self {
            HandshakeOutcome::Tls13 => Some(0),
            HandshakeOutcome::Tls12 => Some(1),
            _ => None,
        }
    }

    /// The outcome of a handshake that returned `e` (rustls' error inside an `io::Error`).
    pub fn of_error(e: &std::io::Error) -> HandshakeOutcome {
        use rustls::Error;
        match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
            Some(Error::PeerIncompatible(_)) => HandshakeOutcome::NoSharedCipher,
            Some(
                Error::InvalidCertificate(_)
                | Error::NoCertificatesPresented
                | Error::AlertReceived(rustls::AlertDescription::BadCertificate)
                | Error::AlertReceived(rustls::AlertDescription::UnknownCA)
                | Error::AlertReceived(rustls::AlertDescription::CertificateUnknown),
            ) => HandshakeOutcome::BadCertificate,
            Some(
                Error::InvalidMessage(_)
                | Error::InappropriateMessage { .. }
                | Error::InappropriateHandshakeMessage { .. }
                | Error::PeerMisbehaved(_),
            ) => HandshakeOutcome::Invalid,
            _ => HandshakeOutcome::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_own_name_and_errors_map_by_kind() {
        let all = [
            HandshakeOutcome::Tls13,
            HandshakeOutcome::Tls12,
            HandshakeOutcome::PlainHttp,
            HandshakeOutcome::Timeout,
            HandshakeOutcome::NoSharedCipher,
            HandshakeOutcome::BadCertificate,
            HandshakeOutcome::Invalid,
            HandshakeOutcome::Failed,
        ];
        for (i, o) in all.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
        let wrap = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert_eq!(
            HandshakeOutcome::of_error(&wrap(rustls::Error::NoCertificatesPresented)),
            HandshakeOutcome::BadCertificate
        );
        assert_eq!(
            HandshakeOutcome::of_error(&wrap(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::NoCipherSuitesInCommon
            ))),
            HandshakeOutcome::NoSharedCipher
        );
        assert_eq!(
            HandshakeOutcome::of_error(&std::io::ErrorKind::UnexpectedEof.into()),
            HandshakeOutcome::Failed
        );
    }
}
