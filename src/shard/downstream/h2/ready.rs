//! The HTTP/2 front-end's own I/O over a client's TCP socket, in place of a compat wrapper that
//! lends the kernel two buffers for the connection's whole life and copies through them: tokio's
//! `AsyncRead`/`AsyncWrite` (what `h2` needs) by readiness. A read first tries the socket
//! directly into `h2`'s own buffer (`recv`, no wait) while the last read came back full; once a
//! read finds less (or nothing), the next one waits for readability first (io_uring PollAdd, or
//! the epoll driver's readiness) with no buffer lent, so an idle connection holds none and a busy
//! one pays no extra syscall. Writes go from `h2`'s buffer straight to the socket (vectored),
//! waiting for writability only when the socket is full. `Readiness` is shared with the TLS
//! variant (tls_io.rs); `PlainIo` is h2c's stream. Shard thread, on the connection's task.

use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use monoio::net::TcpStream;
use monoio_compat::{AsyncRead, AsyncWrite};
use tokio::io::ReadBuf;

use crate::sys;

/// Makes the wait for one direction's readiness (a named type for the slots that hold it).
type MakeWait<F> = fn(Rc<TcpStream>, bool) -> F;

/// Waits for readability or writability of one socket, one wait per direction at most, each in
/// a slot allocated once per connection and refilled in place.
pub struct Readiness<F> {
    tcp: Rc<TcpStream>,
    make: MakeWait<F>,
    read: Pin<Box<Option<F>>>,
    write: Pin<Box<Option<F>>>,
    /// The socket may have bytes: read without waiting first (the last read came back full, or
    /// readiness was reported since).
    pub read_hot: bool,
    /// The socket may take bytes: send without waiting first.
    pub write_hot: bool,
}

/// One wait for readiness: `read` readability, else writability. Not `relaxed`: the epoll
/// driver checks with poll(2) that the socket really is ready, so a stale readiness after our
/// own `recv` found nothing is cleared instead of waking at once again.
async fn wait(tcp: Rc<TcpStream>, read: bool) -> io::Result<()> {
    if read {
        tcp.readable(false).await
    } else {
        tcp.writable(false).await
    }
}

/// The readiness of `tcp`, which it then owns.
pub fn readiness(tcp: TcpStream) -> Readiness<impl Future<Output = io::Result<()>>> {
    fn empty<F>(_: MakeWait<F>) -> Pin<Box<Option<F>>> {
        Box::pin(None)
    }
    Readiness {
        tcp: Rc::new(tcp),
        make: wait,
        read: empty(wait),
        write: empty(wait),
        read_hot: true,
        write_hot: true,
    }
}

impl<F: Future<Output = io::Result<()>>> Readiness<F> {
    pub fn fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// Ready once a read may find bytes (at once while `read_hot`).
    pub fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.read_hot {
            return Poll::Ready(Ok(()));
        }
        ready!(poll_slot(&mut self.read, self.make, &self.tcp, true, cx))?;
        self.read_hot = true;
        Poll::Ready(Ok(()))
    }

    /// Ready once a send may find room (at once while `write_hot`).
    pub fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_hot {
            return Poll::Ready(Ok(()));
        }
        ready!(poll_slot(&mut self.write, self.make, &self.tcp, false, cx))?;
        self.write_hot = true;
        Poll::Ready(Ok(()))
    }
}

/// Polls the wait in `slot`, starting one when it is empty; empties it when it ends.
fn poll_slot<F: Future<Output = io::Result<()>>>(
    slot: &mut Pin<Box<Option<F>>>,
    make: MakeWait<F>,
    tcp: &Rc<TcpStream>,
    read: bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    if slot.is_none() {
        slot.set(Some(make(tcp.clone(), read)));
    }
    let waiting = slot.as_mut().as_pin_mut().expect("a wait was just set");
    let res = ready!(waiting.poll(cx));
    slot.set(None);
    Poll::Ready(res)
}

/// An h2c connection's stream: plain TCP by readiness.
pub struct PlainIo<F> {
    r: Readiness<F>,
}

/// h2c's stream over `tcp`.
pub fn plain(tcp: TcpStream) -> PlainIo<impl Future<Output = io::Result<()>>> {
    PlainIo { r: readiness(tcp) }
}

impl<F: Future<Output = io::Result<()>>> AsyncRead for PlainIo<F> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = &mut self.get_mut().r;
        loop {
            ready!(r.poll_readable(cx))?;
            let room = buf.remaining();
            match sys::recv_into(r.fd(), buf) {
                Ok(n) => {
                    // A full read may have left more; a short one (or EOF) emptied the socket.
                    r.read_hot = n == room && n > 0;
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => r.read_hot = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<F: Future<Output = io::Result<()>>> AsyncWrite for PlainIo<F> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(src)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = &mut self.get_mut().r;
        loop {
            ready!(r.poll_writable(cx))?;
            match sys::send_vectored(r.fd(), bufs) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => r.write_hot = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(sys::shutdown_write(self.r.fd()))
    }
}
