//! Zero-downtime binary upgrade: the running process hands every listening socket to a new one
//! over a Unix socket (`SCM_RIGHTS`), the new one serves them from the moment its shards are
//! ready, and only then does the old one stop accepting and drain. The listening sockets (their
//! accept queues, their `SO_REUSEPORT` group and its steering program) never close in between,
//! so no connection is refused or reset.
//!
//! Files: `fds` (descriptors in a message), `offers` (the listeners the old process offers, kept
//! by its coordinator), `server` (the old side: a thread of the coordinator's), `client` (the
//! new side, before its shards start), `lifecycle` (what a process holds for upgrades). This
//! file: the protocol's lines.
//!
//! The protocol, text lines over a Unix stream socket (descriptors ride with their line):
//! - old → new: `shardgate-upgrade 1 <pid>`, then per listening address
//!   `listener <written> <bound> <n>` with its `n` sockets (shard order) attached, then `end`;
//!   or `busy <pid>` when another upgrade is under way (then the socket closes).
//! - new → old: `ready <pid>` once every new shard is ready, or nothing (it closed: it failed).
//! - old → new: `draining` (the old process stops accepting; the new one may take over the
//!   upgrade socket's path).

pub mod client;
#[allow(unsafe_code)] // SCM_RIGHTS control messages, SO_PEERCRED, close_range
pub mod fds;
pub mod lifecycle;
pub mod offers;
pub mod server;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

/// Where an upgrade socket lives unless `--upgrade-socket` says otherwise.
pub const DEFAULT_SOCKET: &str = crate::config::DEFAULT_UPGRADE_SOCKET;

/// The protocol's version, first on the old side's greeting.
pub const VERSION: u32 = 1;

/// How long the old side waits for the new one to be ready (its shards start within 10 s).
pub const READY_WITHIN: Duration = Duration::from_secs(60);

/// One listening address as handed over: as the config wrote it (`127.0.0.1:0` stays that), as
/// bound, and its sockets in shard order (one `SO_REUSEPORT` group).
/// The admin listener rides along too (`admin`: one socket, not a group), so a successor with
/// the same admin address answers on it without a moment of refused connections.
#[derive(Debug)]
pub struct Offer {
    pub written: SocketAddr,
    pub bound: SocketAddr,
    pub sockets: Vec<OwnedFd>,
    pub admin: bool,
}

/// The upgrade socket's path, or none (`--upgrade-socket off`).
pub type SocketPath = Option<PathBuf>;

/// Lines read from the upgrade socket, with the descriptors that arrived with them, in order.
pub(crate) struct Lines<'s> {
    sock: &'s std::os::unix::net::UnixStream,
    buf: Vec<u8>,
    pub(crate) fds: std::collections::VecDeque<OwnedFd>,
}

impl<'s> Lines<'s> {
    pub(crate) fn new(sock: &'s std::os::unix::net::UnixStream) -> Lines<'s> {
        Lines {
            sock,
            buf: Vec::new(),
            fds: Default::default(),
        }
    }

    /// The next line (without its newline), or `None` when the peer closed; a line longer
    /// than 4 KiB is an error (nothing in the protocol is).
    pub(crate) fn next(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return String::from_utf8(line[..i].to_vec())
                    .map(Some)
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8")
                    });
            }
            if self.buf.len() > 4096 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a line longer than 4 KiB",
                ));
            }
            let mut chunk = [0u8; 1024];
            let mut got = Vec::new();
            let n = fds::recv(self.sock, &mut chunk, &mut got)?;
            self.fds.extend(got);
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A `listener` (or `admin`) line: the addresses and how many sockets ride with it.
pub(crate) fn listener_line(o: &Offer) -> String {
    let kind = if o.admin { "admin" } else { "listener" };
    format!("{kind} {} {} {}\n", o.written, o.bound, o.sockets.len())
}

/// Parses a `listener` or `admin` line's fields: (admin, written, bound, sockets).
pub(crate) fn parse_listener(line: &str) -> Option<(bool, SocketAddr, SocketAddr, usize)> {
    let (admin, rest) = match line.split_once(' ')? {
        ("listener", rest) => (false, rest),
        ("admin", rest) => (true, rest),
        _ => return None,
    };
    let mut f = rest.split(' ');
    let written = f.next()?.parse().ok()?;
    let bound = f.next()?.parse().ok()?;
    let n = f.next()?.parse().ok()?;
    (f.next().is_none() && (!admin || n == 1)).then_some((admin, written, bound, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_lines_round_trip_and_junk_is_refused() {
        let o = Offer {
            written: "127.0.0.1:0".parse().unwrap(),
            bound: "127.0.0.1:4321".parse().unwrap(),
            sockets: Vec::new(),
            admin: false,
        };
        let line = listener_line(&o);
        assert_eq!(line, "listener 127.0.0.1:0 127.0.0.1:4321 0\n");
        assert_eq!(
            parse_listener(line.trim_end()),
            Some((false, o.written, o.bound, 0))
        );
        let v6 = "listener [::1]:80 [::1]:80 2";
        assert_eq!(
            parse_listener(v6).map(|p| p.3),
            Some(2),
            "IPv6 addresses parse"
        );
        let admin = "admin 127.0.0.1:9901 127.0.0.1:9901 1";
        assert_eq!(parse_listener(admin).map(|p| p.0), Some(true));
        assert_eq!(
            parse_listener("admin 127.0.0.1:1 127.0.0.1:1 2"),
            None,
            "one admin socket"
        );
        for bad in [
            "listener",
            "listener a b 1",
            "listener 1.2.3.4:1 1.2.3.4:1",
            "x 1",
        ] {
            assert_eq!(parse_listener(bad), None, "{bad}");
        }
    }
}
