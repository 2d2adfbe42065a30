//! An HTTPS connection that negotiated ALPN `h2`, as the stream `h2` reads and writes: rustls'
//! connection driven by readiness (ready.rs) instead of through the TLS stream's two buffers and
//! a compat wrapper's two more. A read takes ciphertext from the socket into a stack array (only
//! while the call runs), hands it to rustls, and copies the plaintext straight into `h2`'s
//! buffer; a write encrypts from `h2`'s buffer and sends rustls' records from its own queue
//! (vectored). An idle connection holds only rustls' state: no read or write buffer of ours.
//! Shard thread, on the connection's task.

use std::future::Future;
use std::io::{self, BufRead, IoSlice, Write};
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use monoio_compat::{AsyncRead, AsyncWrite};
use rustls::ServerConnection;
use tokio::io::ReadBuf;

use super::ready::{readiness, Readiness};
use crate::shard::downstream::tls::TlsStream;
use crate::sys;

/// Ciphertext taken from the socket per read: a full TLS record with its overhead.
const READ_SIZE: usize = 16 * 1024 + 512;

/// A TLS HTTP/2 connection's stream.
pub struct TlsIo<F> {
    r: Readiness<F>,
    conn: ServerConnection,
    /// Ciphertext read but not yet taken by rustls (what the handshake read past its end, or
    /// what rustls refused while its plaintext queue was full): empty, unallocated, at rest.
    pending: Vec<u8>,
    /// close_notify was queued (shutdown).
    closing: bool,
}

/// The HTTP/2 stream of a TLS connection whose handshake is done.
pub fn tls(stream: TlsStream) -> TlsIo<impl Future<Output = io::Result<()>>> {
    let (tcp, conn, pending) = stream.into_parts();
    TlsIo {
        r: readiness(tcp),
        conn,
        pending,
        closing: false,
    }
}

/// The socket as rustls' `Write` (records out without waiting: `WouldBlock` when full).
struct Sock(RawFd);

impl Write for Sock {
    fn write(&mut self, src: &[u8]) -> io::Result<usize> {
        sys::send(self.0, src)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::send_vectored(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<F: Future<Output = io::Result<()>>> TlsIo<F> {
    /// Copies the plaintext rustls holds into `buf`: `None` when it holds none (more ciphertext
    /// is needed), else the read's result (an empty one at close_notify).
    fn take_plain(&mut self, buf: &mut ReadBuf<'_>) -> Option<io::Result<()>> {
        let mut r = self.conn.reader();
        let mut took = false;
        while buf.remaining() > 0 {
            let n = match r.fill_buf() {
                Ok([]) => return Some(Ok(())),
                Ok(chunk) => {
                    let n = chunk.len().min(buf.remaining());
                    buf.put_slice(&chunk[..n]);
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Some(if took { Ok(()) } else { Err(e) }),
            };
            r.consume(n);
            took = true;
        }
        took.then_some(Ok(()))
    }

    /// Hands rustls as much of `data` as it takes and processes it; what it refuses (its
    /// plaintext queue is full) is kept in `pending`. A TLS error is answered with rustls' alert.
    fn feed(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.conn.read_tls(&mut data) {
                // close_notify came: nothing after it is read.
                Ok(0) => data = &[],
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.send_now();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    /// Sends what rustls has queued, without waiting: false when the socket is full.
    fn send_now(&mut self) -> io::Result<bool> {
        let fd = self.r.fd();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Sock(fd)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.r.write_hot = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Ready once rustls' queue of records has gone to the socket.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.r.poll_writable(cx))?;
            if self.send_now()? {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<F: Future<Output = io::Result<()>>> AsyncRead for TlsIo<F> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if let Some(res) = this.take_plain(buf) {
                return Poll::Ready(res);
            }
            // What rustls wants to say first (a KeyUpdate's answer) goes if the socket takes
            // it; else the next write or flush sends it.
            this.send_now()?;
            if !this.pending.is_empty() {
                let kept = std::mem::take(&mut this.pending);
                this.feed(&kept)?;
                continue;
            }
            ready!(this.r.poll_readable(cx))?;
            let mut cipher = [MaybeUninit::<u8>::uninit(); READ_SIZE];
            match sys::recv_slice(this.r.fd(), &mut cipher) {
                Ok([]) => {
                    // EOF: rustls tells a clean close (close_notify came) from a cut one.
                    this.r.read_hot = false;
                    this.conn.read_tls(&mut io::empty())?;
                    let res = this.conn.process_new_packets().map(|_| ());
                    return Poll::Ready(match this.take_plain(buf) {
                        Some(r) => r,
                        None => res
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
                            .and(Err(io::ErrorKind::UnexpectedEof.into())),
                    });
                }
                Ok(data) => {
                    this.r.read_hot = data.len() == READ_SIZE;
                    this.feed(data)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => this.r.read_hot = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<F: Future<Output = io::Result<()>>> AsyncWrite for TlsIo<F> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(src)])
    }

    /// Encrypts what rustls' queue takes once earlier records have gone, then sends without
    /// waiting (what the socket does not take goes with the next write or the flush).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        let n = this.conn.writer().write_vectored(bufs)?;
        this.send_now()?;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    /// Says close_notify, then shuts the socket's write side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            this.conn.send_close_notify();
        }
        ready!(this.poll_send(cx))?;
        Poll::Ready(sys::shutdown_write(this.r.fd()))
    }
}
