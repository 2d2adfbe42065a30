//! The coordinator's control loop and state: phase (starting, running, draining), the shards'
//! links and what each reported, signals and admin calls turned into actions (drain, reload, log
//! reopen), health news relayed between shards, statistics gathered for a scrape, and the drain
//! barrier. Coordinator thread only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, never, select, tick, Receiver};
use signal_hook::consts::{SIGHUP, SIGUSR1};

use super::admin::{AdminCall, Ask, Reply};
use super::state_log::StateLog;
use super::{listeners, resolve, signals};
use crate::access_log::Writer;
use crate::bus::{Driver, Handoff, HealthEvent, ShardLink, ToCoordinator, ToShard};
use crate::config::{Config, Listener};
use crate::stats::Snapshot;

/// Reads and validates the config again (file, then the same flags); the error names file/line.
pub type Reloader = Box<dyn Fn() -> Result<Config, String> + Send>;

/// How long shards may take to bind and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a config broadcast waits for every shard to apply it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a scrape waits for every shard's snapshot.
const STATS_TIMEOUT: Duration = Duration::from_secs(1);

/// What the coordinator knows of one shard.
#[derive(Clone, Default)]
struct ShardInfo {
    ready: bool,
    driver: Option<Driver>,
    core: Option<usize>,
    connections: usize,
    requests: usize,
    /// Tunnels among `connections` (as of the last drain progress report).
    tunnels: usize,
    drained: bool,
}

pub struct Coordinator {
    config: Arc<Config>,
    links: Vec<ShardLink>,
    reports: Receiver<ToCoordinator>,
    signals: Receiver<i32>,
    calls: Receiver<AdminCall>,
    log: Option<Writer>,
    reload: Reloader,
    shards: Vec<ShardInfo>,
    draining: bool,
    /// Set once a drain starts: the deadline and the once-a-second progress tick.
    give_up: Receiver<Instant>,
    progress: Receiver<Instant>,
    /// Set when the process should exit with this code (after answering the current call).
    exit: Option<i32>,
    /// Re-resolution of endpoint hostnames: the shortest interval of the current config.
    resolve_every: Option<Duration>,
    resolve_tick: Receiver<Instant>,
    /// Endpoint state changes written to stderr, rate-limited per endpoint.
    state_log: StateLog,
}

impl Coordinator {
    pub fn new(
        config: Arc<Config>,
        links: Vec<ShardLink>,
        reports: Receiver<ToCoordinator>,
        signals: Receiver<i32>,
        calls: Receiver<AdminCall>,
        log: Writer,
        reload: Reloader,
    ) -> Coordinator {
        let n = links.len();
        Coordinator {
            config,
            links,
            reports,
            signals,
            calls,
            log: Some(log),
            reload,
            shards: vec![ShardInfo::default(); n],
            draining: false,
            give_up: never(),
            progress: never(),
            exit: None,
            resolve_every: None,
            resolve_tick: never(),
            state_log: StateLog::default(),
        }
    }

