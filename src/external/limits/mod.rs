//! Cluster-wide rate limits (`scope = "global"`, issue #14), the owner's end (the proxy's
//! coordinator, or a library `embed::Client`): the limits thread (`thread`, started when a config
//! first has a global route) owns the Redis connections (`link`, with backoff) and charges the
//! admitted counts with a GCRA script (`gcra`); the coordinator relays the shards' batches to it
//! and its "deny until T" tables to every shard (a client: its own counts and table), and keeps
//! its failed-sync counts for `/metrics`. The owner's thread (this file); the limits thread ends
//! when the `Limits` is dropped.

pub mod gcra;
mod link;
mod thread;

use std::collections::BTreeMap;
use std::sync::Arc;

use crossbeam_channel::{never, Receiver, Sender};

use crate::bus::AdmittedBatch;
use crate::config::Config;
pub use thread::News;
use thread::Order;

/// The limits thread as its owner holds it.
pub struct Limits {
    orders: Option<Sender<Order>>,
    /// The thread's tables and error counts (never, until it starts).
    pub news: Receiver<News>,
    /// The config version last given to the thread.
    given: Option<Arc<Config>>,
    /// Failed syncs per route, as last reported.
    errors: BTreeMap<String, u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            orders: None,
            news: never(),
            given: None,
            errors: BTreeMap::new(),
        }
    }
}

impl Limits {
    /// Whether the thread runs (a config had a global route).
    pub fn running(&self) -> bool {
        self.orders.is_some()
    }

    /// Gives the thread config `c` when it is a new version, starting the thread the first time
    /// a config has a global route.
    pub fn follow(&mut self, c: &Arc<Config>) {
        if self.given.as_ref().is_some_and(|g| Arc::ptr_eq(g, c)) {
            return;
        }
        if self.orders.is_none() {
            if !has_global(c) {
                return;
            }
            let (orders, rx) = crossbeam_channel::unbounded();
            let (tx, news) = crossbeam_channel::unbounded();
            if let Err(e) = thread::spawn(rx, tx) {
                eprintln!(
                    "error: cannot start the limits thread: {e}; global rate limits act as \
                     local ones"
                );
                return;
            }
            (self.orders, self.news) = (Some(orders), news);
        }
        if let Some(o) = &self.orders {
            let _ = o.send(Order::Config(c.clone()));
        }
        self.given = Some(c.clone());
    }

    /// Relays one shard's batch (dropped when no thread runs).
    pub fn admitted(&self, batch: AdmittedBatch) {
        if let Some(o) = &self.orders {
            let _ = o.send(Order::Admitted(batch));
        }
    }

    /// Notes the error counts of the thread's news.
    pub fn note(&mut self, news: &News) {
        self.errors.clone_from(&news.errors);
    }

    /// Failed syncs of every global route of `c` (0 for one that has none yet).
    pub fn errors(&self, c: &Config) -> Vec<(String, u64)> {
        (c.routes.iter())
            .filter(|r| r.rate_limit.as_ref().is_some_and(|l| l.global.is_some()))
            .map(|r| {
                (
                    r.name.clone(),
                    self.errors.get(&r.name).copied().unwrap_or(0),
                )
            })
            .collect()
    }
}

fn has_global(c: &Config) -> bool {
    (c.routes.iter()).any(|r| r.rate_limit.as_ref().is_some_and(|l| l.global.is_some()))
}
