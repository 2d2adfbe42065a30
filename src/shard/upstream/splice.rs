//! Zero-copy response bodies: the bytes of a large body move upstream socket -> pipe -> client
//! socket with splice(2) and never enter user space; and the shard's pool of pipes they borrow.
//! Shard thread only: the pool is thread-local (one per shard thread), so no lock and no atomic.
//!
//! The splices are direct non-blocking syscalls that wait for readiness through the runtime
//! (`readable`/`writable`) only when the kernel says EAGAIN, the same on both drivers. monoio's
//! own splice op is no use on io_uring: the kernel runs every IORING_OP_SPLICE on an io-wq
//! worker thread: measured at about 1.2x the buffered relay's CPU per 64 KiB response.

use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use monoio::net::TcpStream;
use monoio::time::timeout;

use super::body::{self, RelayError};
use crate::shard::io::{write_buf, Buf, IoFail};
use crate::sys;

/// Idle pipes a shard keeps for the next bodies (2 fds each); more are closed when returned.
const MAX_IDLE: usize = 32;
/// Pipes a shard holds at once, idle or lent; past it a body takes the buffered relay. Pipe
/// capacity counts against the user's `fs.pipe-user-pages-soft` (16384 pages by default).
const MAX_OPEN: usize = 256;

/// A pipe has 4 page slots per page of one fill: the pages a socket hands over are often partly
/// filled (one per received segment of a 1500-byte MTU), and a fill should not stop at the slot
/// count long before its bytes. Between 64 KiB (Linux's default) and 1 MiB (the default
/// `fs.pipe-max-size`).
fn pipe_capacity(fill: usize) -> usize {
    fill.saturating_mul(4).clamp(64 << 10, 1 << 20)
}

/// One pipe: its read and write ends (both non-blocking).
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Pipe>,
    /// Pipes open now: idle plus lent.
    open: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::default();
}

/// A pipe lent to one body. Dropped empty, it goes back to the pool; dropped holding bytes (an
/// error stopped the body midway), it is closed: the next body must not receive them.
struct Lease {
    pipe: Option<Pipe>,
    /// Bytes spliced into the pipe and not yet out of it.
    held: usize,
}

impl Lease {
    /// An idle pipe, else a new one sized for `fill`; `None` when the shard holds `MAX_OPEN`
    /// pipes or the system refuses one (out of fds, or over the user's pipe pages so it cannot be
    /// sized): the caller relays through its buffer instead.
    fn take(fill: usize) -> Option<Lease> {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            let pipe = match p.idle.pop() {
                Some(pipe) => pipe,
                None if p.open >= MAX_OPEN => return None,
                None => {
                    let (r, w) = sys::pipe().ok()?;
                    sys::set_pipe_size(w.as_raw_fd(), pipe_capacity(fill)).ok()?;
                    p.open += 1;
                    Pipe { r, w }
                }
            };
            Some(Lease {
                pipe: Some(pipe),
                held: 0,
            })
        })
    }

    /// The pipe's read end and write end.
    fn fds(&self) -> (RawFd, RawFd) {
        let p = self
            .pipe
            .as_ref()
            .expect("a lease holds its pipe until dropped");
        (p.r.as_raw_fd(), p.w.as_raw_fd())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(pipe) = self.pipe.take() else { return };
        // `try_with`: a lease dropped while the thread's locals are torn down just closes.
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if self.held == 0 && p.idle.len() < MAX_IDLE {
                p.idle.push(pipe);
            } else {
                p.open -= 1;
                drop(pipe);
            }
        });
    }
}

/// Idle pipes and all open pipes of this shard thread (tests and statistics).
#[cfg(test)]
fn pool_counts() -> (usize, usize) {
    POOL.with(|p| {
        let p = p.borrow();
        (p.idle.len(), p.open)
    })
}

/// Relays exactly `n` body bytes to the client: first what `buf` holds, then the rest spliced,
/// at most `fill` bytes in the pipe at a time (what the buffered relay holds in its buffer).
/// Errors as `body::length`; bytes past the body stay in `buf` (none are read from `up`).
pub async fn length(
    up: &mut TcpStream,
    buf: &mut Buf,
    client: &mut TcpStream,
    n: u64,
    idle: Duration,
    fill: usize,
) -> Result<u64, RelayError> {
    let take = (buf.len() as u64).min(n) as usize;
    if take > 0 {
        write_buf(client, buf, take, idle)
            .await
            .map_err(RelayError::Write)?;
    }
    let left = n - take as u64;
    if left > 0 {
        match prepare(up, client, fill) {
            Some(mut lease) => {
                pump(up, client, &mut lease, Some(left), fill, idle).await?;
            }
            None => {
                body::length(up, buf, client, left, idle).await?;
            }
        }
    }
    Ok(n)
}

