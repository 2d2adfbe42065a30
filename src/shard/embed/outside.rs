//! A library client's side threads, the same the proxy's coordinator owns: DNS discovery
//! (`dns:`/`srv:` endpoints, re-resolved hostnames) and the `scope = "global"` rate limits'
//! Redis syncs (`crate::external`). The client starts each when its config first needs it and
//! stops it when the last clone of the client is dropped (the thread sees its order channel
//! close). The task `run` on the embedding thread never blocks: every `POLL` (or the global
//! limits' `sync`, when shorter) it sends the admitted counts, takes the limits thread's
//! "deny until T" table and applies a changed endpoint set with the carry-over of a reload.
//! Embedding thread (this file); the threads themselves run in `crate::external`.

use std::rc::Weak;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{never, TryRecvError};

use super::Inner;
use crate::config::Config;
use crate::external::discovery::Discovery;
use crate::external::limits::Limits;
use crate::shard::global;
use crate::shard::table::Table;

/// How long `Client::new` waits for the first answer of each DNS name (the proxy waits as long
/// before its shards serve); a name not answered by then is still asked.
const FIRST_ROUND: Duration = Duration::from_secs(5);
/// How often the task looks for answers while a side thread runs.
const POLL: Duration = Duration::from_millis(20);
/// How often the task looks while none runs (a reload may start one).
const IDLE: Duration = Duration::from_millis(250);

/// The client's ends of its side threads (none started while the config needs neither).
#[derive(Default)]
pub struct Outside {
    discovery: Discovery,
    limits: Limits,
    /// When the admitted counts were last sent to the limits thread.
    reported: Option<Instant>,
}

impl Outside {
    /// At start: the discovery thread's first answers for `config` (waiting at most
    /// `FIRST_ROUND` when it has names to look up), and `config` with what they found.
    pub fn first(&mut self, config: Arc<Config>) -> Arc<Config> {
        self.discovery.follow(&config);
        if !config.clusters.iter().any(|c| !c.discover.is_empty()) {
            return config;
        }
        let c = Arc::unwrap_or_clone(config);
        Arc::new(self.discovery.first_round(c, FIRST_ROUND))
    }

    /// A reloaded config with the endpoint sets found for the names it still has.
    pub fn with_found(&self, config: Config) -> Config {
        self.discovery.sets.apply(&config).unwrap_or(config)
    }

    /// Gives both threads the config now served (starting one the config newly needs);
    /// `again` after a reload makes discovery read /etc/resolv.conf again.
    pub fn follow(&mut self, config: &Arc<Config>, again: bool) {
        if again {
            self.discovery.refollow(config);
        } else {
            self.discovery.follow(config);
        }
        self.limits.follow(config);
    }

    /// Sends what `table` admitted on global routes (before a switch, so the counts go with the
    /// route indices they were taken under).
    pub fn report(&mut self, table: &Table) {
        if !self.limits.running() {
            return;
        }
        self.reported = Some(Instant::now());
        if let Some(batch) = table.global.take_batch(&table.config) {
            self.limits.admitted(batch);
        }
    }

    /// How long the task sleeps under `c`.
    fn every(&self, c: &Config) -> Duration {
        if !self.discovery.running() && !self.limits.running() {
            return IDLE;
        }
        global::period(c).map_or(POLL, |p| p.min(POLL))
    }

    /// One look: counts sent when their `sync` is due, the limits thread's tables applied to
    /// `table`, and the first discovery answer that changes the config (the caller installs it;
    /// the next ones wait for the next look, against the config it made).
    fn look(&mut self, table: &Table) -> Option<Config> {
        let due = (global::period(&table.config))
            .is_some_and(|p| self.reported.is_none_or(|t| t.elapsed() >= p));
        if due {
            self.report(table);
        }
        loop {
            match self.limits.news.try_recv() {
                Ok(news) => {
                    self.limits.note(&news);
                    table.global.apply(&news.denials, Instant::now());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.limits.news = never();
                    break;
                }
            }
        }
        loop {
            match self.discovery.answers.try_recv() {
                Ok(a) => {
                    if let Some(next) = self.discovery.answer(a, &table.config) {
                        return Some(next);
                    }
                }
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => {
                    self.discovery.answers = never();
                    return None;
                }
            }
        }
    }

    /// The figures the proxy shows at `/metrics` for these threads, into a client's snapshot.
    pub fn figures(&self, c: &Config, snap: &mut crate::stats::Snapshot) {
        snap.global_limit_errors = self.limits.errors(c).into_iter().collect();
        snap.discovery = self.discovery.sets.figures(c, Instant::now());
    }
}

/// Polls the side threads for as long as the client lives.
pub async fn run(inner: Weak<Inner>) {
    loop {
        let every = match inner.upgrade() {
            Some(i) => i.outside.borrow().every(&i.table().config),
            None => return,
        };
        monoio::time::sleep(every).await;
        let Some(i) = inner.upgrade() else { return };
        // Several answers may each change the config: installed one at a time.
        loop {
            let table = i.table();
            let next = i.outside.borrow_mut().look(&table);
            drop(table);
            match next {
                Some(next) => i.install(Arc::new(next), false),
                None => break,
            }
        }
    }
}
