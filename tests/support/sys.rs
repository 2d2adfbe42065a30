//! The few things std cannot do for the tests, through libc: sending a signal to the proxy,
//! resetting a connection (SO_LINGER 0), and a loopback listener whose accept queue is full so a
//! connect to it hangs (the only local way to make an upstream connect time out). Also reads a
//! process's peak memory, its listening sockets and its open pipes from /proc.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Sends `sig` (e.g. `libc::SIGTERM`) to process `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Makes closing `stream` send a TCP RST instead of a FIN.
pub fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the lifetime of `stream`; we pass a pointer to a live `linger`
    // and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}

/// A listener on 127.0.0.1 that never accepts, with its accept queue filled, so a further connect
/// gets no SYN-ACK and hangs until the connecting side's own timeout.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: OwnedFd,
    _fillers: Vec<TcpStream>,
}

impl Blackhole {
    pub fn new() -> Blackhole {
        // SAFETY: plain socket calls on a fresh fd that we own from here on (OwnedFd closes it);
        // the sockaddr we pass lives across the call and its size is given exactly.
        let (fd, addr) = unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(raw >= 0, "socket()");
            let fd = OwnedFd::from_raw_fd(raw);
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            sa.sin_port = 0;
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let rc = libc::bind(
                raw,
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                len,
            );
            assert_eq!(rc, 0, "bind()");
            assert_eq!(libc::listen(raw, 0), 0, "listen()");
            let mut got: libc::sockaddr_in = std::mem::zeroed();
            let mut glen = len;
            let rc = libc::getsockname(
                raw,
                &mut got as *mut libc::sockaddr_in as *mut libc::sockaddr,
                &mut glen,
            );
            assert_eq!(rc, 0, "getsockname()");
            let port = u16::from_be(got.sin_port);
            (fd, SocketAddr::from(([127, 0, 0, 1], port)))
        };
        // Fill the accept queue: connects succeed until it is full, then one times out.
        let mut fillers = Vec::new();
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(_) => {
                    return Blackhole {
                        addr,
                        _listener: fd,
                        _fillers: fillers,
                    }
                }
            }
        }
        panic!("could not fill the accept queue of a listen(0) socket");
    }
}

/// Peak resident set size (VmHWM) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// The local addresses of the IPv4 TCP sockets process `pid` has in LISTEN state (from
/// /proc/net/tcp, matched to the process by socket inode through /proc/PID/fd).
pub fn listening_addrs(pid: u32) -> Vec<SocketAddr> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.push(inode.to_string());
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        if f.len() < 10 || f[3] != "0A" || !inodes.iter().any(|i| i == f[9]) {
            continue;
        }
        let (ip, port) = f[1].split_once(':').unwrap();
        let ip = u32::from_str_radix(ip, 16).unwrap();
        let port = u16::from_str_radix(port, 16).unwrap();
        out.push(SocketAddr::from((ip.to_ne_bytes(), port)));
    }
    out
}

/// How many pipe fds process `pid` holds open now (from /proc/PID/fd).
pub fn pipe_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("pipe:["))
        })
        .count()
}
