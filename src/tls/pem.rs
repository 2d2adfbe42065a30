//! PEM files into DER bytes (rustls-pki-types' `PemObject`): certificate chains, one private key
//! (PKCS#8, SEC1 or PKCS#1), CA bundles. Each error names the file. Main/coordinator thread.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// A private key's DER bytes and which encoding they are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDer {
    Pkcs8(Arc<[u8]>),
    Sec1(Arc<[u8]>),
    Pkcs1(Arc<[u8]>),
}

impl KeyDer {
    /// The key as pki-types hands it to a crypto provider (a fresh copy each call).
    pub fn to_private_key(&self) -> PrivateKeyDer<'static> {
        match self {
            KeyDer::Pkcs8(d) => PrivateKeyDer::Pkcs8(d.to_vec().into()),
            KeyDer::Sec1(d) => PrivateKeyDer::Sec1(d.to_vec().into()),
            KeyDer::Pkcs1(d) => PrivateKeyDer::Pkcs1(d.to_vec().into()),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::file(path, format!("cannot read: {e}")))
}

/// Every `CERTIFICATE` section of `path`, in order (a chain: leaf first; or a CA bundle).
pub fn certificates(path: &Path) -> Result<Vec<Arc<[u8]>>, TlsError> {
    let bytes = read(path)?;
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        let c = c.map_err(|e| TlsError::file(path, format!("not a valid PEM file: {e}")))?;
        out.push(Arc::from(c.as_ref()));
    }
    if out.is_empty() {
        return Err(TlsError::file(
            path,
            "no certificate in PEM (expected a -----BEGIN CERTIFICATE----- section)",
        ));
    }
    Ok(out)
}

/// The first private key of `path`.
pub fn private_key(path: &Path) -> Result<KeyDer, TlsError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(PrivateKeyDer::Pkcs8(k)) => Ok(KeyDer::Pkcs8(Arc::from(k.secret_pkcs8_der()))),
        Ok(PrivateKeyDer::Sec1(k)) => Ok(KeyDer::Sec1(Arc::from(k.secret_sec1_der()))),
        Ok(PrivateKeyDer::Pkcs1(k)) => Ok(KeyDer::Pkcs1(Arc::from(k.secret_pkcs1_der()))),
        Ok(_) => Err(TlsError::file(path, "unsupported private key encoding")),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(TlsError::file(
            path,
            "no private key in PEM (expected a PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY \
             section)",
        )),
        Err(e) => Err(TlsError::file(path, format!("not a valid PEM file: {e}"))),
    }
}
