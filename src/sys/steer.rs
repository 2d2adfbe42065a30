//! The reuseport steering program (`--steer client-ip`): a classic BPF program attached to a
//! listener's SO_REUSEPORT group that sends every connection from one client address to the same
//! shard, and `steer_index`, its specification in Rust. Called on the coordinator thread when the
//! listeners open (and by tests and docs to predict a client's shard).

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

/// The odd 32-bit multiplier of the steering hash (2^32 / golden ratio).
const STEER_MUL: u32 = 0x9e37_79b1;

/// Attaches a classic BPF program (SO_ATTACH_REUSEPORT_CBPF) to this listener's reuseport group
/// that picks socket index steer_index(client IP, n) for every new connection.
///
/// The index is the socket's position in the group, which is the order the listeners started
/// listening (the coordinator opens them in shard order). Call it once per address, on any one
/// listener, after all `n` of them listen; `n` must be the group's size (an index past the end
/// makes the kernel fall back to its own hash). When a listener of the group is closed the kernel
/// moves the last one into its slot, so the mapping only holds while the whole group is open.
/// `ipv6` is for a listener on an IPv6 address: its program reads the IP version first, because
/// a dual-stack socket also receives IPv4 connections (which then steer as their IPv4 address).
pub fn attach_steering(fd: RawFd, ipv6: bool, n: u32) -> io::Result<()> {
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "steering needs at least one socket",
        ));
    }
    let mut program = steering_program(ipv6, n);
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: fprog points at `program`, which lives until after the call; the kernel copies the
    // instructions and validates them before attaching. fd is a socket the caller owns.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The same computation in Rust (tests and docs use it to predict the shard).
