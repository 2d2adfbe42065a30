//! The coordinator's control loop: waits for every shard to be ready, then selects on signals,
//! shard reports, admin calls, the drain's timers, the state-log flush, DNS discovery's answers,
//! the limits thread's tables (global rate limits: relayed to every shard, as shards' admitted
//! counts are relayed to it) and the session-ticket rotation, and turns
//! each into an action (drain, reload, log reopen, health news relayed between shards, the drain
//! barrier, a look at the TLS files) until the phase says exit. Coordinator thread only.

use std::time::{Duration, Instant};

use crossbeam_channel::{after, never, select};
use signal_hook::consts::{SIGHUP, SIGUSR1, SIGUSR2};

use super::cert_watch::CertWatch;
use super::signals;
use super::state::Coordinator;
use crate::bus::{Driver, HealthEvent, ToCoordinator, ToShard};

/// How long shards may take to bind and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

impl Coordinator {
    /// Waits for a `Ready` from every shard, answering admin calls meanwhile (not ready yet).
    pub fn wait_ready(&mut self) -> Result<(), i32> {
        let deadline = after(START_TIMEOUT);
        while !self.shards.iter().all(|s| s.ready) {
            select! {
                recv(self.reports) -> msg => match msg {
                    Ok(ToCoordinator::Ready { id, driver, core }) => {
                        let shown = core.map_or("none".to_string(), |c| c.to_string());
                        match driver {
                            Driver::IoUring(setup) => {
                                eprintln!("shard {id}: core {shown}, driver io_uring ({setup})")
                            }
                            Driver::Epoll => eprintln!("shard {id}: core {shown}, driver epoll"),
                        }
                        let s = &mut self.shards[id];
                        (s.ready, s.driver, s.core) = (true, Some(driver), core);
                    }
                    Ok(ToCoordinator::Failed { id, error }) => {
                        eprintln!("error: shard {id}: {error}");
                        return Err(1);
                    }
                    Ok(other) => self.report(other),
                    Err(_) => {
                        eprintln!("error: shards exited during start-up");
                        return Err(1);
                    }
                },
                recv(self.calls) -> call => self.call(call),
                recv(self.signals) -> sig => {
                    eprintln!("{} during start-up: exiting", signals::name(sig.unwrap_or(libc::SIGTERM)));
                    return Err(1);
                }
                recv(deadline) -> _ => {
                    let ready = self.shards.iter().filter(|s| s.ready).count();
                    eprintln!("error: {ready} of {} shards ready after {START_TIMEOUT:?}", self.links.len());
                    return Err(1);
                }
            }
        }
        self.phase.started();
        Ok(())
    }

    /// Runs until the process should exit; returns the exit code.
    pub fn run(mut self) -> i32 {
        self.cert_watch = CertWatch::new(&self.config);
        self.set_timers();
        let code = loop {
            if let Some(code) = self.phase.exit_code() {
                break code;
            }
            let state_due = self.state_log.timer();
            let (give_up, progress) = self.phase.timers();
            select! {
                recv(self.signals) -> sig => match sig {
                    Ok(sig) => self.signal(sig),
                    // The signal thread is gone (it never ends on its own): stop selecting on it.
                    Err(_) => self.signals = never(),
                },
                recv(self.reports) -> msg => match msg {
                    Ok(m) => self.report(m),
                    Err(_) => {
                        eprintln!("drained");
                        self.phase.exit(0);
                    }
                },
                recv(self.calls) -> call => self.call(call),
                recv(progress) -> _ => self.print_progress(),
                recv(give_up) -> _ => {
                    let conns: usize = self.shards.iter().map(|s| s.connections).sum();
                    eprintln!("drain deadline passed: {conns} connections left");
                    self.phase.exit(1);
                }
                recv(state_due) -> _ => write_lines(self.state_log.flush(Instant::now(), false)),
                recv(self.tickets.due) -> _ => self.tickets.rotate(&self.links),
                recv(self.cert_tick) -> _ => self.watch_certificates(),
                recv(self.discovery.answers) -> a => match a {
                    Ok(a) => self.discovered(a),
                    Err(_) => self.discovery.answers = never(),
                },
                recv(self.limits.news) -> news => match news {
                    Ok(n) => self.global_limits(n),
                    Err(_) => self.limits.news = never(),
                },
                recv(self.upgrades.events) -> event => match event {
                    Ok(e) => self.upgrade_event(e),
                    Err(_) => self.upgrades.events = never(),
                },
            }
        };
        write_lines(self.state_log.flush(Instant::now(), true));
        self.finish_admin();
        if let Some(log) = self.log.take() {
            log.stop();
        }
        code
    }

