//! An HTTPS upstream for the tests (blocking rustls on std threads, one per connection): a
//! certificate from `certs.rs`, optionally requiring client certificates from a CA. It serves
//! keep-alive HTTP/1.1 GETs until the proxy closes, answering `200` with a body that says what
//! it saw (`sni=NAME client_cert=yes|no path=/p`), and counts TCP connections, completed
//! handshakes and requests, so a test can assert reuse (many requests, one handshake). A test
//! that never made a TLS upstream would fail here: plain HTTP to it fails the handshake.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use super::certs::Leaf;

/// What the upstream has seen so far.
#[derive(Clone, Debug, Default)]
pub struct TlsSeen {
    /// TCP connections accepted.
    pub accepted: usize,
    /// Handshakes completed.
    pub handshakes: usize,
    /// Handshakes that failed (the client rejected us, or we rejected the client).
    pub failed: usize,
    /// Request paths, in order.
    pub paths: Vec<String>,
    /// The SNI of each completed handshake (`-` when none was sent).
    pub sni: Vec<String>,
}

pub struct TlsUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<TlsSeen>>,
    stop: Arc<AtomicBool>,
}

impl TlsUpstream {
    /// Serves `leaf`; with `client_ca`, a client certificate chaining to it is required.
    pub fn start(leaf: &Leaf, client_ca: Option<&str>) -> TlsUpstream {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(leaf.cert())
            .expect("leaf PEM")
            .map(|c| c.expect("certificate"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(leaf.key()).expect("leaf key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).expect("CA PEM") {
                    roots.add(c.expect("CA")).expect("CA certificate");
                }
                let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .expect("client verifier");
                builder.with_client_cert_verifier(v)
            }
        };
        let config = Arc::new(builder.with_single_cert(chain, key).expect("server config"));
        // `localhost`, as the proxy resolves an endpoint written `localhost:PORT` (its SNI).
        let listener = TcpListener::bind("localhost:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(TlsSeen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        thread::spawn(move || {
            for sock in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(sock) = sock else { continue };
                s.lock().unwrap().accepted += 1;
                let (config, s) = (config.clone(), s.clone());
                thread::spawn(move || serve(sock, config, &s));
            }
        });
        TlsUpstream { addr, seen, stop }
    }

    pub fn seen(&self) -> TlsSeen {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// One connection: the handshake, then GETs answered until EOF.
fn serve(sock: TcpStream, config: Arc<ServerConfig>, seen: &Mutex<TlsSeen>) {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let conn = ServerConnection::new(config).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            seen.lock().unwrap().failed += 1;
            return;
        }
    }
    let sni = tls.conn.server_name().unwrap_or("-").to_string();
    let client_cert = if tls.conn.peer_certificates().is_some() {
        "yes"
    } else {
        "no"
    };
    {
        let mut s = seen.lock().unwrap();
        s.handshakes += 1;
        s.sni.push(sni.clone());
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match tls.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        seen.lock().unwrap().paths.push(path.clone());
        let body = format!("sni={sni} client_cert={client_cert} path={path}");
        let close = head.to_ascii_lowercase().contains("connection: close");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if tls
            .write_all(resp.as_bytes())
            .and_then(|_| tls.flush())
            .is_err()
            || close
        {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return;
        }
    }
}
