//! An upstream connection as the pool holds it: plain TCP, or TLS over TCP (the shard's own
//! `TlsStream` over rustls' client connection), and how this shard opens a TLS one (`Origination`: the shard's own
//! rustls client config, so its session cache is never shared across cores, and the name the
//! certificate is checked for). The exchange code runs over either directly (the pipeline matches
//! once per attempt, so a plain connection's reads and writes stay direct calls); splice stays a
//! capability of the plain kind only (`Wire::as_tcp`). Shard thread.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::{ClientConfig, ClientConnection};

use crate::error::TlsFailure;
use crate::shard::io::Wire;
use crate::shard::tls_stream::TlsStream;
use crate::tls::ServerName;

/// A TLS client stream over TCP.
pub type TlsUpstream = TlsStream<ClientConnection>;

impl Wire for TlsUpstream {}

/// One upstream connection.
pub enum UpStream {
    Plain(TcpStream),
    /// Boxed: rustls' state is some KiB, which plain connections (and the futures that hold a
    /// lease) should not carry. `fd` is the TCP socket under it (the liveness peek before reuse,
    /// a drain shutting a tunnel).
    Tls {
        stream: Box<TlsUpstream>,
        fd: RawFd,
    },
}

impl UpStream {
    /// The TCP socket, whichever the kind.
    pub fn fd(&self) -> RawFd {
        match self {
            UpStream::Plain(s) => s.as_raw_fd(),
            UpStream::Tls { fd, .. } => *fd,
        }
    }
}

impl UpStream {
    /// A TLS upstream's refusal of our client certificate that came after the handshake ended
    /// on our side (TLS 1.3): asked when an exchange on the connection failed. When the failure
    /// was a write that met the reset following the alert, the alert is still in the socket:
    /// it is peeked at and shown to rustls (the connection is dropped after this anyway).
    pub fn refused_after_handshake(&mut self) -> Option<TlsFailure> {
        let UpStream::Tls { stream, fd } = self else {
            return None;
        };
        if let Some(f) = crate::tls::refused_after_handshake(&mut stream.conn) {
            return Some(f);
        }
        let mut pending = [0u8; 512];
        let n = crate::sys::peek(*fd, &mut pending).ok()?;
        stream.conn.read_tls(&mut &pending[..n]).ok()?;
        crate::tls::refused_after_handshake(&mut stream.conn)
    }
}

impl AsRawFd for UpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

/// How this shard speaks TLS to one endpoint.
#[derive(Clone)]
pub struct Origination {
    /// This shard's rustls client config for the cluster (its own session cache).
    pub connector: Arc<ClientConfig>,
    /// Sent as SNI (unless an IP address) and checked against the certificate.
    pub name: ServerName<'static>,
}

impl Origination {
    /// The handshake on a connected socket.
    pub async fn handshake(&self, tcp: TcpStream) -> std::io::Result<UpStream> {
        let fd = tcp.as_raw_fd();
        let conn = ClientConnection::new(self.connector.clone(), self.name.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut stream = TlsStream::new(tcp, conn);
        stream.handshake().await?;
        Ok(UpStream::Tls {
            stream: Box::new(stream),
            fd,
        })
    }
}

// === impl rent I/O for UpStream (the tunnel and its first bytes; attempts match once) ===

impl AsyncReadRent for UpStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.read(buf).await,
            UpStream::Tls { stream, .. } => stream.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.readv(buf).await,
            UpStream::Tls { stream, .. } => stream.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.write(buf).await,
            UpStream::Tls { stream, .. } => stream.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpStream::Plain(s) => s.writev(buf).await,
            UpStream::Tls { stream, .. } => stream.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            UpStream::Plain(s) => s.flush().await,
            UpStream::Tls { stream, .. } => stream.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            UpStream::Plain(s) => s.shutdown().await,
            UpStream::Tls { stream, .. } => stream.shutdown().await,
        }
    }
}