    pub fn shard_count(&self) -> usize {
        self.links.len()
    }

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
        Ok(())
    }

    /// Runs until the process should exit; returns the exit code.
    pub fn run(mut self) -> i32 {
        self.resolve_every = resolve::interval(&self.config);
        self.resolve_tick = self.resolve_every.map_or(never(), tick);
        let code = loop {
            if let Some(code) = self.exit {
                break code;
            }
            let state_due = self.state_log.timer();
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
                        self.exit = Some(0);
                    }
                },
                recv(self.calls) -> call => self.call(call),
                recv(self.progress) -> _ => self.print_progress(),
                recv(self.give_up) -> _ => {
                    let conns: usize = self.shards.iter().map(|s| s.connections).sum();
                    eprintln!("drain deadline passed: {conns} connections left");
                    self.exit = Some(1);
                }
                recv(state_due) -> _ => write_lines(self.state_log.flush(Instant::now(), false)),
                recv(self.resolve_tick) -> _ => {
                    if let Some(next) = resolve::refresh(&self.config) {
                        eprintln!("endpoints re-resolved: new addresses sent to shards");
                        self.broadcast_config(Arc::new(next));
                    }
                }
            }
        };
        write_lines(self.state_log.flush(Instant::now(), true));
        if let Some(log) = self.log.take() {
            log.stop();
        }
        code
    }

    fn signal(&mut self, sig: i32) {
        match sig {
            SIGHUP => {
                if let Err(e) = self.reload() {
                    eprintln!("reload failed, still serving the previous config: {e}");
                }
            }
            SIGUSR1 => {
                if let Some(log) = &self.log {
                    log.reopen();
                }
            }
            _ if self.draining => {
                eprintln!("{} during drain: exiting now", signals::name(sig));
                self.exit = Some(1);
            }
            _ => self.start_drain(signals::name(sig)),
        }
    }

    fn start_drain(&mut self, why: &str) {
        if self.draining {
            return;
        }
        eprintln!(
            "{why}: draining (deadline {:?})",
            self.config.timeouts.drain
        );
        let _ = crate::sys::notify_systemd("STOPPING=1");
        self.draining = true;
        self.give_up = after(self.config.timeouts.drain);
        self.progress = tick(Duration::from_secs(1));
        for link in &self.links {
            link.send(ToShard::Drain);
        }
    }

    /// Reads, validates and broadcasts the config file; the old config serves on when it fails.
    fn reload(&mut self) -> Result<(), String> {
        if self.config.source.is_none() {
            return Err("no config file was given (--config): nothing to reload".into());
        }
        let mut next = (self.reload)()?;
        // What a running process cannot change: it keeps the values it started with.
        let cur = &self.config;
        for (changed, what) in [
            (next.shards != cur.shards, "[shards]"),
            (next.steer_client_ip != cur.steer_client_ip, "steer"),
            (next.admin != cur.admin, "admin"),
            (next.access_log != cur.access_log, "access_log"),
        ] {
            if changed {
                eprintln!("reload: {what} needs a restart; the running value is kept");
            }
        }
        next.shards = cur.shards.clone();
        next.steer_client_ip = cur.steer_client_ip;
        next.admin = cur.admin;
        next.access_log = cur.access_log.clone();
        next.listeners = self.relisten(&next)?;
        let line = format!(
            "reloaded {}: {} routes, {} clusters",
            next.source.as_deref().unwrap_or("config"),
            next.routes.len(),
            next.clusters.len()
        );
        self.broadcast_config(Arc::new(next));
        eprintln!("{line}");
        Ok(())
    }

    /// Opens listeners the new config adds and closes those it removes; returns the listeners
    /// now open (a listener whose only change is its PROXY setting keeps the old one). A bind
    /// that fails names the flag or file:line of the address in `next`.
    fn relisten(&mut self, next: &Config) -> Result<Vec<Listener>, String> {
        let wanted = &next.listeners;
        let old = &self.config.listeners;
        let added: Vec<(usize, &Listener)> = wanted
            .iter()
            .enumerate()
            .filter(|(_, w)| !old.iter().any(|o| o.addr == w.addr))
            .collect();
        let addrs: Vec<_> = added.iter().map(|(_, l)| l.addr).collect();
        let n = self.links.len();
        let (bound, sockets) = listeners::open(
            &addrs,
            n,
            self.config.shards.backlog,
            self.config.steer_client_ip,
        )
        .map_err(|(i, msg)| {
            let field = format!("listeners[{}]", added[i].0);
            next.invalid(&field, msg).to_string()
        })?;
        let mut now: Vec<Listener> = Vec::new();
        for o in old {
            match wanted.iter().find(|w| w.addr == o.addr) {
                Some(w) => {
                    if w.proxy_protocol != o.proxy_protocol {
                        eprintln!("reload: proxy_protocol on {} needs a restart", o.addr);
                    }
                    now.push(o.clone());
                }
                None => {
                    for link in &self.links {
                        link.send(ToShard::Unlisten(o.addr));
                    }
                    println!("closed listener {}", o.addr);
                }
            }
        }
        for (id, mine) in sockets.into_iter().enumerate() {
            let with_flags = mine
                .into_iter()
                .zip(added.iter().map(|(_, l)| l.proxy_protocol))
                .collect();
            self.links[id].send(ToShard::Listen(Handoff::new(with_flags)));
        }
        for ((_, l), real) in added.iter().zip(bound) {
            println!("listening on {real}");
            now.push(Listener {
                addr: real,
                proxy_protocol: l.proxy_protocol,
            });
        }
        Ok(now)
    }

    /// Sends a config version to every shard and waits (bounded) until each serves with it, so a
    /// reload that was reported done is what the next request sees.
    fn broadcast_config(&mut self, config: Arc<Config>) {
        for link in &self.links {
            link.send(ToShard::Config(config.clone()));
        }
        self.config = config;
        let every = resolve::interval(&self.config);
        if every != self.resolve_every {
            self.resolve_every = every;
            self.resolve_tick = every.map_or(never(), tick);
        }
        // A drained shard has stopped reading its mailbox.
        let mut applied: Vec<bool> = self.shards.iter().map(|s| s.drained).collect();
        let deadline = after(APPLY_TIMEOUT);
        while applied.iter().any(|a| !a) {
            select! {
                recv(self.reports) -> msg => match msg {
                    Ok(ToCoordinator::ConfigApplied { id }) => applied[id] = true,
                    Ok(other) => self.report(other),
                    Err(_) => return,
                },
                recv(deadline) -> _ => {
                    let late: Vec<usize> = (0..applied.len()).filter(|&i| !applied[i]).collect();
                    eprintln!("config sent; shards {late:?} had not applied it after {APPLY_TIMEOUT:?}");
                    return;
                }
            }
        }
    }

    fn report(&mut self, msg: ToCoordinator) {
        match msg {
            ToCoordinator::Failed { id, error } => {
                eprintln!("error: shard {id}: {error}");
                self.exit = Some(1);
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
                    self.exit = Some(0);
                }
            }
            ToCoordinator::Stats { .. }
            | ToCoordinator::Ready { .. }
            | ToCoordinator::ConfigApplied { .. } => {}
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

    /// Asks every shard for a snapshot and waits (bounded) for the answers.
    fn gather(&mut self) -> Vec<Snapshot> {
        for link in &self.links {
            link.send(ToShard::Stats);
        }
        let mut got: Vec<Option<Snapshot>> = vec![None; self.links.len()];
        let deadline = after(STATS_TIMEOUT);
        while got.iter().any(Option::is_none) {
            select! {
                recv(self.reports) -> msg => match msg {
                    Ok(ToCoordinator::Stats { id, connections, requests, snapshot }) => {
                        self.shards[id].connections = connections;
                        self.shards[id].requests = requests;
                        got[id] = Some(*snapshot);
                    }
                    Ok(other) => self.report(other),
                    Err(_) => break,
                },
                recv(deadline) -> _ => break,
            }
        }
        got.into_iter().flatten().collect()
    }

    /// An admin call, or the admin side gone (off, or its thread ended): stop selecting on it, so
    /// the loop does not spin on a disconnected channel.
    fn call(&mut self, call: Result<AdminCall, crossbeam_channel::RecvError>) {
        match call {
            Ok(call) => self.answer(call),
            Err(_) => self.calls = never(),
        }
    }

    /// Answers one admin call.
    fn answer(&mut self, call: AdminCall) {
        let ready = self.shards.iter().all(|s| s.ready);
        let text = |status, body: &str| Reply::text(status, body);
        let reply = match call.ask {
            Ask::Healthz if self.draining => text(503, "draining\n"),
            Ask::Healthz => text(200, "ok\n"),
            Ask::Readyz if ready && !self.draining => text(200, "ready\n"),
            Ask::Readyz if self.draining => text(503, "draining\n"),
            Ask::Readyz => {
                let n = self.shards.iter().filter(|s| s.ready).count();
                text(503, &format!("{n} of {} shards ready\n", self.shards.len()))
            }
            Ask::Metrics => {
                let snaps = self.gather();
                let mut body = String::with_capacity(16 * 1024);
                crate::stats::render(&snaps, &mut body);
                Reply::metrics(body)
            }
            Ask::Config => Reply {
                status: 200,
                content_type: "application/toml; charset=utf-8",
                body: crate::config::render(&self.config),
            },
            Ask::Shards => {
                if ready {
                    self.gather();
                }
                Reply::json(200, self.shards_json())
            }
            Ask::Drain => {
                self.start_drain("POST /drain");
                text(202, "draining\n")
            }
            Ask::Reload => match self.reload() {
                Ok(()) => text(200, "reloaded\n"),
                Err(e) => {
                    eprintln!("reload failed, still serving the previous config: {e}");
                    text(400, &format!("reload failed: {e}\n"))
                }
            },
        };
        let _ = call.reply.send(reply);
    }

    fn shards_json(&self) -> String {
        let items: Vec<String> = self
            .shards
            .iter()
            .enumerate()
            .map(|(id, s)| {
                format!(
                    "{{\"id\":{id},\"core\":{},\"driver\":{},\"ready\":{},\"connections\":{},\"requests_in_flight\":{},\"draining\":{}}}",
                    s.core.map_or("null".to_string(), |c| c.to_string()),
                    s.driver.map_or("null".to_string(), |d| format!("\"{}\"", d.name())),
                    s.ready,
                    s.connections,
                    s.requests,
                    self.draining
                )
            })
            .collect();
        format!("[{}]\n", items.join(","))
    }
}

/// Writes state-change lines to stderr.
fn write_lines(lines: Vec<String>) {
    for line in lines {
        eprintln!("{line}");
    }
}