///
/// The hash of an address's 32-bit big-endian words: `h = (h ^ word) * 0x9e3779b1` for each word
/// (one for IPv4, four for IPv6), then `(h ^ h >> 16) % n`, all wrapping 32-bit arithmetic.
/// An IPv4-mapped IPv6 address steers as its IPv4 address. `n == 0` gives 0.
pub fn steer_index(ip: IpAddr, n: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    let mix = |h: u32, word: u32| (h ^ word).wrapping_mul(STEER_MUL);
    let h = match ip.to_canonical() {
        IpAddr::V4(a) => mix(0, u32::from(a)),
        IpAddr::V6(a) => a.octets().chunks_exact(4).fold(0, |h, w| {
            mix(h, u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        }),
    };
    (h ^ (h >> 16)) % n
}

/// The steering program; `steer_index` is its specification.
///
/// The reuseport hook runs it with the packet's data past the TCP header, so the source address
/// is read through the `SKF_NET_OFF` ancillary offset (the network header): IPv4 at +12, IPv6 at
/// +8..+24. Registers: A accumulates, X holds the hash between loads.
fn steering_program(ipv6: bool, n: u32) -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_ALU, BPF_B, BPF_JA, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_MISC, BPF_MOD,
        BPF_MUL, BPF_RET, BPF_RSH, BPF_TAX, BPF_W, BPF_X, BPF_XOR,
    };
    let op = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let net = |offset: i32| (libc::SKF_NET_OFF + offset) as u32;
    let load = |offset: i32| op(BPF_LD | BPF_W | BPF_ABS, net(offset));
    let mul = op(BPF_ALU | BPF_MUL | BPF_K, STEER_MUL);
    let xor_x = op(BPF_ALU | BPF_XOR | BPF_X, 0);
    let tax = op(BPF_MISC | BPF_TAX, 0);

    let v4 = [load(12), mul];
    let finish = [
        tax,
        op(BPF_ALU | BPF_RSH | BPF_K, 16),
        xor_x,
        op(BPF_ALU | BPF_MOD | BPF_K, n),
        op(BPF_RET | libc::BPF_A, 0),
    ];
    let mut program = Vec::with_capacity(32);
    if ipv6 {
        let mut v6 = vec![load(8), mul];
        for offset in [12, 16, 20] {
            v6.extend([tax, load(offset), xor_x, mul]);
        }
        // Skip the IPv4 part after the IPv6 one.
        v6.push(op(BPF_JMP | BPF_JA, v4.len() as u32));
        program.push(op(BPF_LD | BPF_B | BPF_ABS, net(0)));
        program.push(op(BPF_ALU | BPF_RSH | BPF_K, 4));
        program.push(libc::sock_filter {
            code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
            jt: 0,
            jf: v6.len() as u8,
            k: 6,
        });
        program.extend(v6);
    }
    program.extend(v4);
    program.extend(finish);
    program
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    use socket2::{Domain, Protocol, Socket, Type};

    /// `n` listeners in one reuseport group, in the order they started listening.
    fn reuseport_group(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpListener>> {
        let mut group: Vec<TcpListener> = Vec::new();
        for _ in 0..n {
            let at = group.first().map_or(Ok(addr), |l| l.local_addr())?;
            let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
            if at.is_ipv6() {
                socket.set_only_v6(false)?;
            }
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&at.into())?;
            socket.listen(64)?;
            group.push(socket.into());
        }
        Ok(group)
    }

    /// Connects from `src` to `dst` and returns which listener of `group` accepted it.
    fn arrival(group: &[TcpListener], src: IpAddr, dst: SocketAddr) -> usize {
        let client = Socket::new(Domain::for_address(dst), Type::STREAM, None).unwrap();
        client.bind(&SocketAddr::new(src, 0).into()).unwrap();
        client.connect(&dst.into()).unwrap();
        let local = client.local_addr().unwrap().as_socket().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            for (i, listener) in group.iter().enumerate() {
                if let Ok((_, peer)) = listener.accept() {
                    assert_eq!(
                        peer.port(),
                        local.port(),
                        "accepted someone else's connection"
                    );
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no listener accepted {src}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn loopback_sources() -> Vec<IpAddr> {
        (1..=48)
            .map(|x| IpAddr::V4(Ipv4Addr::new(127, 0, 0, x)))
            .collect()
    }

    #[test]
    fn ipv4_connections_land_on_steer_index() {
        let group = reuseport_group("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        attach_steering(group[0].as_raw_fd(), false, 2).unwrap();
        let dst = group[0].local_addr().unwrap();
        let sources = loopback_sources();
        let predicted: Vec<u32> = sources.iter().map(|&ip| steer_index(ip, 2)).collect();
        assert!(
            predicted.contains(&0) && predicted.contains(&1),
            "sources cover both shards"
        );
        for (&src, &want) in sources.iter().zip(&predicted) {
            assert_eq!(arrival(&group, src, dst), want as usize, "from {src}");
        }
    }

    #[test]
    fn dual_stack_connections_land_on_steer_index() {
        let Ok(group) = reuseport_group("[::]:0".parse().unwrap(), 2) else {
            eprintln!("skipped: no IPv6 on this machine");
            return;
        };
        attach_steering(group[0].as_raw_fd(), true, 2).unwrap();
        let port = group[0].local_addr().unwrap().port();
        let v4 = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        for src in loopback_sources() {
            let want = steer_index(src, 2) as usize;
            assert_eq!(
                arrival(&group, src, v4),
                want,
                "ipv4 {src} on a dual-stack group"
            );
        }
        let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port);
        if Socket::new(Domain::IPV6, Type::STREAM, None)
            .and_then(|s| s.bind(&SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0).into()))
            .is_err()
        {
            eprintln!("skipped ::1: not configured");
            return;
        }
        let want = steer_index(Ipv6Addr::LOCALHOST.into(), 2) as usize;
        for _ in 0..8 {
            assert_eq!(arrival(&group, Ipv6Addr::LOCALHOST.into(), v6), want, "::1");
        }
    }

    #[test]
    fn attach_rejects_zero_sockets() {
        let group = reuseport_group("127.0.0.1:0".parse().unwrap(), 1).unwrap();
        let e = attach_steering(group[0].as_raw_fd(), false, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    /// Runs the instructions `steering_program` emits over a network header, as the kernel does.
    fn run(program: &[libc::sock_filter], header: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let at = |k: u32| (k as i32 - libc::SKF_NET_OFF) as usize;
        loop {
            let i = program[pc];
            pc += 1;
            match u32::from(i.code) {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let b = &header[at(i.k)..at(i.k) + 4];
                    a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS => {
                    a = u32::from(header[at(i.k)])
                }
                c if c == libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K => a = a.wrapping_mul(i.k),
                c if c == libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K => a >>= i.k,
                c if c == libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X => a ^= x,
                c if c == libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K => a %= i.k,
                c if c == libc::BPF_MISC | libc::BPF_TAX => x = a,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf })
                }
                c if c == libc::BPF_RET | libc::BPF_A => return a,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn ipv4_header(src: Ipv4Addr) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        h.extend(src.octets());
        h.extend([192, 0, 2, 1]);
        h
    }

    fn ipv6_header(src: Ipv6Addr) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        h.extend(src.octets());
        h.extend(Ipv6Addr::LOCALHOST.octets());
        h
    }

    /// Many more addresses than loopback offers: the program and `steer_index` agree on each.
    #[test]
    fn program_matches_steer_index() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for n in [1, 2, 3, 4, 7, 64] {
            let (only_v4, dual) = (steering_program(false, n), steering_program(true, n));
            for _ in 0..500 {
                let v4 = Ipv4Addr::from(next() as u32);
                let want = steer_index(v4.into(), n);
                assert_eq!(run(&only_v4, &ipv4_header(v4)), want, "{v4} % {n}");
                assert_eq!(run(&dual, &ipv4_header(v4)), want, "{v4} % {n} (dual)");
                let v6 = Ipv6Addr::from(u128::from(next()) << 64 | u128::from(next()));
                let want = steer_index(v6.into(), n);
                assert_eq!(run(&dual, &ipv6_header(v6)), want, "{v6} % {n}");
            }
        }
    }

    #[test]
    fn steer_index_cases() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            ("zero sockets", ip("10.0.0.1"), 0, 0),
            ("one socket", ip("10.0.0.1"), 1, 0),
            (
                "mapped is ipv4",
                ip("::ffff:10.0.0.1"),
                7,
                steer_index(ip("10.0.0.1"), 7),
            ),
            // (0x0a000001 * 0x9e3779b1) mod 2^32 = 0x883779b1; ^ >> 16 = 0x8837f186.
            ("ipv4 by hand", ip("10.0.0.1"), 1000, 0x8837_f186 % 1000),
        ];
        for (name, addr, n, want) in cases {
            assert_eq!(steer_index(addr, n), want, "{name}");
        }
        // Spreads: 1024 consecutive client addresses over 4 shards, none under 20%.
        let mut counts = [0u32; 4];
        for i in 0..1024u32 {
            counts[steer_index(Ipv4Addr::from(0xc000_0200 + i).into(), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 204), "{counts:?}");
    }
}
