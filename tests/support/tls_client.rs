//! A blocking TLS client for the tests (rustls, trusting one CA file): one connection, requests
//! written as raw bytes, responses read by Content-Length. For what curl and openssl cannot
//! script: several requests on one connection at chosen moments (drain, reload).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

pub struct TlsConn {
    pub tls: StreamOwned<ClientConnection, TcpStream>,
}

/// A response as read: status, head text, body.
#[derive(Debug)]
pub struct TlsResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl TlsConn {
    /// Connects and completes the handshake for `name` (SNI), trusting only `ca`.
    pub fn connect(addr: SocketAddr, ca: &str, name: &str) -> std::io::Result<TlsConn> {
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        TlsConn::over(sock, ca, name)
    }

    /// The handshake on a connected socket (after a PROXY header, say).
    pub fn over(sock: TcpStream, ca: &str, name: &str) -> std::io::Result<TlsConn> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).expect("read CA file") {
            roots.add(c.expect("CA PEM")).expect("CA certificate");
        }
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_string()).expect("server name");
        let conn = ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(TlsConn { tls })
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(bytes)?;
        self.tls.flush()
    }

    /// Reads one response (a head, then a Content-Length body).
    pub fn read_response(&mut self) -> std::io::Result<TlsResponse> {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if self.tls.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        self.tls.read_exact(&mut body)?;
        Ok(TlsResponse { status, head, body })
    }

    /// Sends a request and reads its response.
    pub fn exchange(&mut self, bytes: &[u8]) -> std::io::Result<TlsResponse> {
        self.send(bytes)?;
        self.read_response()
    }

    /// True when the server ends the connection (close_notify, EOF or a reset) within `within`;
    /// false when it stays open that long or sends bytes.
    pub fn closed(&mut self, within: Duration) -> bool {
        self.tls.sock.set_read_timeout(Some(within)).unwrap();
        let mut b = [0u8; 64];
        match self.tls.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

impl TlsConn {
    /// The handshake with `request` sent in the same TCP write as the client's Finished (as
    /// browsers and wrk often do): the server gets the request with the handshake's last flight.
    pub fn connect_with_request_in_finished(
        addr: SocketAddr,
        ca: &str,
        name: &str,
        request: &[u8],
    ) -> std::io::Result<TlsConn> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).expect("read CA file") {
            roots.add(c.expect("CA PEM")).expect("CA certificate");
        }
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_string()).expect("server name");
        let mut conn =
            ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        // Until the server's Finished is read, send what the client has and read what comes;
        // the client's own Finished is then queued, not yet written.
        while conn.is_handshaking() {
            while conn.wants_write() {
                conn.write_tls(&mut sock)?;
            }
            if !conn.is_handshaking() {
                break;
            }
            if conn.read_tls(&mut sock)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            conn.process_new_packets().map_err(std::io::Error::other)?;
        }
        conn.writer().write_all(request)?;
        let mut flight = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut flight)?;
        }
        sock.write_all(&flight)?;
        Ok(TlsConn {
            tls: StreamOwned::new(conn, sock),
        })
    }
}
