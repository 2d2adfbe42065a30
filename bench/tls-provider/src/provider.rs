//! The crypto provider under test, chosen by cargo feature (`ring` or `aws_lc_rs`), narrowed to
//! one cipher suite and X25519 so both providers run the same handshake.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, ProducesTickets};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};

use crate::certs::ServerCert;

#[cfg(all(feature = "ring", feature = "aws_lc_rs"))]
compile_error!("pick one provider: --features ring or --features aws_lc_rs");
#[cfg(not(any(feature = "ring", feature = "aws_lc_rs")))]
compile_error!("pick a provider: --features ring or --features aws_lc_rs");

#[cfg(feature = "aws_lc_rs")]
pub use rustls::crypto::aws_lc_rs as imp;
#[cfg(feature = "ring")]
pub use rustls::crypto::ring as imp;

#[cfg(feature = "aws_lc_rs")]
pub const NAME: &str = "aws-lc-rs";
#[cfg(feature = "ring")]
pub const NAME: &str = "ring";

pub use imp::cipher_suite as suite;

// rustls 0.23.48 deprecates ring's `default_provider` ("no support for post-quantum
// algorithms"); we pin X25519 for both providers anyway.
#[allow(deprecated)]
pub fn provider(suite: SupportedCipherSuite) -> Arc<CryptoProvider> {
    let mut p = imp::default_provider();
    p.cipher_suites = vec![suite];
    p.kx_groups = vec![imp::kx_group::X25519];
    Arc::new(p)
}

pub fn version_of(suite: SupportedCipherSuite) -> &'static [&'static SupportedProtocolVersion] {
    static TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    match suite {
        SupportedCipherSuite::Tls13(_) => &TLS13,
        SupportedCipherSuite::Tls12(_) => &TLS12,
    }
}

/// Server side. `tickets`: stateless TLS 1.3 tickets from the provider's ticketer (2 per
/// handshake, rustls' default); without, no tickets and no session cache at all.
pub fn server(suite: SupportedCipherSuite, cert: &ServerCert, tickets: bool) -> Arc<ServerConfig> {
    let mut c = ServerConfig::builder_with_provider(provider(suite))
        .with_protocol_versions(version_of(suite))
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key())
        .expect("certificate");
    c.session_storage = Arc::new(NoServerSessionStorage {});
    if tickets {
        let t: Arc<dyn ProducesTickets> = imp::Ticketer::new().expect("ticketer");
        c.ticketer = t;
    } else {
        c.send_tls13_tickets = 0;
    }
    Arc::new(c)
}

/// Client side (not what we measure, but it shares the provider). `resume`: keep rustls' default
/// in-memory ticket store; otherwise resumption is disabled.
pub fn client(
    suite: SupportedCipherSuite,
    roots: &RootCertStore,
    resume: bool,
) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(provider(suite))
        .with_protocol_versions(version_of(suite))
        .expect("versions")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    if !resume {
        c.resumption = Resumption::disabled();
    }
    Arc::new(c)
}
