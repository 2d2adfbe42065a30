//! TLS origination, the certificate side: `ClientMaterial` reads a cluster's `tls` files (its CA
//! bundle, or the system trust store when it names none, and the client certificate with its
//! key) into DER once, on the main/coordinator thread at `--check`, start and every reload;
//! `client_config()` turns it into one rustls `ClientConfig` per shard (its session cache sits
//! behind a Mutex: never shared across cores). `verify = false` swaps the verifier for one that
//! accepts any certificate (the handshake's signatures are still checked). `failure()` names why
//! a handshake failed, for the 502 the client gets and the metric. Pure: nothing here touches a
//! socket.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::material::{certificate, der_chain, provider, roots, Certificate};
use super::pem;
use super::settings::UpstreamTls;
use super::{FileRole, TlsError};
use crate::error::TlsFailure;

/// Everything a shard needs to build the TLS client config of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMaterial {
    /// DER of each trusted CA (the file's, or the system store's); empty when not verifying.
    roots: Vec<Arc<[u8]>>,
    /// The roots came from the system store (for messages).
    pub system_roots: bool,
    verify: bool,
    /// The certificate presented when the upstream asks for one.
    client: Option<Certificate>,
}

impl ClientMaterial {
    /// Reads and checks every file `tls` names; the error says `FILE: message` and which role
    /// the file has (`ClientCa` = `tls.ca`, `Cert(0)` / `Key(0)` = `tls.cert` / `tls.key`).
    pub fn load(tls: &UpstreamTls) -> Result<ClientMaterial, TlsError> {
        let (roots_der, system_roots) = match (&tls.ca, tls.verify) {
            (_, false) => (Vec::new(), false),
            (Some(path), true) => {
                let at_ca = |e: TlsError| e.at(FileRole::ClientCa);
                let cas = pem::certificates(path).map_err(at_ca)?;
                roots(&cas).map_err(|m| at_ca(TlsError::file(path, m)))?;
                (cas, false)
            }
            (None, true) => (system_roots()?, true),
        };
        let client = match &tls.client {
            None => None,
            Some(pair) => Some(certificate(&provider(), &pair.cert, &pair.key, 0)?),
        };
        Ok(ClientMaterial {
            roots: roots_der,
            system_roots,
            verify: tls.verify,
            client,
        })
    }

    /// Trusts no CA: every handshake fails (a shard's fallback when a config cannot be built,
    /// so a TLS cluster fails closed, never to plain TCP).
    pub fn refusing() -> ClientMaterial {
        ClientMaterial {
            roots: Vec::new(),
            system_roots: false,
            verify: true,
            client: None,
        }
    }

    /// A fresh `ClientConfig` for the calling shard: TLS 1.3 and 1.2, ALPN `http/1.1`, the
    /// roots (or no verification), the client certificate if any.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = Arc::new(provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.verify {
            let mut store = RootCertStore::empty();
            store
                .add_parsable_certificates(self.roots.iter().map(|c| CertificateDer::from(&c[..])));
            builder.with_root_certificates(store)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        };
        let mut config = match &self.client {
            None => builder.with_no_client_auth(),
            Some(c) => builder
                .with_client_auth_cert(der_chain(&c.chain), c.key.to_private_key())
                .map_err(|e| TlsError::file(&c.path, e.to_string()))?,
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The system trust store as DER (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else the distribution's
/// bundle); an error when it holds no usable certificate.
fn system_roots() -> Result<Vec<Arc<[u8]>>, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(found.certs.iter().cloned());
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or("none found".to_string(), |e| e.to_string());
        return Err(TlsError::Config(format!(
            "no usable system root certificate ({why}); install ca-certificates or set tls.ca \
             (--upstream-ca)"
        )));
    }
    Ok(found.certs.iter().map(|c| Arc::from(c.as_ref())).collect())
}

