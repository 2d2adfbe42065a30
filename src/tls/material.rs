//! A TLS listener's files, read and checked: each certificate chain with its key (the key must
//! match the leaf: `CertifiedKey::keys_match`), the names and expiry of each leaf, the client CA
//! bundle. Loaded on the main/coordinator thread at `--check`, start and each reload; held as DER
//! bytes only, never rustls objects, so every shard builds its own (`server_config`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};
use rustls_pki_types::CertificateDer;

use super::names;
use super::pem::{self, KeyDer};
use super::settings::{ClientAuth, ListenerTls};
use super::{FileRole, TlsError};

/// A certificate this close to its notAfter (or past it) is warned about at load.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// Everything a shard needs to build its TLS server config for one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// In configured order; the first is the default certificate.
    pub(super) certificates: Vec<Certificate>,
    /// DER of each CA client certificates must chain to (`None`: no client certificates).
    pub(super) client_ca: Option<Vec<Arc<[u8]>>>,
    pub(super) client_auth: ClientAuth,
    pub(super) alpn: Vec<String>,
}

/// One certificate chain with its key, and what its leaf says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The file the chain came from (for messages and metrics).
    pub path: PathBuf,
    /// DER, leaf first.
    pub(super) chain: Vec<Arc<[u8]>>,
    pub(super) key: KeyDer,
    /// DNS names of the leaf's SANs, lower-case (`*.example.com` for a wildcard).
    pub names: Vec<String>,
    pub not_after: SystemTime,
    /// notAfter as the certificate writes it.
    pub not_after_text: String,
}

/// The crypto provider every TLS object here is built with: aws-lc-rs, measured against ring in
/// bench/RESULTS.md ("rustls providers": 1.41x the full TLS 1.3 ECDSA handshakes per core, 2.15x
/// with RSA-2048, AES-GCM 2-11 % faster; ChaCha20 alike). The one place the provider is chosen.
pub(super) fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

impl Material {
    /// Reads and checks every file `tls` names; the error says `FILE: message`.
    pub fn load(tls: &ListenerTls) -> Result<Material, TlsError> {
        let provider = provider();
        let mut certificates = Vec::with_capacity(tls.certificates.len());
        for (j, pair) in tls.certificates.iter().enumerate() {
            certificates.push(certificate(&provider, &pair.cert, &pair.key, j)?);
        }
        let client_ca = match &tls.client_ca {
            None => None,
            Some(path) => {
                let at_ca = |e: TlsError| e.at(FileRole::ClientCa);
                let cas = pem::certificates(path).map_err(at_ca)?;
                roots(&cas).map_err(|m| at_ca(TlsError::file(path, m)))?;
                Some(cas)
            }
        };
        if certificates.is_empty() {
            return Err(TlsError::Config("no certificate configured".into()));
        }
        Ok(Material {
            certificates,
            client_ca,
            client_auth: tls.client_auth,
            alpn: tls.alpn.clone(),
        })
    }

    /// The certificates in configured order (the first is the default).
    pub fn certificates(&self) -> &[Certificate] {
        &self.certificates
    }

    /// (name, notAfter) of each certificate, for the expiry metric: the first SAN DNS name, or
    /// the file when the certificate has none.
    pub fn expiries(&self) -> Vec<(String, SystemTime)> {
        self.certificates
            .iter()
            .map(|c| (c.label(), c.not_after))
            .collect()
    }

    /// One line per certificate that has expired or expires within `EXPIRY_WARNING` of `now`
    /// (the caller prints them: `warning: …`).
    pub fn expiry_warnings(&self, now: SystemTime) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.certificates {
            match c.not_after.duration_since(now) {
                Err(_) => out.push(format!(
                    "{}: certificate for {} expired at {}",
                    c.path.display(),
                    c.label(),
                    c.not_after_text
                )),
                Ok(left) if left < EXPIRY_WARNING => out.push(format!(
                    "{}: certificate for {} expires at {} (in {} hours)",
                    c.path.display(),
                    c.label(),
                    c.not_after_text,
                    left.as_secs() / 3600
                )),
                Ok(_) => {}
            }
        }
        out
    }
}

/// Reads pair `j`: the chain in `cert`, the key in `key`, checked against each other.
pub(super) fn certificate(
    provider: &CryptoProvider,
    cert: &Path,
    key_path: &Path,
    j: usize,
) -> Result<Certificate, TlsError> {
    let at_cert = |e: TlsError| e.at(FileRole::Cert(j));
    let at_key = |e: TlsError| e.at(FileRole::Key(j));
    let chain = pem::certificates(cert).map_err(at_cert)?;
    let facts = names::facts(cert, &chain[0]).map_err(at_cert)?;
    let key = pem::private_key(key_path).map_err(at_key)?;
    let signing = provider
        .key_provider
        .load_private_key(key.to_private_key())
        .map_err(|e| {
            at_key(TlsError::file(
                key_path,
                format!("unsupported private key: {e}"),
            ))
        })?;
    let certified = CertifiedKey::new(der_chain(&chain), signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            let msg = format!("key does not match the certificate in {}", cert.display());
            return Err(at_key(TlsError::file(key_path, msg)));
        }
        Err(e) => return Err(at_cert(TlsError::file(cert, e.to_string()))),
    }
    Ok(Certificate {
        path: cert.to_path_buf(),
        chain,
        key,
        names: facts.names,
        not_after: facts.not_after,
        not_after_text: facts.not_after_text,
    })
}

impl Certificate {
    /// The name the certificate is known by in metrics and messages.
    pub fn label(&self) -> String {
        self.names
            .first()
            .cloned()
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

pub(super) fn der_chain(chain: &[Arc<[u8]>]) -> Vec<CertificateDer<'static>> {
    chain
        .iter()
        .map(|c| CertificateDer::from(c.to_vec()))
        .collect()
}

/// A root store of `cas`; the message says which certificate was refused and why.
pub(super) fn roots(cas: &[Arc<[u8]>]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for (i, ca) in cas.iter().enumerate() {
        store
            .add(CertificateDer::from(ca.to_vec()))
            .map_err(|e| format!("certificate {} is not a usable CA: {e}", i + 1))?;
    }
    Ok(store)
}
