//! What one TLS connection negotiated, as the access log and the upstream request carry it
//! (`Negotiated`): version, cipher suite, SNI, and the client certificate a listener with a
//! `client_ca` verified (its subject, and the `X-Forwarded-Client-Cert` value in Envoy's format:
//! `Hash=<sha256 of the DER>;Subject="<DN>";URI=<uri SAN>;DNS=<dns SAN>`). Computed once per
//! connection, after its handshake, on the shard that serves it.

use rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256;
use rustls::{ProtocolVersion, ServerConnection};
use x509_parser::extensions::GeneralName;

/// The facts of one TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// The IANA name of the cipher suite (`TLS13_AES_128_GCM_SHA256`, …).
    pub cipher: &'static str,
    /// The server name the client asked for, if any.
    pub sni: Option<Box<str>>,
    /// The verified client certificate (mTLS), if the client sent one.
    pub client_cert: Option<ClientCert>,
}

/// A verified client certificate as the proxy passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject distinguished name (RFC 4514 style, `CN=…, O=…`).
    pub subject: Box<str>,
    /// The `X-Forwarded-Client-Cert` value.
    pub xfcc: Box<[u8]>,
}

impl Negotiated {
    /// What `conn` negotiated (call after its handshake).
    pub fn of(conn: &ServerConnection) -> Negotiated {
        let version = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        let client_cert = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| client_cert(leaf.as_ref()));
        Negotiated {
            version,
            cipher,
            sni: conn.server_name().map(Box::from),
            client_cert,
        }
    }
}

/// The subject and XFCC value of a client certificate (DER). rustls verified it already; one
/// that x509-parser cannot read still gets its hash.
pub fn client_cert(der: &[u8]) -> ClientCert {
    let mut xfcc = String::from("Hash=");
    for b in sha256(der) {
        xfcc.push_str(&format!("{b:02x}"));
    }
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return ClientCert {
            subject: Box::from(""),
            xfcc: xfcc.into_bytes().into(),
        };
    };
    let subject = cert.subject().to_string();
    xfcc.push_str(";Subject=\"");
    for c in subject.chars() {
        if c == '"' || c == '\\' {
            xfcc.push('\\');
        }
        xfcc.push(c);
    }
    xfcc.push('"');
    let names: Vec<&GeneralName<'_>> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san.value.general_names.iter().collect(),
        _ => Vec::new(),
    };
    for n in &names {
        if let GeneralName::URI(u) = n {
            xfcc.push_str(";URI=");
            xfcc.push_str(u);
        }
    }
    for n in &names {
        if let GeneralName::DNSName(d) = n {
            xfcc.push_str(";DNS=");
            xfcc.push_str(d);
        }
    }
    ClientCert {
        subject: subject.into(),
        xfcc: xfcc.into_bytes().into(),
    }
}

/// SHA-256 through the crypto provider's own hash (no second hashing crate).
fn sha256(data: &[u8]) -> Vec<u8> {
    let suite = TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite has TLS 1.3 parameters");
    suite.common.hash_provider.hash(data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_becomes_envoys_xfcc_value() {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://mesh/ns/a/sa/b".try_into().unwrap(),
        ));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test \"Client\"");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let c = client_cert(cert.der());
        let xfcc = String::from_utf8(c.xfcc.to_vec()).unwrap();
        let hash: String = sha256(cert.der())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash.len(), 64);
        assert!(
            xfcc.starts_with(&format!("Hash={hash};Subject=\"")),
            "{xfcc}"
        );
        assert!(c.subject.contains("CN=Test \"Client\""), "{}", c.subject);
        assert!(
            xfcc.contains("CN=Test \\\"Client\\\""),
            "quotes escaped: {xfcc}"
        );
        assert!(
            xfcc.ends_with("\";URI=spiffe://mesh/ns/a/sa/b;DNS=client.example"),
            "{xfcc}"
        );
        // Not a certificate: the hash alone.
        let c = client_cert(b"not der");
        assert!(c.subject.is_empty());
        assert_eq!(c.xfcc.len(), "Hash=".len() + 64);
    }
}
