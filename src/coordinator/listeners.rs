//! Opens every shard's SO_REUSEPORT listener up front, on the coordinator thread, so that a port
//! (including one picked by `:0`) is never free between being chosen and being listened on, and a
//! port someone else already holds is an error rather than a silent share.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// The bound addresses (ports resolved) and `listeners[shard][address]`.
pub type Opened = (Vec<SocketAddr>, Vec<Vec<TcpListener>>);

/// `shards` listeners per address, in shard order: `result[shard][address]`, plus the bound
/// addresses (ports resolved). An error says which address (its index in `addrs`) failed.
/// With `steer`, a BPF program on each address's reuseport group sends every client address to
/// one shard (the group's socket order is shard order).
pub fn open(
    addrs: &[SocketAddr],
    shards: usize,
    backlog: u32,
    steer: bool,
) -> Result<Opened, (usize, String)> {
    let mut per_shard: Vec<Vec<TcpListener>> = (0..shards).map(|_| Vec::new()).collect();
    let mut bound = Vec::with_capacity(addrs.len());
    for (i, &addr) in addrs.iter().enumerate() {
        let fail = |e: std::io::Error| (i, format!("cannot listen on {addr}: {e}"));
        if addr.port() != 0 {
            // Without SO_REUSEPORT this fails when any other socket holds the port.
            drop(TcpListener::bind(addr).map_err(fail)?);
        }
        let first = reuseport_listener(addr, backlog).map_err(fail)?;
        let real = first.local_addr().map_err(fail)?;
        per_shard[0].push(first);
        for listeners in per_shard.iter_mut().skip(1) {
            listeners.push(reuseport_listener(real, backlog).map_err(fail)?);
        }
        if steer {
            use std::os::fd::AsRawFd;
            let fd = per_shard[0].last().map(|l| l.as_raw_fd()).unwrap_or(-1);
            crate::sys::attach_steering(fd, addr.is_ipv6(), shards as u32).map_err(|e| {
                (
                    i,
                    format!("cannot attach --steer client-ip program on {addr}: {e}"),
                )
            })?;
        }
        bound.push(real);
    }
    Ok((bound, per_shard))
}

/// A non-blocking listening socket with SO_REUSEPORT and SO_REUSEADDR (as monoio expects), and
/// TCP_NODELAY, which Linux copies to every accepted connection (no setsockopt per connection).
fn reuseport_listener(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted connections inherit TCP_NODELAY from the listener: the shards never set it.
    #[test]
    fn accepted_connections_have_nodelay() {
        let l = reuseport_listener("127.0.0.1:0".parse().unwrap(), 8).unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let accepted = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert!(accepted.nodelay().unwrap());
    }
}
