//! An HTTPS upstream for the tests (blocking rustls on std threads, one per connection): a
//! certificate from `certs.rs`, optionally requiring client certificates from a CA. It serves
//! keep-alive HTTP/1.1 GETs until the proxy closes, answering `200` with a body that says what
//! it saw (`sni=NAME client_cert=yes|no path=/p [body=N]`), tunnels after an `Upgrade`, or
//! drops each connection after its response (`After::Drop`), and counts TCP connections, completed
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
    /// Connections this upstream closed after a response.
    pub closed: usize,
}

pub struct TlsUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<TlsSeen>>,
    stop: Arc<AtomicBool>,
}

/// What the upstream does after each response.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Waits for the next request on the connection.
    KeepAlive,
    /// Says close_notify and closes, although the response did not announce it (an upstream
    /// that drops idle connections at once).
    Drop,
}

impl TlsUpstream {
    /// Serves `leaf`; with `client_ca`, a client certificate chaining to it is required.
    pub fn start(leaf: &Leaf, client_ca: Option<&str>) -> TlsUpstream {
        TlsUpstream::start_with(leaf, client_ca, After::KeepAlive)
    }

    pub fn start_with(leaf: &Leaf, client_ca: Option<&str>, after: After) -> TlsUpstream {
        TlsUpstream::start_versions(leaf, client_ca, after, rustls::DEFAULT_VERSIONS)
    }

    /// Like `start_with`, speaking only the given TLS versions (`&[&rustls::version::TLS12]`).
    pub fn start_versions(
        leaf: &Leaf,
        client_ca: Option<&str>,
        after: After,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsUpstream {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(leaf.cert())
            .expect("leaf PEM")
            .map(|c| c.expect("certificate"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(leaf.key()).expect("leaf key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
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
                thread::spawn(move || serve(sock, config, &s, after));
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

/// One connection: the handshake, then requests answered until EOF (a request body, by its
/// Content-Length, is read and its length reported); an `Upgrade` request gets a `101` and then
/// every byte echoed back.
fn serve(sock: TcpStream, config: Arc<ServerConfig>, seen: &Mutex<TlsSeen>, after: After) {
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
        let lower = head.to_ascii_lowercase();
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        seen.lock().unwrap().paths.push(path.clone());
        if lower.contains("\r\nupgrade:") {
            let _ = tls.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            );
            let _ = tls.write_all(&buf);
            loop {
                match tls.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tls.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        let len: usize = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            match tls.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..len);
        let body = if len > 0 {
            format!("sni={sni} client_cert={client_cert} path={path} body={len}")
        } else {
            format!("sni={sni} client_cert={client_cert} path={path}")
        };
        let close = lower.contains("connection: close") || after == After::Drop;
        let announce = close && after == After::KeepAlive;
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if announce {
                "Connection: close\r\n"
            } else {
                ""
            }
        );
        if tls
            .write_all(resp.as_bytes())
            .and_then(|_| tls.flush())
            .is_err()
            || close
        {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tls.sock.shutdown(std::net::Shutdown::Both);
            seen.lock().unwrap().closed += 1;
            return;
        }
    }
}
