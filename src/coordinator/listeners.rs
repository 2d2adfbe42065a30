//! Opens every shard's SO_REUSEPORT listener up front, on the coordinator thread, so that a port
//! (including one picked by `:0`) is never free between being chosen and being listened on, and a
//! port someone else already holds is an error rather than a silent share. After an upgrade
//! (`--upgrade`), adopts the groups the old process handed over instead (`adopt`), with as many
//! shards as this process has: surplus sockets are served by the shards there are, missing ones
//! join the group.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use crate::upgrade::client::Inherited;

/// One address's SO_REUSEPORT group in group order (which steering indexes): as written, as
/// bound, and its sockets. Socket `j` is served by shard `j % shards`.
pub struct Group {
    pub written: SocketAddr,
    pub bound: SocketAddr,
    pub sockets: Vec<TcpListener>,
}

/// Opens or adopts one group per address: an address the old process handed over (`inherited`,
/// matched by written or bound address) keeps its sockets, the rest are opened anew. What the old
/// process had and this config drops is closed here (it keeps its own copies until its drain).
/// An error says which address (its index in `addrs`) failed.
pub fn adopt(
    addrs: &[SocketAddr],
    shards: usize,
    backlog: u32,
    steer: bool,
    mut inherited: Option<&mut Inherited>,
) -> Result<Vec<Group>, (usize, String)> {
    let mut groups = Vec::with_capacity(addrs.len());
    for (i, &addr) in addrs.iter().enumerate() {
        let offer = inherited.as_deref_mut().and_then(|h| h.take(addr));
        let Some(offer) = offer else {
            let (mut bound, per_shard) = open(&[addr], shards, backlog, steer)?;
            let sockets = per_shard.into_iter().flatten().collect();
            let bound = bound.pop().unwrap_or(addr);
            groups.push(Group {
                written: addr,
                bound,
                sockets,
            });
            continue;
        };
        let fail = |e: std::io::Error| (i, format!("cannot serve {addr} handed over: {e}"));
        let mut sockets: Vec<TcpListener> =
            offer.sockets.into_iter().map(TcpListener::from).collect();
        for s in &sockets {
            s.set_nonblocking(true).map_err(fail)?;
        }
        while sockets.len() < shards {
            sockets.push(reuseport_listener(offer.bound, backlog).map_err(fail)?);
        }
        if steer {
            let fd = sockets[0].as_raw_fd();
            crate::sys::attach_steering(fd, addr.is_ipv6(), shards as u32).map_err(|e| {
                (
                    i,
                    format!("cannot attach --steer client-ip program on {addr}: {e}"),
                )
            })?;
        }
        groups.push(Group {
            written: addr,
            bound: offer.bound,
            sockets,
        });
    }
    Ok(groups)
}

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
