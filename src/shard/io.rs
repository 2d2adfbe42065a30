//! Rent-style I/O for the shard's connection tasks: the streams the HTTP/1.1 code runs over
//! (`Wire`: any monoio rent-I/O stream; splice only where both ends are plain TCP), one reused
//! buffer per connection side (`Buf`) moved into each read/write op and back, with deadlines.
//! Runs on the shard thread.

use std::io;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::time::{timeout, timeout_at, Instant};

/// A byte stream the HTTP/1.1 code runs over, on either side: any monoio rent-I/O stream (plain
/// TCP today; TLS streams next). Splice is a capability, not an assumption: only a stream that
/// is a plain TCP socket offers one, and a body is spliced only when both ends do.
pub trait Wire: AsyncReadRent + AsyncWriteRent {
    /// The plain TCP socket bytes may be spliced to or from; `None` for any other stream.
    fn as_tcp(&mut self) -> Option<&mut TcpStream> {
        None
    }

    /// The peer spoke TLS to us (requests go upstream with `X-Forwarded-Proto: https`).
    fn secure(&self) -> bool {
        false
    }

    /// Input already taken from the socket and not yet read (a TLS stream's decrypted or
    /// undecrypted records): waiting for the socket's readiness would miss it.
    fn has_buffered_input(&mut self) -> bool {
        false
    }
}

impl Wire for TcpStream {
    #[inline]
    fn as_tcp(&mut self) -> Option<&mut TcpStream> {
        Some(self)
    }
}

/// A read buffer whose live bytes are `v[pos..]`; reads append after them.
pub struct Buf {
    pub v: Vec<u8>,
    pub pos: usize,
}

/// How a timed operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFail {
    /// The peer closed (EOF) where more bytes were due.
    Eof,
    TimedOut,
    Err(io::ErrorKind),
}

impl Buf {
    pub fn with_capacity(n: usize) -> Buf {
        Buf {
            v: Vec::with_capacity(n),
            pos: 0,
        }
    }

    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.v[self.pos..]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.v.len() - self.pos
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.v.len() == self.pos
    }

    /// No room left even after moving live bytes to the front.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() >= self.v.capacity()
    }

    /// Drops `n` live bytes from the front.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.v.len() {
            self.v.clear();
            self.pos = 0;
        }
    }

    /// Moves live bytes to the front so reads have room.
    fn compact(&mut self) {
        if self.pos > 0 {
            let len = self.len();
            self.v.copy_within(self.pos.., 0);
            self.v.truncate(len);
            self.pos = 0;
        }
    }
}

/// Appends whatever the socket has to `b`, at most `max` bytes. `Ok(0)` is EOF (or no room,
/// which callers avoid).
async fn read_at_most<S: AsyncReadRent>(s: &mut S, b: &mut Buf, max: usize) -> io::Result<usize> {
    if b.v.len() == b.v.capacity() {
        b.compact();
    }
    let v = std::mem::take(&mut b.v);
    let (len, cap) = (v.len(), v.capacity());
    let end = cap.min(len.saturating_add(max));
    let (res, slice) = s.read(v.slice_mut(len..end)).await;
    b.v = slice.into_inner();
    res
}

/// `read_more_until` reading at most `max` bytes (a response head read that leaves a large body
/// in the socket for splice).
pub async fn read_at_most_until<S: AsyncReadRent>(
    s: &mut S,
    b: &mut Buf,
    deadline: Instant,
    max: usize,
) -> Result<usize, IoFail> {
    let cap = b.v.capacity();
    match timeout_at(deadline, read_at_most(s, b, max)).await {
        Ok(Ok(0)) => Err(IoFail::Eof),
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(IoFail::Err(e.kind())),
        Err(_) => {
            // The abandoned read keeps the buffer it was lent: give `b` a new one of the same
            // size, so that a retry on this connection can read (its live bytes are gone anyway).
            *b = Buf::with_capacity(cap);
            Err(IoFail::TimedOut)
        }
    }
}

/// Appends whatever the socket has to `b` before `deadline`; EOF is an error here.
pub async fn read_more_until<S: AsyncReadRent>(
    s: &mut S,
    b: &mut Buf,
    deadline: Instant,
) -> Result<usize, IoFail> {
    read_at_most_until(s, b, deadline, usize::MAX).await
}

/// `read_more` with an idle timeout; EOF is an error here.
pub async fn read_more_within<S: AsyncReadRent>(
    s: &mut S,
    b: &mut Buf,
    idle: Duration,
) -> Result<usize, IoFail> {
    read_more_until(s, b, Instant::now() + idle).await
}

/// Writes `b.data()[..n]` and consumes it.
pub async fn write_buf<S: AsyncWriteRent>(
    s: &mut S,
    b: &mut Buf,
    n: usize,
    idle: Duration,
) -> Result<(), IoFail> {
    let v = std::mem::take(&mut b.v);
    let range = b.pos..b.pos + n;
    let (res, slice) = match timeout(idle, s.write_all(v.slice(range))).await {
        Ok(r) => r,
        Err(_) => return Err(IoFail::TimedOut),
    };
    b.v = slice.into_inner();
    res.map_err(|e| IoFail::Err(e.kind()))?;
    b.consume(n);
    Ok(())
}

/// Writes all of `v` (a head buffer) and hands it back for reuse.
pub async fn write_vec<S: AsyncWriteRent>(
    s: &mut S,
    v: &mut Vec<u8>,
    idle: Duration,
) -> Result<(), IoFail> {
    let owned = std::mem::take(v);
    let (res, owned) = match timeout(idle, s.write_all(owned)).await {
        Ok(r) => r,
        Err(_) => return Err(IoFail::TimedOut),
    };
    *v = owned;
    res.map(|_| ()).map_err(|e| IoFail::Err(e.kind()))
}

/// Writes static bytes (canned responses, `100 Continue`).
pub async fn write_static<S: AsyncWriteRent>(
    s: &mut S,
    bytes: &'static [u8],
    idle: Duration,
) -> Result<(), IoFail> {
    match timeout(idle, s.write_all(bytes)).await {
        Ok((Ok(_), _)) => Ok(()),
        Ok((Err(e), _)) => Err(IoFail::Err(e.kind())),
        Err(_) => Err(IoFail::TimedOut),
    }
}

/// Returns when the peer of the plain TCP socket `fd` has closed it (EOF or reset), looked at
/// with a non-blocking peek every `every` (no syscall before the first period passes); never
/// for `None` (a TLS stream: its close_notify is data) nor once the peer sent more bytes (a
/// pipelined request). A task awaiting something else selects on it to notice a client that
/// left.
pub async fn peer_closed(fd: Option<std::os::fd::RawFd>, every: Duration) {
    let Some(fd) = fd else {
        return std::future::pending().await;
    };
    loop {
        monoio::time::sleep(every).await;
        let mut byte = [0u8; 1];
        match crate::sys::peek(fd, &mut byte) {
            Ok(0) => return,
            Ok(_) => return std::future::pending().await,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
