//! The only `unsafe` in shardgate: thin libc calls (affinity mask, rlimits, socket peeks).
//! Called from the main thread at start and from shard threads on their own sockets.

use std::os::fd::RawFd;

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

/// True when a listening socket has a connection waiting in its accept queue (poll, no wait).
pub fn has_pending_connection(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd we own; timeout 0 means poll never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}

// STUB (replaced by the edge branch).
pub fn attach_steering(_fd: std::os::fd::RawFd, _ipv6: bool, _n: u32) -> std::io::Result<()> { Ok(()) }
pub fn steer_index(_ip: std::net::IpAddr, _n: u32) -> u32 { 0 }
pub fn notify_systemd(_state: &str) -> std::io::Result<bool> { Ok(false) }
