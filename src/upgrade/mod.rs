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
    /// What the old process served on it (the new one follows its own config, and says so when
    /// that differs).
    pub serves: Serves,
}

/// What a listening address serves: PROXY protocol first, TLS, h2c beside HTTP/1.1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Serves {
    pub proxy_protocol: bool,
    pub tls: bool,
    pub h2c: bool,
}

impl Serves {
    /// As written on a `listener` line: `proxy,tls,h2c` in that order, or `plain`.
    fn word(self) -> String {
        let parts: Vec<&str> = [
            (self.proxy_protocol, "proxy"),
            (self.tls, "tls"),
            (self.h2c, "h2c"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect();
        match parts.is_empty() {
            true => "plain".into(),
            false => parts.join(","),
        }
    }

    fn parse(word: &str) -> Option<Serves> {
        let mut s = Serves::default();
        if word == "plain" {
            return Some(s);
        }
        for w in word.split(',') {
            let flag = match w {
                "proxy" => &mut s.proxy_protocol,
                "tls" => &mut s.tls,
                "h2c" => &mut s.h2c,
                _ => return None,
            };
            *flag = true;
        }
        Some(s)
    }
}

impl std::fmt::Display for Serves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.word())
    }
}

impl From<&crate::config::Listener> for Serves {
    fn from(l: &crate::config::Listener) -> Serves {
        Serves {
            proxy_protocol: l.proxy_protocol,
            tls: l.tls.is_some(),
            h2c: l.h2c,
        }
    }
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

/// A `listener` line (addresses, how many sockets ride with it, what it serves) or an `admin`
/// line (addresses, one socket).
pub(crate) fn listener_line(o: &Offer) -> String {
    match o.admin {
        true => format!("admin {} {} 1\n", o.written, o.bound),
        false => format!(
            "listener {} {} {} {}\n",
            o.written,
            o.bound,
            o.sockets.len(),
            o.serves
        ),
    }
}

/// One `listener` or `admin` line as read.
#[derive(Debug, PartialEq)]
pub(crate) struct Line {
    pub admin: bool,
    pub written: SocketAddr,
    pub bound: SocketAddr,
    pub sockets: usize,
    pub serves: Serves,
}

/// Parses a `listener` or `admin` line.
pub(crate) fn parse_listener(line: &str) -> Option<Line> {
    let (admin, rest) = match line.split_once(' ')? {
        ("listener", rest) => (false, rest),
        ("admin", rest) => (true, rest),
        _ => return None,
    };
    let mut f = rest.split(' ');
    let written = f.next()?.parse().ok()?;
    let bound = f.next()?.parse().ok()?;
    let sockets = f.next()?.parse().ok()?;
    let serves = match admin {
        true if sockets == 1 => Serves::default(),
        true => return None,
        false => Serves::parse(f.next()?)?,
    };
    f.next().is_none().then_some(Line {
        admin,
        written,
        bound,
        sockets,
        serves,
    })
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
            serves: Serves {
                proxy_protocol: true,
                tls: true,
                h2c: false,
            },
        };
        let line = listener_line(&o);
        assert_eq!(line, "listener 127.0.0.1:0 127.0.0.1:4321 0 proxy,tls\n");
        let back = Line {
            admin: false,
            written: o.written,
            bound: o.bound,
            sockets: 0,
            serves: o.serves,
        };
        assert_eq!(parse_listener(line.trim_end()), Some(back));
        let v6 = parse_listener("listener [::1]:80 [::1]:80 2 h2c").expect("IPv6 parses");
        assert_eq!((v6.sockets, v6.serves.h2c, v6.serves.tls), (2, true, false));
        let plain = parse_listener("listener [::1]:80 [::1]:80 2 plain");
        assert_eq!(plain.map(|l| l.serves), Some(Serves::default()));
        let admin = "admin 127.0.0.1:9901 127.0.0.1:9901 1";
        assert_eq!(parse_listener(admin).map(|p| p.admin), Some(true));
        assert_eq!(
            parse_listener("admin 127.0.0.1:1 127.0.0.1:1 2"),
            None,
            "one admin socket"
        );
        for bad in [
            "listener",
            "listener a b 1",
            "listener 1.2.3.4:1 1.2.3.4:1",
            "listener 1.2.3.4:1 1.2.3.4:1 1",
            "listener 1.2.3.4:1 1.2.3.4:1 1 quic",
            "listener 1.2.3.4:1 1.2.3.4:1 1 tls extra",
            "x 1",
        ] {
            assert_eq!(parse_listener(bad), None, "{bad}");
        }
    }
}
