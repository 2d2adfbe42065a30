//! Test helpers for `tls`: certificates made with rcgen into a temporary directory, and an
//! in-memory handshake between a rustls client and a server built from `Material`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SignatureAlgorithm,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ServerConnection;
use rustls::{ClientConfig, ClientConnection, ServerConfig};

use crate::tls::client::AcceptAny;
use crate::tls::material::provider;

/// A fresh directory under the system temp dir, removed on drop.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("sg-tls-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA that signs leaves.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        let key = KeyPair::generate().unwrap();
        let pem = p.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf for `names` with a key of algorithm `alg`: (cert PEM, key PEM, cert DER).
    pub fn leaf(&self, names: &[&str], alg: &'static SignatureAlgorithm) -> Leaf {
        self.leaf_for(names, alg, ExtendedKeyUsagePurpose::ServerAuth)
    }

    pub fn client(&self, name: &str) -> Leaf {
        self.leaf_for(
            &[name],
            &rcgen::PKCS_ECDSA_P256_SHA256,
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn leaf_for(
        &self,
        names: &[&str],
        alg: &'static SignatureAlgorithm,
        eku: ExtendedKeyUsagePurpose,
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.extended_key_usages = vec![eku];
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

pub struct Leaf {
    pub cert: String,
    pub key: String,
    pub der: Vec<u8>,
}

/// A client's view of a handshake: the leaf it was served, or the first error either side hit.
pub fn handshake(
    server: Arc<ServerConfig>,
    sni: Option<&str>,
    client_cert: Option<&Leaf>,
) -> Result<Vec<u8>, String> {
    let builder = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(Arc::new(provider()))));
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let chain = vec![CertificateDer::from(c.der.clone())];
            let key = PrivateKeyDer::from_pem_slice_any(&c.key);
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.enable_sni = sni.is_some();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_string()).unwrap();
    let mut client = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut server = ServerConnection::new(server).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut &buf[..]).unwrap();
        server
            .process_new_packets()
            .map_err(|e| format!("server: {e}"))?;
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        client.read_tls(&mut &buf[..]).unwrap();
        client
            .process_new_packets()
            .map_err(|e| format!("client: {e}"))?;
        if !client.is_handshaking() && !server.is_handshaking() {
            assert_eq!(server.alpn_protocol(), Some(&b"http/1.1"[..]));
            let leaf = client.peer_certificates().unwrap()[0].to_vec();
            return Ok(leaf);
        }
    }
    Err("handshake did not finish".into())
}

trait AnyKey {
    fn from_pem_slice_any(pem: &str) -> PrivateKeyDer<'static>;
}

impl AnyKey for PrivateKeyDer<'static> {
    fn from_pem_slice_any(pem: &str) -> PrivateKeyDer<'static> {
        use rustls::pki_types::pem::PemObject;
        PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
    }
}

pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A client config for resumption tests: any server certificate, the given protocol versions,
/// rustls' default session store (so a second connection offers what the first was given).
pub fn resuming_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(Arc::new(provider()))))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One connection of `client` to `server` for `sni`, run until the client has read everything
/// the server sent after the handshake too (TLS 1.3 tickets): how the server saw the handshake.
pub fn connect(
    server: Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    sni: &str,
) -> Result<rustls::HandshakeKind, String> {
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut client = ClientConnection::new(client.clone(), name).unwrap();
    let mut server = ServerConnection::new(server).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut &buf[..]).unwrap();
        server
            .process_new_packets()
            .map_err(|e| format!("server: {e}"))?;
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        client.read_tls(&mut &buf[..]).unwrap();
        client
            .process_new_packets()
            .map_err(|e| format!("client: {e}"))?;
        if !client.is_handshaking() && !server.is_handshaking() && !server.wants_write() {
            return server
                .handshake_kind()
                .ok_or_else(|| "no handshake kind".into());
        }
    }
    Err("handshake did not finish".into())
}
