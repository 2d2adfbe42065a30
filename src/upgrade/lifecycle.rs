//! What a process holds for upgrades, from start to exit: how it was started (`Start`: take the
//! sockets over, the upgrade socket's path, how SIGUSR2 relaunches the binary), the offers, and
//! the upgrade server's events once every shard is ready (`Upgrades::serve`). Owned by the
//! coordinator, which acts on the events (coordinator/upgrade.rs). Coordinator thread.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crossbeam_channel::{never, Receiver};

use super::client::Inherited;
use super::offers::Offers;
use super::server::{self, Event};

/// How this process was started, for an upgrade.
pub struct Start {
    /// `--upgrade`: take the listening sockets from the process on `socket`.
    pub upgrade: bool,
    /// The upgrade socket (`--upgrade-socket`), or none: no upgrades.
    pub socket: Option<PathBuf>,
    /// How SIGUSR2 starts the new binary.
    pub relaunch: Option<Relaunch>,
}

/// The new binary's path and arguments (with `--upgrade`).
pub struct Relaunch {
    pub exe: PathBuf,
    pub args: Vec<OsString>,
}

/// What the coordinator holds for upgrades.
pub struct Upgrades {
    pub offers: Offers,
    pub events: Receiver<Event>,
    pub socket: Option<PathBuf>,
    pub relaunch: Option<Relaunch>,
    /// The pid of the new process that has the sockets and is starting.
    pub pending: Option<u32>,
    /// A new process took over: systemd was told it is the main process now, so this one's drain
    /// is not the service stopping.
    pub handed_over: bool,
    /// Set at the hand-over: the admin thread stops accepting (the successor has the socket,
    /// or an admin listener of its own).
    pub admin_handed_over: Arc<AtomicBool>,
}

impl Upgrades {
    pub fn new(offers: Offers, start: Start, admin_handed_over: Arc<AtomicBool>) -> Upgrades {
        Upgrades {
            offers,
            events: never(),
            socket: start.socket,
            relaunch: start.relaunch,
            pending: None,
            handed_over: false,
            admin_handed_over,
        }
    }

    /// Once every shard is ready: tells the old process (if this one took its sockets) that it
    /// may drain, then serves the upgrade socket (taking its path over from the old process).
    pub fn serve(&mut self, inherited: Option<Inherited>) {
        let Some(path) = self.socket.clone() else {
            return;
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let served = match inherited {
            Some(h) => {
                let old = h.old_pid;
                match h.ready() {
                    Ok(()) => eprintln!("upgrade: serving; process {old} drains"),
                    Err(e) => eprintln!("upgrade: serving, but {e}"),
                }
                server::take_over(&path, self.offers.clone(), tx)
            }
            None => server::spawn(&path, self.offers.clone(), tx),
        };
        match served {
            Ok(()) => self.events = rx,
            Err(e) => eprintln!(
                "warning: no upgrades for this process: upgrade socket {}: {e} (--upgrade-socket PATH or off)",
                path.display()
            ),
        }
    }
}
