//! The coordinator's part in an upgrade: it keeps the offers (a copy of every listening socket)
//! as listeners open and close, serves the upgrade socket from a thread of its own, starts the
//! new binary on SIGUSR2, and hears the upgrade server's events: a new process ready starts this
//! one's drain (and tells systemd the new process is the main one); one that failed leaves it
//! serving, with the reason on stderr. Coordinator thread.

use std::process::Command;

use super::state::Coordinator;
use crate::upgrade::server::Event;

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
                // Under systemd (Type=notify, NotifyAccess=main) only the main process may speak:
                // this one names its successor, which the unit follows from now on.
                let _ = crate::sys::notify_systemd(&format!("MAINPID={pid}\nREADY=1"));
                self.upgrades.handed_over = true;
                self.upgrades
                    .admin_handed_over
                    .store(true, std::sync::atomic::Ordering::Release);
                self.start_drain(&format!("upgrade: process {pid} is ready"));
            }
            Event::Failed { pid, why } => {
                self.upgrades.pending = None;
                eprintln!("upgrade by process {pid} failed: {why}; still serving");
            }
        }
    }
}
