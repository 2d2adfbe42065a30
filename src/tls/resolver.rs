//! Which certificate a handshake gets, from its SNI: an exact name, then a wildcard covering it
//! (`*.example.com` for `a.example.com`), then the listener's default (its first certificate);
//! a ClientHello without SNI gets the default. Each shard owns one (built in `server_config`);
//! rustls calls `resolve` on that shard during the handshake: map lookups, no allocation for a
//! lower-case name, no lock.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Certificates by name; the first certificate naming a name wins it.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the suffix after `*.` (`example.com` for `*.example.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// `certs` in configured order, each with its lower-case SAN names; never empty.
    pub fn new(certs: Vec<(Arc<CertifiedKey>, &[String])>) -> SniResolver {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let default = certs[0].0.clone();
        for (key, names) in certs {
            for n in names {
                let (map, name) = match n.strip_prefix("*.") {
                    Some(suffix) => (&mut wildcard, suffix),
                    None => (&mut exact, n.as_str()),
                };
                map.entry(name.to_string()).or_insert_with(|| key.clone());
            }
        }
        SniResolver {
            exact,
            wildcard,
            default,
        }
    }

    /// The certificate for server name `sni` (`None`: no SNI).
    pub fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(sni) = sni else {
            return &self.default;
        };
        let lower;
        let name = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = sni.to_ascii_lowercase();
            lower.as_str()
        } else {
            sni
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(k) = self.exact.get(name) {
            return k;
        }
        name.split_once('.')
            .filter(|(label, _)| !label.is_empty())
            .and_then(|(_, rest)| self.wildcard.get(rest))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).clone())
    }
}