/// Relays everything until `up` closes: first what `buf` holds, then the rest spliced.
pub async fn until_close(
    up: &mut TcpStream,
    buf: &mut Buf,
    client: &mut TcpStream,
    idle: Duration,
    fill: usize,
) -> Result<u64, RelayError> {
    let take = buf.len();
    if take > 0 {
        write_buf(client, buf, take, idle)
            .await
            .map_err(RelayError::Write)?;
    }
    let rest = match prepare(up, client, fill) {
        Some(mut lease) => pump(up, client, &mut lease, None, fill, idle).await?,
        None => body::until_close(up, buf, client, idle).await?,
    };
    Ok(take as u64 + rest)
}

/// A pipe for one body, with both sockets non-blocking for direct splices; `None`: relay through
/// the buffer.
fn prepare(up: &TcpStream, client: &TcpStream, fill: usize) -> Option<Lease> {
    let lease = Lease::take(fill)?;
    sys::set_nonblocking(up.as_raw_fd()).ok()?;
    sys::set_nonblocking(client.as_raw_fd()).ok()?;
    Some(lease)
}

/// Moves `limit` bytes (or, for `None`, everything until EOF) from `up` through the lease's pipe
/// to `client`: fill it with up to `step` bytes, empty it completely, repeat. A failure leaves
/// the bytes of at most one step in the pipe (which then is closed). Returns the bytes moved.
async fn pump(
    up: &TcpStream,
    client: &TcpStream,
    lease: &mut Lease,
    limit: Option<u64>,
    step: usize,
    idle: Duration,
) -> Result<u64, RelayError> {
    let (pr, pw) = lease.fds();
    let (ufd, cfd) = (up.as_raw_fd(), client.as_raw_fd());
    let mut moved = 0u64;
    loop {
        let want = match limit {
            Some(l) => (l - moved).min(step as u64) as usize,
            None => step,
        };
        if want == 0 {
            return Ok(moved);
        }
        let got = match sys::splice(ufd, pw, want) {
            Ok(0) if limit.is_none() => return Ok(moved),
            Ok(0) => return Err(RelayError::Read(IoFail::Eof)),
            Ok(k) => k,
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock => {
                    ready(up.readable(false), idle)
                        .await
                        .map_err(RelayError::Read)?;
                    continue;
                }
                ErrorKind::Interrupted => continue,
                k => return Err(RelayError::Read(IoFail::Err(k))),
            },
        };
        lease.held += got;
        while lease.held > 0 {
            match sys::splice(pr, cfd, lease.held) {
                Ok(0) => return Err(RelayError::Write(IoFail::Eof)),
                Ok(k) => {
                    lease.held -= k;
                    moved += k as u64;
                }
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => {
                        ready(client.writable(false), idle)
                            .await
                            .map_err(RelayError::Write)?;
                    }
                    ErrorKind::Interrupted => {}
                    k => return Err(RelayError::Write(IoFail::Err(k))),
                },
            }
        }
    }
}

/// Waits for a readiness future within the idle timeout.
async fn ready(
    f: impl std::future::Future<Output = io::Result<()>>,
    idle: Duration,
) -> Result<(), IoFail> {
    match timeout(idle, f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(IoFail::Err(e.kind())),
        Err(_) => Err(IoFail::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_capacity_is_four_fills_within_linux_limits() {
        assert_eq!(pipe_capacity(64 << 10), 256 << 10);
        assert_eq!(pipe_capacity(1024), 64 << 10);
        assert_eq!(pipe_capacity(1 << 20), 1 << 20);
    }

    #[test]
    fn pool_reuses_empty_pipes_and_closes_full_ones() {
        let a = Lease::take(65536).expect("a pipe");
        let b = Lease::take(65536).expect("a second pipe");
        assert_eq!(pool_counts(), (0, 2));
        drop(a);
        assert_eq!(pool_counts(), (1, 2), "an empty pipe goes back to the pool");
        let mut b = b;
        b.held = 10;
        drop(b);
        assert_eq!(pool_counts(), (1, 1), "a pipe holding bytes is closed");
        let c = Lease::take(65536).expect("the idle pipe");
        assert_eq!(pool_counts(), (0, 1), "taken from the pool, not created");
        drop(c);
    }
}