    fn signal(&mut self, sig: i32) {
        match sig {
            SIGHUP => {
                if let Err(e) = self.reload_noted() {
                    eprintln!("reload failed, still serving the previous config: {e}");
                }
            }
            SIGUSR1 => {
                if let Some(log) = &self.log {
                    log.reopen();
                }
            }
            SIGUSR2 => self.relaunch(),
            _ if self.phase.is_draining() => {
                eprintln!("{} during drain: exiting now", signals::name(sig));
                self.phase.exit(1);
            }
            _ => self.start_drain(signals::name(sig)),
        }
    }

    /// Tells every shard to drain (once; later asks do nothing).
    pub(super) fn start_drain(&mut self, why: &str) {
        let deadline = self.config.timeouts.drain;
        if !self.phase.drain(deadline) {
            return;
        }
        eprintln!("{why}: draining (deadline {deadline:?})");
        // Nothing is handed over from now on, and no copy keeps a socket open past the shards'.
        self.upgrades.offers.clear();
        // After a hand-over the service goes on in the new process: only a real stop says so.
        if !self.upgrades.handed_over {
            let _ = crate::sys::notify_systemd("STOPPING=1");
        }
        for link in &self.links {
            link.send(ToShard::Drain);
        }
    }

    /// One report from a shard that no one is waiting for in particular.
    pub(super) fn report(&mut self, msg: ToCoordinator) {
        match msg {
            ToCoordinator::Failed { id, error } => {
                eprintln!("error: shard {id}: {error}");
                self.phase.exit(1);
            }
            ToCoordinator::Health(news) => {
                write_lines(self.state_log.note(&news, Instant::now()));
                if news.event == HealthEvent::HalfOpened {
                    return;
                }
                for (id, link) in self.links.iter().enumerate() {
                    if id != news.from {
                        link.send(ToShard::Health(news.clone()));
                    }
                }
            }
            ToCoordinator::Progress {
                id,
                connections,
                requests,
                tunnels,
            } => {
                self.shards[id].connections = connections;
                self.shards[id].requests = requests;
                self.shards[id].tunnels = tunnels;
            }
            ToCoordinator::Drained { id } => {
                let s = &mut self.shards[id];
                (s.drained, s.connections, s.requests, s.tunnels) = (true, 0, 0, 0);
                if self.shards.iter().all(|s| s.drained) {
                    eprintln!("drained");
                    self.phase.exit(0);
                }
            }
            ToCoordinator::Admitted(batch) => self.limits.admitted(batch),
            ToCoordinator::Stats { .. }
            | ToCoordinator::Ready { .. }
            | ToCoordinator::ConfigApplied { .. } => {}
        }
    }

    /// The limits thread's news: its table goes to every shard, its error counts to `/metrics`.
    fn global_limits(&mut self, news: crate::external::limits::News) {
        self.limits.note(&news);
        for link in &self.links {
            link.send(ToShard::GlobalDenials(news.denials.clone()));
        }
    }

    fn print_progress(&self) {
        let parts: Vec<String> = self
            .shards
            .iter()
            .enumerate()
            .map(|(id, s)| {
                format!(
                    "shard {id}: {} connections, {} requests, {} tunnels",
                    s.connections, s.requests, s.tunnels
                )
            })
            .collect();
        eprintln!("draining: {}", parts.join("; "));
    }
}

/// Writes state-change lines to stderr.
fn write_lines(lines: Vec<String>) {
    for line in lines {
        eprintln!("{line}");
    }
}
