//! File descriptors across processes: one message of bytes with up to `MAX_FDS` descriptors
//! attached (`SCM_RIGHTS` over a Unix stream socket), sent and received whole; who is on the
//! other end (`SO_PEERCRED`); and a child process that inherits none of ours. The one `unsafe`
//! of the upgrade: libc calls and the control-message buffer read and written by pointer (each
//! use stated).
//! Runs on the threads of the upgrade (old side: its server thread; new side: the coordinator
//! before the shards start).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Most descriptors in one message (the kernel's `SCM_MAX_FD` is 253).
pub const MAX_FDS: usize = 64;

/// Room for the `cmsghdr` and `MAX_FDS` descriptors, aligned for `cmsghdr`.
#[repr(C)]
struct Control {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; 512],
}

/// Sends `bytes` with `fds` attached, in one `sendmsg`; the whole message or an error.
pub fn send(sock: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS || bytes.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a message carries 1 or more bytes and at most 64 descriptors",
        ));
    }
    let mut control = Control {
        _align: [],
        bytes: [0; 512],
    };
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let payload = std::mem::size_of_val(fds);
    if !fds.is_empty() {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
        msg.msg_control = control.bytes.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `space` (≤ 512) bytes aligned for cmsghdr, so the first
        // header and its data (CMSG_DATA, `payload` bytes) lie inside `control`.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(c), payload);
        }
    }
    // SAFETY: `msg` points at `iov` and `control`, both alive for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != bytes.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short sendmsg"));
    }
    Ok(())
}

/// Receives one message into `buf` (its length) and the descriptors attached to it (owned:
/// closed when dropped). 0 bytes: the peer closed.
pub fn recv(sock: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut control = Control {
        _align: [],
        bytes: [0; 512],
    };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = control.bytes.len();
    // SAFETY: `msg` points at `iov` (into `buf`) and `control`, both alive for the call;
    // MSG_CMSG_CLOEXEC: the descriptors are not inherited by anything this process starts.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled `msg_controllen` bytes of `control` with well-formed headers;
    // CMSG_FIRSTHDR/NXTHDR stay inside them, and each SCM_RIGHTS header's data holds
    // (cmsg_len - CMSG_LEN(0)) / 4 descriptors now owned by this process.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(c);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(
                        data.add(i * std::mem::size_of::<RawFd>()) as *const RawFd
                    );
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptors were cut off (more than the message had room for)",
        ));
    }
    Ok(n as usize)
}

/// Whether the process on the other end of the upgrade socket may take the listening sockets:
/// it runs as this process's effective user, or as root.
pub fn may_take_sockets(fd: RawFd) -> Result<(), String> {
    let Some(cred) = peer_credentials(fd) else {
        return Err("refused: the peer's credentials cannot be read".into());
    };
    // SAFETY: geteuid takes nothing and cannot fail.
    let me = unsafe { libc::geteuid() };
    if cred.uid == me || cred.uid == 0 {
        Ok(())
    } else {
        Err(format!(
            "refused: process {} runs as uid {}, not {me} or root",
            cred.pid, cred.uid
        ))
    }
}

/// The credentials of the process on the other end of a Unix socket (`SO_PEERCRED`).
pub fn peer_credentials(fd: RawFd) -> Option<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred of `len` bytes for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0).then_some(cred)
}

/// Starts `cmd` with no descriptor of this process but stdin, stdout and stderr: io_uring
/// accepts client connections without `CLOEXEC`, and one that lived on in a new process would
/// never see its FIN when this process closes it (SIGUSR2's upgrade starts the new binary).
pub fn spawn_without_inherited_fds(
    cmd: &mut std::process::Command,
) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: between fork and exec the closure makes only async-signal-safe system calls
    // (close_range, or fcntl on kernels older than 5.11) and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let all = libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            );
            if all != 0 {
                for fd in 3..65_536 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        })
    };
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A listening socket sent across keeps accepting on the other side: a connection made to the
    /// original address is accepted through the received descriptor.
    #[test]
    fn a_listener_sent_over_a_socket_pair_accepts_on_the_other_side() {
        let (a, b) = UnixStream::pair().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        send(&a, b"one listener", &[l.as_raw_fd()]).unwrap();
        drop(l);
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let n = recv(&b, &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"one listener");
        assert_eq!(fds.len(), 1);
        let got = TcpListener::from(fds.pop().unwrap());
        assert_eq!(got.local_addr().unwrap(), addr);
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"x").unwrap();
        let (mut s, _) = got.accept().unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
    }

    #[test]
    fn several_descriptors_and_none() {
        let (a, b) = UnixStream::pair().unwrap();
        let ls: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let raw: Vec<RawFd> = ls.iter().map(|l| l.as_raw_fd()).collect();
        send(&a, b"three", &raw).unwrap();
        send(&a, b"none", &[]).unwrap();
        let mut buf = [0u8; 5];
        let mut fds = Vec::new();
        assert_eq!(recv(&b, &mut buf, &mut fds).unwrap(), 5);
        assert_eq!(fds.len(), 3);
        fds.clear();
        assert_eq!(recv(&b, &mut buf, &mut fds).unwrap(), 4);
        assert!(fds.is_empty());
        assert!(send(&a, b"too many", &vec![raw[0]; MAX_FDS + 1]).is_err());
        drop(a);
        assert_eq!(recv(&b, &mut buf, &mut fds).unwrap(), 0);
    }
}
