//! Config versions: a reload (SIGHUP or `POST /reload`) reads and validates the file again, keeps
//! what a running process cannot change, opens and closes listeners (`relisten`), and broadcasts
//! the new version, waiting (bounded) until every shard serves with it; endpoints DNS discovery
//! found or re-resolved are broadcast the same way, and so are certificates read again alone
//! (when a watched TLS file changed, `cert_watch`, or on SIGHUP without a config file). The admin
//! token file is read again at every reload, with or without a config file, and its token put in
//! force for the admin thread. Coordinator thread only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{after, never, select, tick};

use super::state::Coordinator;
use crate::bus::{ToCoordinator, ToShard};
use crate::config::{self, Config};

/// How long a config broadcast waits for every shard to apply it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(2);

impl Coordinator {
    /// `reload`, with its outcome noted for `/stats.json`.
    pub(super) fn reload_noted(&mut self) -> Result<(), String> {
        let result = self.reload();
        self.status.note_reload(&result);
        result
    }

    /// Reads, validates and broadcasts the config file; the old config serves on when it fails.
    pub(super) fn reload(&mut self) -> Result<(), String> {
        if self.config.source.is_none() {
            return self.reload_files();
        }
        let mut next = (self.reload)()?;
        // What a running process cannot change: it keeps the values it started with.
        let cur = &self.config;
        for (changed, what) in [
            (next.shards != cur.shards, "[shards]"),
            (next.steer_client_ip != cur.steer_client_ip, "steer"),
            (next.admin != cur.admin, "admin"),
            (next.access_log != cur.access_log, "access_log"),
            (next.upgrade_socket != cur.upgrade_socket, "upgrade_socket"),
        ] {
            if changed {
                eprintln!("reload: {what} needs a restart; the running value is kept");
            }
        }
        next.shards = cur.shards.clone();
        next.steer_client_ip = cur.steer_client_ip;
        next.admin = cur.admin;
        next.access_log = cur.access_log.clone();
        next.upgrade_socket = cur.upgrade_socket.clone();
        next.listeners = self.relisten(&next)?;
        // Clusters whose DNS names did not change keep the endpoints found for them.
        let next = self.discovery.sets.apply(&next).unwrap_or(next);
        let line = format!(
            "reloaded {}: {} routes, {} clusters",
            next.source.as_deref().unwrap_or("config"),
            next.routes.len(),
            next.clusters.len()
        );
        let token_before = self.config.admin_token.is_some();
        self.broadcast_config(Arc::new(next));
        self.discovery.refollow(&self.config);
        eprintln!("{line}");
        self.note_admin_token(token_before);
        Ok(())
    }

    /// A reload without a config file (flags only): what can change on disk is the certificates
    /// and the admin token file. The token is read first, and put in force only once the
    /// certificates (if any) loaded: a reload that fails changes nothing.
    fn reload_files(&mut self) -> Result<(), String> {
        let tls = self.config.listeners.iter().any(|l| l.tls.is_some());
        if !tls && self.config.admin_token_file.is_none() {
            return Err("no config file was given (--config): nothing to reload".into());
        }
        let token_before = self.config.admin_token.is_some();
        let mut next = (*self.config).clone();
        config::check_admin_token(&mut next).map_err(|e| e.to_string())?;
        if tls {
            let changed = self.reload_certificates()?;
            if changed.is_empty() {
                eprintln!("reloaded certificates: unchanged");
            }
        }
        if next.admin_token != self.config.admin_token {
            let mut with_token = (*self.config).clone();
            with_token.admin_token = next.admin_token;
            self.broadcast_config(Arc::new(with_token));
        }
        self.note_admin_token(token_before);
        Ok(())
    }

    /// After a reload: says whether the admin token file gave a new token (never the token), and
    /// warns when the reload left a reachable admin listener without the token it had.
    fn note_admin_token(&mut self, token_before: bool) {
        if let Some(path) = &self.config.admin_token_file {
            let changed = self.admin_token.get() != self.config.admin_token;
            let what = if changed { "changed" } else { "unchanged" };
            eprintln!("admin token read again from {}: {what}", path.display());
        }
        self.admin_token.set(self.config.admin_token.clone());
        if token_before {
            if let Some(warning) = config::admin_exposure_warning(&self.config) {
                eprintln!("reload: {warning}");
            }
        }
    }

    /// The timers of the current config (TLS file watch, session-ticket rotation), restarted
    /// when their interval changed, and the names the discovery thread looks up.
    pub(super) fn set_timers(&mut self) {
        let watched = self.config.listeners.iter().any(|l| l.tls.is_some());
        let every = Some(self.config.tls_watch_interval).filter(|d| watched && !d.is_zero());
        if every != self.cert_every {
            self.cert_every = every;
            self.cert_tick = every.map_or(never(), tick);
        }
        self.tickets.time(self.config.tls_ticket_rotation);
        self.discovery.follow(&self.config);
        self.limits.follow(&self.config);
    }

    /// An answer of the discovery thread: a changed endpoint set (or a plain hostname's new
    /// address) becomes a config version.
    pub(super) fn discovered(&mut self, a: crate::external::discovery::Answer) {
        if let Some(next) = self.discovery.answer(a, &self.config) {
            self.broadcast_config(Arc::new(next));
        }
    }

    /// Sends a config version to every shard and waits (bounded) until each serves with it, so a
    /// reload that was reported done is what the next request sees.
    pub(super) fn broadcast_config(&mut self, config: Arc<Config>) {
        for link in &self.links {
            link.send(ToShard::Config(config.clone()));
        }
        self.config = config;
        self.set_timers();
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

    /// The watch's timer fired: reloads the certificates when the files changed and held still.
    pub(super) fn watch_certificates(&mut self) {
        if self.phase.is_draining() || !self.cert_watch.tick(&self.config) {
            return;
        }
        if let Err(e) = self.reload_certificates() {
            eprintln!("certificate reload failed, still serving the previous certificates: {e}");
        }
    }

    /// Reads every TLS listener's files again for the running config and, when any listener's
    /// material changed, broadcasts a config version with it (shards rebuild those acceptors
    /// alone; open connections keep the certificate they were made with). Returns the listeners
    /// that changed; on an error (`FILE: message`, located) nothing changed.
    pub(super) fn reload_certificates(&mut self) -> Result<Vec<SocketAddr>, String> {
        let mut next = (*self.config).clone();
        config::check_tls(&mut next).map_err(|e| e.to_string())?;
        let changed: Vec<SocketAddr> = (next.listeners.iter())
            .zip(&self.config.listeners)
            .filter(|(n, o)| n.tls != o.tls)
            .map(|(n, _)| n.addr)
            .collect();
        if changed.is_empty() {
            return Ok(changed);
        }
        self.broadcast_config(Arc::new(next));
        let shown: Vec<String> = changed.iter().map(|a| a.to_string()).collect();
        eprintln!("certificates reloaded for {}", shown.join(", "));
        Ok(changed)
    }
}
