//! The new side of an upgrade (`--upgrade`): before its shards start, the new process connects
//! to the running one's upgrade socket and receives every listening socket with the addresses
//! it serves; the coordinator adopts them instead of binding (`coordinator::listeners`), and
//! says `ready` once every shard is ready, which starts the old process's drain. Any failure
//! before that leaves the old process serving as it was. Coordinator thread, at start.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{parse_listener, Lines, Offer, VERSION};

/// What the old process handed over, and the socket to tell it `ready` on.
pub struct Inherited {
    pub old_pid: u32,
    pub offers: Vec<Offer>,
    sock: UnixStream,
}

/// How long the old process may take to send its sockets.
const RECEIVE_WITHIN: Duration = Duration::from_secs(10);

/// Connects to the upgrade socket at `path` and takes the listening sockets; the error says
/// why in a sentence for stderr.
pub fn inherit(path: &Path) -> Result<Inherited, String> {
    let at = path.display();
    let sock = UnixStream::connect(path)
        .map_err(|e| format!("cannot reach the running process's upgrade socket {at}: {e}"))?;
    let _ = sock.set_read_timeout(Some(RECEIVE_WITHIN));
    let bad = |what: &str| format!("upgrade socket {at}: {what}");
    let mut lines = Lines::new(&sock);
    let mut next = || -> Result<String, String> {
        match lines.next() {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(bad("closed before every socket was sent")),
            Err(e) => Err(bad(&e.to_string())),
        }
    };
    let hello = next()?;
    if let Some(why) = hello.strip_prefix("busy ") {
        return Err(format!("the running process refused the upgrade: {why}"));
    }
    let old_pid = match hello.split(' ').collect::<Vec<_>>()[..] {
        ["shardgate-upgrade", v, pid] if v == VERSION.to_string() => {
            pid.parse().map_err(|_| bad("a greeting without a pid"))?
        }
        _ => return Err(bad(&format!("unexpected greeting {hello:?}"))),
    };
    let mut wanted = Vec::new();
    loop {
        let line = next()?;
        if line == "end" {
            break;
        }
        wanted.push(parse_listener(&line).ok_or_else(|| bad(&format!("bad line {line:?}")))?);
    }
    let mut offers = Vec::with_capacity(wanted.len());
    for l in wanted {
        if lines.fds.len() < l.sockets {
            return Err(bad("fewer sockets than the listeners announced"));
        }
        offers.push(Offer {
            written: l.written,
            bound: l.bound,
            sockets: lines.fds.drain(..l.sockets).collect(),
            admin: l.admin,
            serves: l.serves,
        });
    }
    drop(lines);
    Ok(Inherited {
        old_pid,
        offers,
        sock,
    })
}

impl Inherited {
    /// The offer for a listener the new config writes as `addr`: the same written address, or
    /// the address the old process bound (a `:0` port it resolved). Taken once.
    pub fn take(&mut self, addr: SocketAddr) -> Option<Offer> {
        let i = self
            .offers
            .iter()
            .position(|o| !o.admin && (o.written == addr || o.bound == addr))?;
        Some(self.offers.swap_remove(i))
    }

    /// What the old process served on the address the new config writes as `addr`, if it had it.
    pub fn served_as(&self, addr: SocketAddr) -> Option<super::Serves> {
        self.offers
            .iter()
            .find(|o| !o.admin && (o.written == addr || o.bound == addr))
            .map(|o| o.serves)
    }

    /// The old process's admin listener, taken out of the offers: a `TcpListener` when this
    /// config's admin address is the one it had (written or bound), else dropped (only this
    /// process's copy closes; the old one still serves it until its drain).
    pub fn take_admin(&mut self, addr: Option<SocketAddr>) -> Option<std::net::TcpListener> {
        let i = self.offers.iter().position(|o| o.admin)?;
        let mut o = self.offers.swap_remove(i);
        let addr = addr?;
        (o.written == addr || o.bound == addr)
            .then(|| o.sockets.pop())
            .flatten()
            .map(std::net::TcpListener::from)
    }

    /// Tells the old process this one serves; it stops accepting and drains. The old process's
    /// `draining` answer is waited for briefly, for the log.
    pub fn ready(self) -> Result<(), String> {
        let line = format!("ready {}\n", std::process::id());
        (&self.sock)
            .write_all(line.as_bytes())
            .map_err(|e| format!("cannot tell process {} we are ready: {e}", self.old_pid))?;
        let _ = self.sock.set_read_timeout(Some(Duration::from_secs(2)));
        match Lines::new(&self.sock).next() {
            Ok(Some(l)) if l == "draining" => Ok(()),
            other => Err(format!(
                "process {} did not confirm its drain ({other:?})",
                self.old_pid
            )),
        }
    }
}
