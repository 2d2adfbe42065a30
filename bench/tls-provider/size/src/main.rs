//! Trivial binary: reads stdin and writes it back, through a rustls server connection when built
//! with a provider (`--features ring` or `--features aws_lc_rs`), so the handshake and record
//! code of that provider is linked in. Built only to compare build time and binary size.

use std::io::{Read, Write};

#[cfg(any(feature = "ring", feature = "aws_lc_rs"))]
#[allow(deprecated)]
fn serve(input: &[u8], out: &mut Vec<u8>) {
    use std::sync::Arc;
    #[cfg(feature = "aws_lc_rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws_lc_rs")))]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new()));
    let mut conn = rustls::ServerConnection::new(Arc::new(config)).expect("connection");
    let mut rd = input;
    while !rd.is_empty() && conn.read_tls(&mut rd).unwrap_or(0) > 0 {
        if conn.process_new_packets().is_err() {
            break;
        }
    }
    while conn.wants_write() {
        conn.write_tls(out).expect("write_tls");
    }
}

#[cfg(not(any(feature = "ring", feature = "aws_lc_rs")))]
fn serve(input: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(input);
}

fn main() {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("stdin");
    let mut out = Vec::new();
    serve(&input, &mut out);
    std::io::stdout().write_all(&out).expect("stdout");
}
