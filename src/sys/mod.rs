//! Every libc `unsafe` in shardgate (the other is `shard/boxes.rs`' block pool): thin calls
//! (affinity mask, rlimits, socket peeks, pipes and splice, the allocator's mmap threshold,
//! access checks), non-blocking socket reads and writes (sock.rs), the systemd readiness message,
//! and the reuseport steering program (steer.rs).
//! Called from the main thread at start, from the coordinator thread (listeners, sd_notify) and
//! from shard threads on their own sockets.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

mod sock;
mod steer;

pub use sock::{recv_into, recv_slice, send, send_vectored, shutdown_write};
pub use steer::{attach_steering, steer_index};

/// CPUs this process may run on (the affinity mask set by taskset or a cgroup), ascending.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set, and sched_getaffinity writes
    // at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            return (0..n).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Raises the open-file soft limit to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write one plain struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// What a non-blocking peek says about an idle pooled connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Nothing to read: the peer has not closed it.
    Open,
    /// EOF, an error, or unexpected bytes: not reusable.
    Closed,
}

/// Checks an idle connection without consuming anything (MSG_PEEK | MSG_DONTWAIT).
pub fn peek_liveness(fd: RawFd) -> Liveness {
    let mut byte = 0u8;
    // SAFETY: recv writes at most 1 byte into `byte`, which outlives the call; fd is a socket the
    // caller owns for the duration of the call.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
        Liveness::Open
    } else {
        Liveness::Closed
    }
}

/// Copies the bytes waiting on a socket into `buf` without consuming them (MSG_PEEK |
/// MSG_DONTWAIT): `Ok(0)` when the peer closed, `WouldBlock` when nothing arrived yet. A TLS
/// listener looks before the handshake: a ClientHello starts 0x16, plain HTTP a method, and a
/// PROXY header comes first and is taken by its exact length.
pub fn peek(fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: recv writes at most `buf.len()` bytes into `buf`, which outlives the call; fd is a
    // socket the caller owns for the duration of the call.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// True when a listening socket has a connection waiting in its accept queue (poll, no wait).
pub fn has_pending_connection(fd: RawFd) -> bool {
    poll_in(fd, 0) & libc::POLLIN != 0
}

/// Waits up to `timeout_ms` for a listening socket to have something to say: a connection in
/// its accept queue, or an error or hang-up (a socket shut down), which `accept` then reports.
pub fn wait_listener(fd: RawFd, timeout_ms: i32) -> bool {
    poll_in(fd, timeout_ms) != 0
}

/// The `revents` of one `poll` for input on `fd` (0: nothing within the timeout).
fn poll_in(fd: RawFd, timeout_ms: i32) -> libc::c_short {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd we own, for the length of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if n > 0 {
        pfd.revents
    } else {
        0
    }
}

/// Shuts the receive side of a connected socket: a read waiting on it completes with 0 (EOF).
/// A drain uses it to wake idle keep-alive connections without a cancel handle per read.
pub fn shutdown_read(fd: RawFd) {
    // SAFETY: shutdown takes an fd and a constant; on a closed or foreign fd it only fails.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}

/// Shuts both directions of a socket: its pending reads end, its writes fail (a drain ending a
/// tunnel). Never blocks.
pub fn shutdown_both(fd: RawFd) {
    // SAFETY: shutdown takes an fd and a constant; on a closed or foreign fd it only fails.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

// === splice (zero-copy response bodies, shard/upstream/splice.rs) ===

/// A new pipe, both ends non-blocking and close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array we own; on success we own both.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and belong to nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets a pipe's capacity (F_SETPIPE_SZ; the kernel rounds up to a power-of-two number of
/// pages); returns the capacity it now has.
pub fn set_pipe_size(fd: RawFd, bytes: usize) -> io::Result<usize> {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: fcntl with an int argument on an fd the caller owns.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, bytes) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Makes a socket's own operations non-blocking (FIONBIO: only O_NONBLOCK changes), so a direct
/// splice on it never blocks the shard. Harmless for the rest of a connection's life: monoio
/// moves TcpStream bytes with io_uring RECV/SEND, which take blocking from their own flags and
/// ignore O_NONBLOCK (epoll sockets have it anyway). io_uring READ/WRITE/SPLICE would honour it
/// and return EAGAIN: shardgate issues none of those on sockets.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let mut on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one int we own; fd is a socket the caller owns.
    let rc = unsafe { libc::ioctl(fd, libc::FIONBIO, &mut on) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves up to `len` bytes from `from` to `to` (one of them a pipe) without copying them through
/// user space; non-blocking (`WouldBlock` when `from` has nothing or `to` has no room). `Ok(0)`
/// from a socket is EOF.
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets (both fds are pipes or sockets); the kernel moves page references
    // between two fds the caller owns and touches no user memory.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

// === systemd ===

/// Whether this process may access `path` with `mode` (`libc::W_OK`…): faccessat(2) with the
/// effective ids and capabilities, as open(2) would judge them.
pub fn may_access(path: &std::path::Path, mode: i32) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; no memory is written.
    let rc = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `state` (e.g. `READY=1`, `STOPPING=1`) to systemd's notification socket, as
/// sd_notify(3) does. Ok(false) when `$NOTIFY_SOCKET` is unset or empty (not run by systemd with
/// Type=notify); the variable may be a path or an `@abstract` name.
pub fn notify_systemd(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) if !socket.is_empty() => notify_socket(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

fn notify_socket(socket: &OsStr, state: &str) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    let addr = match socket.as_bytes() {
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name)?,
        [b'/', ..] => SocketAddr::from_pathname(socket)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("NOTIFY_SOCKET={socket:?} is neither an absolute path nor an @name"),
            ))
        }
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to NOTIFY_SOCKET",
        ));
    }
    Ok(())
}

/// User plus system CPU time of the calling thread, in seconds (0 if the kernel refuses).
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data, so all-zero is a valid value; getrusage writes one rusage
    // into the struct we own and reads nothing else. RUSAGE_THREAD means the calling thread.
    let (rc, ru) = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_THREAD, &mut ru), ru)
    };
    if rc != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Allocations of `bytes` or more get a mapping of their own (glibc's mmap threshold, fixed
/// instead of adaptive), which a free unmaps. No-op on other C libraries.
pub fn map_large_allocations(bytes: usize) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes an allocator tunable; called once at start, before any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes.min(32 << 20) as libc::c_int);
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_path_and_abstract_sockets() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

        let path = std::env::temp_dir().join(format!("shardgate-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let by_path = UnixDatagram::bind(&path).unwrap();
        let name = format!("shardgate-notify-{}", std::process::id());
        let by_name =
            UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let mut buf = [0u8; 64];

        notify_socket(path.as_os_str(), "READY=1").unwrap();
        let n = by_path.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1", "path");

        notify_socket(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = by_name.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1", "abstract");

        let e = notify_socket(OsStr::new("relative/path"), "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "relative path");
        let missing = std::env::temp_dir().join("shardgate-notify-nobody-listens");
        assert!(
            notify_socket(missing.as_os_str(), "READY=1").is_err(),
            "no listener"
        );

        // Through the environment, as systemd passes it. Only this test touches NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &path);
        assert!(notify_systemd("READY=1").unwrap(), "set");
        let n = by_path.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1", "env path");
        std::env::set_var("NOTIFY_SOCKET", "");
        assert!(!notify_systemd("READY=1").unwrap(), "empty");
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(!notify_systemd("READY=1").unwrap(), "unset");
        let _ = std::fs::remove_file(&path);
    }
}
