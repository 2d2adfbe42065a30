//! The coordinator's part in an upgrade: it keeps the offers (a copy of every listening socket)
//! as listeners open and close, serves the upgrade socket from a thread of its own, starts the
//! new binary on SIGUSR2, and hears the upgrade server's events: a new process ready starts this
//! one's drain; one that failed leaves it serving, with the reason on stderr. Coordinator thread.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crossbeam_channel::{never, Receiver};

use super::state::Coordinator;
use crate::upgrade::client::Inherited;
use crate::upgrade::offers::Offers;
use crate::upgrade::server::{self, Event};

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
    socket: Option<PathBuf>,
    relaunch: Option<Relaunch>,
    /// The pid of the new process that has the sockets and is starting.
    pending: Option<u32>,
}

impl Upgrades {
    pub fn new(offers: Offers, start: Start) -> Upgrades {
        Upgrades {
            offers,
            events: never(),
            socket: start.socket,
            relaunch: start.relaunch,
            pending: None,
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

impl Coordinator {
    /// SIGUSR2: starts the new binary with `--upgrade` (once at a time).
    pub(super) fn relaunch(&mut self) {
        if self.phase.is_draining() {
            eprintln!("SIGUSR2 during drain: no upgrade");
            return;
        }
        if let Some(pid) = self.upgrades.pending {
            eprintln!("SIGUSR2: process {pid} is already taking over: no second upgrade");
            return;
        }
        let Some(r) = &self.upgrades.relaunch else {
            eprintln!("SIGUSR2: cannot tell this program's path: no upgrade");
            return;
        };
        if self.upgrades.socket.is_none() {
            eprintln!("SIGUSR2: --upgrade-socket is off: no upgrade");
            return;
        }
        let mut cmd = Command::new(&r.exe);
        cmd.args(&r.args);
        match crate::upgrade::fds::spawn_without_inherited_fds(&mut cmd) {
            Ok(mut child) => {
                eprintln!("SIGUSR2: started {} (pid {})", r.exe.display(), child.id());
                // Reaped by a thread of its own: it outlives this process when the upgrade works.
                let _ = std::thread::Builder::new()
                    .name("upgrade-child".into())
                    .spawn(move || child.wait());
            }
            Err(e) => eprintln!("SIGUSR2: cannot start {}: {e}", r.exe.display()),
        }
    }

    /// One event of the upgrade server.
    pub(super) fn upgrade_event(&mut self, event: Event) {
        match event {
            Event::Asked { pid } => {
                eprintln!("upgrade: process {pid} took the listening sockets and is starting");
                self.upgrades.pending = Some(pid);
            }
            Event::Ready { pid } => {
                self.upgrades.pending = None;
                self.start_drain(&format!("upgrade: process {pid} is ready"));
            }
            Event::Failed { pid, why } => {
                self.upgrades.pending = None;
                eprintln!("upgrade by process {pid} failed: {why}; still serving");
            }
        }
    }
}
