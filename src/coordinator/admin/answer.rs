//! The answers to admin calls (health, readiness, metrics, config, shards, stats, drain, reload)
//! and the `/shards` JSON. The admin thread only asks; the coordinator thread runs this.

use super::{stats_json, AdminCall, Ask, Reply};
use crate::coordinator::state::Coordinator;

impl Coordinator {
    /// An admin call, or the admin side gone (off, or its thread ended): stop selecting on it, so
    /// the loop does not spin on a disconnected channel.
    pub(in crate::coordinator) fn call(
        &mut self,
        call: Result<AdminCall, crossbeam_channel::RecvError>,
    ) {
        match call {
            Ok(call) => self.answer(call),
            Err(_) => self.calls = crossbeam_channel::never(),
        }
    }

    /// At exit: the admin thread stops accepting, and the call it may hold (a connection it
    /// took just before) is answered rather than cut off by the process's exit. Bounded: half a
    /// second at most.
    pub(in crate::coordinator) fn finish_admin(&mut self) {
        if self.config.admin.is_none() {
            return;
        }
        self.upgrades
            .admin_handed_over
            .store(true, std::sync::atomic::Ordering::Release);
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        // The thread ends within its next check of the flag; its sender goes with it.
        while let Ok(call) = self.calls.recv_deadline(deadline) {
            self.answer(call);
        }
    }

    /// Answers one admin call.
    fn answer(&mut self, call: AdminCall) {
        let ready = self.shards.iter().all(|s| s.ready);
        // After a hand-over the service at these addresses goes on in the successor: a call
        // this process accepted just before it stopped accepting is not told it is going away.
        let draining = self.phase.is_draining() && !self.upgrades.handed_over;
        let text = |status, body: &str| Reply::text(status, body);
        let reply = match call.ask {
            Ask::Healthz if draining => text(503, "draining\n"),
            Ask::Healthz => text(200, "ok\n"),
            Ask::Readyz if draining => text(503, "draining\n"),
            Ask::Readyz if ready => {
                let now = std::time::Instant::now();
                let stale = self.discovery.sets.stale(&self.config, now);
                if stale.is_some() != self.discovery.stale_logged {
                    self.discovery.stale_logged = stale.is_some();
                    match &stale {
                        Some(line) => eprintln!("not ready: {line}"),
                        None => eprintln!("discovery: endpoint sets fresh again: ready"),
                    }
                }
                match stale {
                    Some(line) => text(503, &format!("{line}\n")),
                    None => text(200, "ready\n"),
                }
            }
            Ask::Readyz => {
                let n = self.shards.iter().filter(|s| s.ready).count();
                text(503, &format!("{n} of {} shards ready\n", self.shards.len()))
            }
            Ask::Metrics => {
                let snaps = self.gather();
                let mut body = String::with_capacity(16 * 1024);
                crate::stats::render(&snaps, &mut body);
                let certs = crate::coordinator::cert_watch::expiries(&self.config);
                crate::stats::render_certificates(&certs, &mut body);
                let now = std::time::Instant::now();
                let figures = self.discovery.sets.figures(&self.config, now);
                crate::stats::render_discovery(&figures, &mut body);
                let errors = self.limits.errors(&self.config);
                crate::stats::render_global_limits(&errors, &mut body);
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
            Ask::StatsJson => {
                let snapshots = self.gather();
                Reply::json(
                    200,
                    stats_json::render(&stats_json::Inputs {
                        process: &self.status,
                        draining,
                        shards: &self.shards,
                        snapshots: &snapshots,
                    }),
                )
            }
            Ask::Drain => {
                self.start_drain("POST /drain");
                text(202, "draining\n")
            }
            Ask::Reload => match self.reload_noted() {
                Ok(()) => text(200, "reloaded\n"),
                Err(e) => {
                    eprintln!("reload failed, still serving the previous config: {e}");
                    text(400, &format!("reload failed: {e}\n"))
                }
            },
        };
        let _ = call.reply.send(reply);
    }

    /// `/shards`: one object per shard, as of the last report (or the gather just done).
    fn shards_json(&self) -> String {
        let draining = self.phase.is_draining();
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
                    draining
                )
            })
            .collect();
        format!("[{}]\n", items.join(","))
    }
}
