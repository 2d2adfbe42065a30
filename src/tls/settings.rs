//! What a TLS listener is configured with (`[[listeners]] tls = {…}`, or `--listen-tls` with
//! `--tls-cert`/`--tls-key`): certificate and key files, the client CA for mTLS, ALPN, and the
//! material read from those files once they passed `config::check` (at `--check`, start and every
//! reload), so shards never read a file. The config re-exports these types (config imports tls,
//! never the other way). Main thread builds it; every thread reads it inside `Config`.

use std::path::PathBuf;
use std::sync::Arc;

use super::Material;

/// The TLS side of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// Never empty; the first pair is the default certificate (no SNI, or no name matched).
    pub certificates: Vec<CertPaths>,
    /// CA bundle that client certificates must chain to; `None` = no client certificates asked.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required or only verified when sent (with `client_ca`).
    pub client_auth: ClientAuth,
    /// ALPN protocol ids offered, in preference order.
    pub alpn: Vec<String>,
    /// The files above as read by `config::check` (DER, checked); `None` until then. Each shard
    /// builds its own rustls config from it.
    pub material: Option<Arc<Material>>,
}

/// One certificate chain (PEM, leaf first) and its private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// mTLS mode of a listener with a `client_ca`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// A handshake without a certificate that chains to `client_ca` fails.
    #[default]
    Required,
    /// A certificate is verified when the client sends one; none is also accepted.
    Optional,
}

impl ClientAuth {
    pub const HELP: &'static str = "required or optional";

    pub fn parse(s: &str) -> Option<ClientAuth> {
        match s {
            "required" => Some(ClientAuth::Required),
            "optional" => Some(ClientAuth::Optional),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClientAuth::Required => "required",
            ClientAuth::Optional => "optional",
        }
    }
}

/// ALPN offered when none is configured: HTTP/2 first, then HTTP/1.1 (a client that offers
/// only `http/1.1`, or no ALPN at all, gets HTTP/1.1).
pub fn default_alpn() -> Vec<String> {
    SERVED_ALPN.iter().map(|a| a.to_string()).collect()
}

/// The ALPN ids a TLS listener can serve, in the default preference order.
pub const SERVED_ALPN: &[&str] = &["h2", "http/1.1"];

/// Checks a configured ALPN list: known ids only, none twice, not empty.
pub fn check_alpn(alpn: &[String]) -> Result<(), String> {
    if alpn.is_empty() {
        return Err("at least one protocol is required (like [\"http/1.1\"])".into());
    }
    for (i, a) in alpn.iter().enumerate() {
        if !SERVED_ALPN.contains(&a.as_str()) {
            return Err(format!(
                "{a:?} is not served over TLS (use {SERVED_ALPN:?})"
            ));
        }
        if alpn[..i].contains(a) {
            return Err(format!("{a:?} is listed twice"));
        }
    }
    Ok(())
}

impl ListenerTls {
    /// A listener with these certificates, no client certificates, ALPN `h2` and `http/1.1`.
    pub fn new(certificates: Vec<CertPaths>) -> ListenerTls {
        ListenerTls {
            certificates,
            client_ca: None,
            client_auth: ClientAuth::Required,
            alpn: default_alpn(),
            material: None,
        }
    }
}

/// The TLS side of one cluster's upstream connections (`[[clusters]] tls = {…}`, or
/// `--upstream-tls` / `--upstream-ca` for the flags' cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// CA bundle the endpoints' certificates must chain to; `None` = the system trust store.
    pub ca: Option<PathBuf>,
    /// Name sent as SNI and checked against the certificate; `None` = each endpoint's host
    /// (an IP address is checked against the certificate's IP SANs and sends no SNI).
    pub sni: Option<String>,
    /// `false` accepts any certificate (loud warning at start and reload).
    pub verify: bool,
    /// Client certificate and key presented when the upstream asks for one (mTLS).
    pub client: Option<CertPaths>,
    /// The files above as read by `config::check`; `None` until then. Each shard builds its own
    /// rustls client config from it.
    pub material: Option<Arc<super::ClientMaterial>>,
}

impl UpstreamTls {
    /// Verified against `ca`, or the system roots when `None`; SNI from the endpoint.
    pub fn new(ca: Option<PathBuf>) -> UpstreamTls {
        UpstreamTls {
            ca,
            sni: None,
            verify: true,
            client: None,
            material: None,
        }
    }
}
