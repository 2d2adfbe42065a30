//! A TLS stream over a monoio `TcpStream` (`TlsStream<C>`, C = rustls' `ServerConnection` or
//! `ClientConnection`): rustls' connection fed from and flushed to the socket through two buffers
//! the stream owns, implementing monoio's rent I/O traits, so the HTTP/1.1 code runs over it as a
//! `Wire`. Unlike a wrapper that hides the rustls connection, the holder can read what the
//! handshake negotiated (version, cipher, SNI, the peer's certificates). The one place that writes
//! into a monoio `IoBufMut` and reads an `IoBuf` by raw pointer (hence `unsafe`, each use stated).
//! Shard thread.

use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent, Split,
};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::{ConnectionCommon, SideData};

/// Ciphertext read per socket read: one full TLS record with its overhead.
const READ_SIZE: usize = 16 * 1024 + 512;

/// A TLS connection over a TCP socket.
pub struct TlsStream<C> {
    io: TcpStream,
    /// The rustls connection: what the handshake negotiated, for whoever holds the stream.
    pub conn: C,
    /// Ciphertext read from the socket; `rbuf[rpos..]` is not yet handed to rustls.
    rbuf: Vec<u8>,
    rpos: usize,
    /// Ciphertext on its way to the socket.
    wbuf: Vec<u8>,
    /// The socket said EOF (and rustls was told).
    eof: bool,
    /// A `flush_tls` is sending (see there).
    flushing: bool,
}

// SAFETY: the halves of a split stream run on one thread (monoio's `OwnedReadHalf`/`OwnedWriteHalf`
// share it through an `Rc<UnsafeCell>`); the read half touches `rbuf` and the socket's read side,
// the write half `wbuf` and its write side (a read's flush defers to a running one: `flush_tls`),
// and each calls into `conn` only between awaits, never across one, so the two never use `conn`
// at the same time. Used for tunnels after a `101`; monoio-compat's `StreamWrapper` (HTTP/2 to
// an upstream over TLS) keeps a read and a write future on one stream the same way.
#[allow(unsafe_code)]
unsafe impl<C> Split for TlsStream<C> {}

