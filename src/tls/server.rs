//! One rustls `ServerConfig` from a listener's `Material`: TLS 1.2 and 1.3 with the aws-lc-rs
//! provider's default suites (AEAD only), ALPN from the config, client certificates verified
//! against `client_ca` (required or optional), certificates picked by SNI, session tickets from
//! the shard's `Ticketer`. Called once per shard on that shard's thread, so each shard owns its
//! session cache and ticketer (rustls keeps them behind a Mutex/RwLock: sharing one config would
//! make every handshake a cross-core lock).

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::material::{der_chain, provider, roots};
use super::resolver::SniResolver;
use super::settings::ClientAuth;
use super::tickets::Ticketer;
use super::{Material, TlsError};

impl Material {
    /// A fresh `ServerConfig` (new `CertifiedKey`s from the DER) for the calling shard, sealing
    /// and opening session tickets with that shard's `tickets` (keys from the coordinator, so a
    /// session resumes on any shard); session ids stay in this config's own cache.
    pub fn server_config(&self, tickets: &Arc<Ticketer>) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(provider());
        let mut keys = Vec::with_capacity(self.certificates.len());
        for c in &self.certificates {
            let signing = provider
                .key_provider
                .load_private_key(c.key.to_private_key())
                .map_err(|e| TlsError::file(&c.path, format!("unsupported private key: {e}")))?;
            keys.push((
                Arc::new(CertifiedKey::new(der_chain(&c.chain), signing)),
                &c.names[..],
            ));
        }
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(cas) => {
                let roots = Arc::new(roots(cas).map_err(TlsError::Config)?);
                let mut v = WebPkiClientVerifier::builder_with_provider(roots, provider);
                if self.client_auth == ClientAuth::Optional {
                    v = v.allow_unauthenticated();
                }
                let v = v.build().map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(v)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(SniResolver::new(keys)));
        config.alpn_protocols = self.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        config.ticketer = tickets.clone();
        Ok(Arc::new(config))
    }
}