/// The name a connection to an endpoint checks the certificate against (and sends as SNI unless
/// it is an IP address): `sni` when given, else the host of `host:port`.
pub fn server_name(sni: Option<&str>, endpoint: &str) -> Result<ServerName<'static>, String> {
    let host = match sni {
        Some(s) => s,
        None => endpoint
            .rsplit_once(':')
            .map_or(endpoint, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']'),
    };
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("{host:?} is not a DNS name or IP address to check a certificate for"))
}

/// Why a handshake failed, from the error the TLS stream returns (rustls' error inside an
/// `io::Error`).
pub fn failure(e: &std::io::Error) -> TlsFailure {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    inner.map_or(TlsFailure::Handshake, failure_of)
}

/// Why a TLS 1.3 upstream closed a connection whose handshake had ended on our side: its
/// refusal of our client certificate (or of our having none) arrives as an alert on the first
/// read after it. `Some` only for that alert, which rustls keeps as the connection's error.
/// Asked once an exchange on a new connection failed, never on the request path.
pub fn refused_after_handshake(conn: &mut rustls::ClientConnection) -> Option<TlsFailure> {
    match conn.process_new_packets() {
        Err(e) => Some(failure_of(&e)).filter(|f| *f == TlsFailure::ClientCertificate),
        Ok(_) => None,
    }
}

fn failure_of(e: &rustls::Error) -> TlsFailure {
    use rustls::AlertDescription as A;
    match e {
        // A certificate alert from the server is about ours: the only one we send.
        rustls::Error::AlertReceived(
            A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA,
        ) => TlsFailure::ClientCertificate,
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::NameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::Expired,
            _ => TlsFailure::BadCertificate,
        },
        _ => TlsFailure::Handshake,
    }
}

/// `verify = false`: any certificate for any name is accepted; the handshake signatures are
/// still checked, so the peer holds the key of the certificate it sent. (The tests' clients use
/// it too, to see which certificate a server picked whatever its names.)
pub(super) struct AcceptAny(pub(super) Arc<CryptoProvider>);

impl fmt::Debug for AcceptAny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptAny")
    }
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_sni_or_the_endpoint_host() {
        let name = |sni, ep| server_name(sni, ep).map(|n| n.to_str().into_owned());
        assert_eq!(name(None, "api.internal:443").unwrap(), "api.internal");
        assert_eq!(name(None, "127.0.0.1:8443").unwrap(), "127.0.0.1");
        assert_eq!(name(None, "[::1]:8443").unwrap(), "::1");
        assert_eq!(
            name(Some("svc.example"), "10.0.0.1:443").unwrap(),
            "svc.example"
        );
        assert!(matches!(
            server_name(None, "127.0.0.1:1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(name(Some("bad name"), "x:1").is_err());
    }

    #[test]
    fn failures_are_named_by_the_certificate_error() {
        let wrap = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let cert = |c| wrap(rustls::Error::InvalidCertificate(c));
        assert_eq!(
            failure(&cert(CertificateError::UnknownIssuer)),
            TlsFailure::UnknownIssuer
        );
        assert_eq!(
            failure(&cert(CertificateError::NotValidForName)),
            TlsFailure::NameMismatch
        );
        assert_eq!(
            failure(&cert(CertificateError::Expired)),
            TlsFailure::Expired
        );
        assert_eq!(
            failure(&cert(CertificateError::BadSignature)),
            TlsFailure::BadCertificate
        );
        for a in [
            rustls::AlertDescription::CertificateRequired,
            rustls::AlertDescription::UnknownCA,
            rustls::AlertDescription::BadCertificate,
        ] {
            let alert = wrap(rustls::Error::AlertReceived(a));
            assert_eq!(failure(&alert), TlsFailure::ClientCertificate, "{a:?}");
        }
        let alert = wrap(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(failure(&alert), TlsFailure::Handshake);
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(failure(&eof), TlsFailure::Handshake);
    }
}