impl<C, SD> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    pub fn new(io: TcpStream, conn: C) -> TlsStream<C> {
        TlsStream {
            io,
            conn,
            rbuf: Vec::with_capacity(READ_SIZE),
            rpos: 0,
            wbuf: Vec::new(),
            eof: false,
            flushing: false,
        }
    }

    /// Runs the handshake to its end (and sends what rustls has after it, e.g. session tickets).
    pub async fn handshake(&mut self) -> io::Result<()> {
        while self.conn.is_handshaking() {
            if self.conn.wants_write() {
                self.flush_tls().await?;
            } else {
                self.fill(None).await?;
            }
        }
        self.flush_tls().await
    }

    /// The socket under the TLS layer (to wait for readiness while asleep).
    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }

    /// Ciphertext read and not yet given to rustls, or plaintext rustls holds (a request that came
    /// with the client's last handshake flight, say). An error to report counts too: the next
    /// read returns it.
    pub fn has_buffered_input(&mut self) -> bool {
        self.rpos < self.rbuf.len()
            || self
                .conn
                .process_new_packets()
                .map_or(true, |s| s.plaintext_bytes_to_read() > 0)
    }

    /// Takes the stream apart for an I/O layer of its own (the HTTP/2 front-end's, h2/tls_io.rs):
    /// the socket, the rustls connection, and the ciphertext read but not yet given to rustls
    /// (some of the client's flight after its Finished, say). The handshake sent what it had.
    pub fn into_parts(mut self) -> (TcpStream, C, Vec<u8>) {
        let rest = if self.rpos < self.rbuf.len() {
            self.rbuf.drain(..self.rpos);
            self.rbuf
        } else {
            Vec::new()
        };
        (self.io, self.conn, rest)
    }

    /// Gives back the stream's own buffers while the connection sleeps (nothing is pending in
    /// them then: every ciphertext byte read has gone to rustls, every record out was sent); the
    /// next read takes a new read buffer. rustls keeps its own small one.
    pub fn release_buffers(&mut self) {
        if self.rpos >= self.rbuf.len() {
            self.rbuf = Vec::new();
            self.rpos = 0;
        }
        if self.wbuf.is_empty() {
            self.wbuf = Vec::new();
        }
    }

    /// Reads ciphertext from the socket when none is pending, hands rustls what it takes, and
    /// processes it. A TLS error is answered with rustls' alert before it is returned. With
    /// `cancel`, the socket read (and only it: ciphertext already read is never dropped) ends
    /// with `ECANCELED` once the handle is cancelled.
    async fn fill(&mut self, cancel: Option<&CancelHandle>) -> io::Result<()> {
        if self.rpos >= self.rbuf.len() {
            if self.eof {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut buf = std::mem::take(&mut self.rbuf);
            buf.clear();
            if buf.capacity() == 0 {
                buf.reserve_exact(READ_SIZE);
            }
            self.rpos = 0;
            let (res, buf) = match cancel {
                None => self.io.read(buf).await,
                Some(c) => self.io.cancelable_read(buf, c.clone()).await,
            };
            self.rbuf = buf;
            if res? == 0 {
                self.eof = true;
                self.conn.read_tls(&mut io::empty())?;
            }
        }
        if self.rpos < self.rbuf.len() {
            let mut pending = &self.rbuf[self.rpos..];
            self.rpos += self.conn.read_tls(&mut pending)?;
        }
        if let Err(e) = self.conn.process_new_packets() {
            let _ = self.flush_tls().await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(())
    }

    /// Sends every TLS record rustls has ready. A read and a write may run at once on one stream
    /// (a tunnel's halves, HTTP/2 through the compat wrapper): when a read's flush finds another
    /// flush sending, it returns at once, and that flush's loop sends what the read queued (a
    /// KeyUpdate answer, an alert) after its current records, never two socket writes at once.
    async fn flush_tls(&mut self) -> io::Result<()> {
        if self.flushing {
            return Ok(());
        }
        let TlsStream {
            io,
            conn,
            wbuf,
            flushing,
            ..
        } = self;
        let _sending = Flushing::start(flushing);
        while conn.wants_write() {
            wbuf.clear();
            conn.write_tls(wbuf)?;
            let buf = std::mem::take(wbuf);
            let (res, buf) = io.write_all(buf).await;
            *wbuf = buf;
            res?;
        }
        Ok(())
    }

    /// Plaintext into `dst`: what rustls has decrypted, else more records from the socket (see
    /// `fill` for `cancel`).
    async fn read_plain(
        &mut self,
        dst: &mut [u8],
        cancel: Option<&CancelHandle>,
    ) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(dst) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            self.flush_tls().await?;
            self.fill(cancel).await?;
        }
    }

    /// `read` into a monoio buffer, cancellable or not.
    async fn read_into<T: IoBufMut>(
        &mut self,
        mut buf: T,
        cancel: Option<&CancelHandle>,
    ) -> BufResult<usize, T> {
        // SAFETY: `IoBufMut` promises `bytes_total` writable bytes at `write_ptr` while `buf`
        // lives; the slice is dropped before `set_init`, which covers only bytes written.
        #[allow(unsafe_code)]
        let dst = unsafe { std::slice::from_raw_parts_mut(buf.write_ptr(), buf.bytes_total()) };
        let res = self.read_plain(dst, cancel).await;
        if let Ok(n) = res {
            // SAFETY: `read_plain` initialised the first `n` bytes.
            #[allow(unsafe_code)]
            unsafe {
                buf.set_init(n)
            };
        }
        (res, buf)
    }

    /// Encrypts `src` and sends it.
    async fn write_plain(&mut self, src: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(src)?;
        self.flush_tls().await?;
        Ok(n)
    }
}

/// Marks a flush as sending until it ends, however it ends (a write timeout drops it midway).
struct Flushing<'a>(&'a mut bool);

impl<'a> Flushing<'a> {
    fn start(flag: &'a mut bool) -> Flushing<'a> {
        *flag = true;
        Flushing(flag)
    }
}

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        *self.0 = false;
    }
}

impl<C, SD> AsyncReadRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read_into(buf, None).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the first iovec of `buf` stays valid while `buf` lives (see `read`).
        #[allow(unsafe_code)]
        let res = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = res {
            // SAFETY: `read` initialised the first `n` bytes of the first iovec.
            #[allow(unsafe_code)]
            unsafe {
                buf.set_init(n)
            };
        }
        (res, buf)
    }
}

/// A read that a keep-alive wait can cancel (wait.rs): plaintext already decrypted is returned
/// at once; otherwise the socket read is cancelled and nothing read is lost (a partial record
/// stays with rustls until the rest arrives).
impl<C, SD> CancelableAsyncReadRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        self.read_into(buf, Some(&c)).await
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        mut buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        // SAFETY: the first iovec of `buf` stays valid while `buf` lives (see `read`).
        #[allow(unsafe_code)]
        let res = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read_into(raw, Some(&c)).await.0,
            None => Ok(0),
        };
        if let Ok(n) = res {
            // SAFETY: the read initialised the first `n` bytes of the first iovec.
            #[allow(unsafe_code)]
            unsafe {
                buf.set_init(n)
            };
        }
        (res, buf)
    }
}

impl<C, SD> AsyncWriteRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `IoBuf` promises `bytes_init` initialised bytes at `read_ptr` while `buf` lives.
        #[allow(unsafe_code)]
        let src = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let res = self.write_plain(src).await;
        (res, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the first iovec of `buf` stays valid while `buf` lives (see `write`).
        #[allow(unsafe_code)]
        let res = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (res, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    /// Says close_notify, then shuts the socket's write side.
    async fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush_tls().await?;
        self.io.shutdown().await
    }
}
