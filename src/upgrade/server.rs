//! The old side of an upgrade: a thread of the coordinator's listens on the upgrade socket; a
//! new process that connects gets every listening socket (`offers`) and, once it says `ready`,
//! the coordinator hears it and starts this process's drain. One upgrade at a time: another
//! process that asks meanwhile is told `busy` and gives up. A new process that closes the socket
//! or says nothing within `READY_WITHIN` failed: this process never stopped accepting and logs
//! why. Upgrade threads; the coordinator only receives their `Event`s.

use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::fds;
use super::offers::Offers;
use super::{listener_line, Lines, READY_WITHIN, VERSION};

/// What the coordinator hears from the upgrade server.
#[derive(Debug)]
pub enum Event {
    /// A new process took the sockets and is starting.
    Asked { pid: u32 },
    /// The new process serves: stop accepting and drain.
    Ready { pid: u32 },
    /// The new process failed before it was ready: keep serving.
    Failed { pid: u32, why: String },
}

/// Binds `path` (a socket file left by a process that is gone is replaced; one a live process
/// answers on is an error; mode 0600) and serves upgrades on a thread of its own, to processes of
/// this user or root only.
pub fn spawn(path: &Path, offers: Offers, events: Sender<Event>) -> std::io::Result<()> {
    let listener = bind(path)?;
    let busy = Arc::new(AtomicBool::new(false));
    std::thread::Builder::new()
        .name("upgrade".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if let Err(why) = fds::may_take_sockets(conn.as_raw_fd()) {
                    let _ = (&conn).write_all(format!("busy {why}\n").as_bytes());
                    continue;
                }
                if busy.swap(true, Ordering::AcqRel) {
                    let _ = (&conn).write_all(b"busy another upgrade is under way\n");
                    continue;
                }
                let (offers, events, busy) = (offers.clone(), events.clone(), busy.clone());
                let _ = std::thread::Builder::new()
                    .name("upgrade-conn".into())
                    .spawn(move || {
                        // After a `ready` this process drains: it never hands over again.
                        if !hand_over(&conn, &offers, &events) {
                            busy.store(false, Ordering::Release);
                        }
                    });
            }
        })?;
    Ok(())
}

/// Binds a Unix listener at `path`, making its directory if needed.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "{} is the upgrade socket of a running process",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
            UnixListener::bind(path)?
        }
        Err(e) => return Err(e),
    };
    // Only this process's user (and root) may connect: whoever can takes the listening sockets.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Binds the upgrade socket beside `path` and moves it over `path` at once (a new process takes
/// over the path while the old one still listens on the file it replaces).
pub fn take_over(path: &Path, offers: Offers, events: Sender<Event>) -> std::io::Result<()> {
    let mut fresh = PathBuf::from(path);
    fresh.set_extension(format!("new-{}", std::process::id()));
    spawn(&fresh, offers, events)?;
    std::fs::rename(&fresh, path)
}

/// One upgrade: the sockets, then the wait for `ready`. True when the new process is ready.
fn hand_over(conn: &UnixStream, offers: &Offers, events: &Sender<Event>) -> bool {
    let pid = peer_pid(conn.as_raw_fd()).unwrap_or(0);
    let sent = offers.with(|all| -> std::io::Result<usize> {
        if all.is_empty() {
            fds::send(conn, b"busy draining\n", &[])?;
            return Ok(0);
        }
        let hello = format!("shardgate-upgrade {VERSION} {}\n", std::process::id());
        fds::send(conn, hello.as_bytes(), &[])?;
        for o in all {
            let raw: Vec<RawFd> = o.sockets.iter().map(|s| s.as_raw_fd()).collect();
            fds::send(conn, listener_line(o).as_bytes(), &raw)?;
        }
        fds::send(conn, b"end\n", &[])?;
        Ok(all.len())
    });
    match sent {
        Ok(0) => return false,
        Ok(_) => {}
        Err(e) => {
            let why = format!("cannot send the listening sockets: {e}");
            let _ = events.send(Event::Failed { pid, why });
            return false;
        }
    }
    let _ = events.send(Event::Asked { pid });
    let _ = conn.set_read_timeout(Some(READY_WITHIN));
    let mut lines = Lines::new(conn);
    let why = match lines.next() {
        Ok(Some(l)) if l.starts_with("ready ") => {
            let _ = events.send(Event::Ready { pid });
            let _ = (&*conn).write_all(b"draining\n");
            return true;
        }
        Ok(Some(l)) => format!("it said {l:?}"),
        Ok(None) => "it exited or closed the upgrade socket before it was ready".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            format!("not ready within {READY_WITHIN:?}")
        }
        Err(e) => format!("upgrade socket: {e}"),
    };
    let _ = events.send(Event::Failed { pid, why });
    false
}

/// The pid of the process on the other end of a Unix socket (`SO_PEERCRED`).
fn peer_pid(fd: RawFd) -> Option<u32> {
    fds::peer_credentials(fd).map(|c| c.pid as u32)
}
