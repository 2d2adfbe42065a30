//! Non-blocking socket calls for streams that wait for readiness themselves and then move bytes
//! straight between the kernel and a caller's buffer (the HTTP/2 front-end's I/O,
//! shard/downstream/h2/io.rs): `recv`/`send`/`sendmsg` with `MSG_DONTWAIT` (whatever the socket's
//! own blocking mode, which differs between monoio's two drivers), `WouldBlock` when the socket
//! has nothing or no room. Shard threads, on their own sockets.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use tokio::io::ReadBuf;

/// Receives into the unfilled part of `buf` and marks what arrived as filled: `Ok(0)` at EOF
/// (or when `buf` has no room).
pub fn recv_into(fd: RawFd, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: the slice is only written through (by the kernel), never read before `assume_init`.
    let dst = unsafe { buf.unfilled_mut() };
    let n = recv(fd, dst)?;
    // SAFETY: recv initialised the first `n` bytes of the unfilled part.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(n)
}

/// Receives into `dst` (memory not yet initialised, a stack array say): the bytes that arrived.
pub fn recv_slice(fd: RawFd, dst: &mut [MaybeUninit<u8>]) -> io::Result<&[u8]> {
    let n = recv(fd, dst)?;
    // SAFETY: recv initialised the first `n` bytes of `dst`; `MaybeUninit<u8>` has `u8`'s layout.
    Ok(unsafe { std::slice::from_raw_parts(dst.as_ptr().cast::<u8>(), n) })
}

/// Receives into `dst`; the first `Ok(n)` bytes are then initialised.
fn recv(fd: RawFd, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: recv writes at most `dst.len()` bytes into `dst`, which outlives the call; fd is a
    // socket the caller owns for the duration of the call.
    let n = unsafe { libc::recv(fd, dst.as_mut_ptr().cast(), dst.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Sends the slices in one call (a closed peer is an `EPIPE` error, not a signal).
pub fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    if bufs.len() == 1 {
        return send(fd, &bufs[0]);
    }
    // SAFETY: a zeroed msghdr is valid (no address, no control data); `IoSlice` is ABI-compatible
    // with `iovec`, and the slices outlive the call, which only reads them.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Sends `src` (a closed peer is an `EPIPE` error, not a signal).
pub fn send(fd: RawFd, src: &[u8]) -> io::Result<usize> {
    // SAFETY: send reads at most `src.len()` bytes from `src`, which outlives the call.
    let n = unsafe {
        libc::send(
            fd,
            src.as_ptr().cast(),
            src.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Shuts the socket's write side (the peer reads EOF after what was sent).
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: shutdown takes no pointers; fd is a socket the caller owns.
    let rc = unsafe { libc::shutdown(fd, libc::SHUT_WR) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
