//! A shard's side of `scope = "global"` rate limits: what it admitted on global routes since its
//! last report (`Admitted`), the limits thread's "deny until T" table (`DenyUntil`) and the routes
//! whose Redis cannot be checked under `on_error = "deny"`; carried from one routing table to the
//! next. The task `report_admitted` sends the counts once per `sync` (one bus message per period,
//! none when nothing was admitted). Shard thread only.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shard;
use crate::bus::{AdmittedBatch, GlobalDenials, ToCoordinator};
use crate::config::Config;
use crate::policy::ratelimit::{Admitted, DenyUntil};

/// The `Retry-After` of a route that cannot be checked (`on_error = "deny"`, Redis down).
pub const UNCHECKED_RETRY: Duration = Duration::from_secs(1);
/// The shortest period the report task keeps (a `sync` below it is served at it).
const MIN_PERIOD: Duration = Duration::from_millis(10);
/// How often the task looks again when no route is global.
const IDLE_PERIOD: Duration = Duration::from_millis(250);

/// One shard's global-limit state.
#[derive(Debug, Default)]
pub struct GlobalShard {
    admitted: RefCell<Admitted>,
    deny: RefCell<DenyUntil>,
    /// Routes answering 429 for every key until their Redis answers again.
    unchecked: RefCell<Vec<u32>>,
}

impl GlobalShard {
    /// How long `key` of `route` stays refused by the fleet-wide verdict (the `Retry-After`), or
    /// `None` when the local limit decides.
    #[inline]
    pub fn denied(&self, route: u32, key: u128, now: Instant) -> Option<Duration> {
        if self.unchecked.borrow().contains(&route) {
            return Some(UNCHECKED_RETRY);
        }
        let deny = self.deny.borrow();
        if deny.is_empty() {
            return None;
        }
        deny.retry_after(route, key, now)
    }

    /// Counts one request the local limit admitted on a global route.
    #[inline]
    pub fn record(&self, route: u32, key: u128) {
        self.admitted.borrow_mut().record(route, key);
    }

    /// Takes the limits thread's new verdict (replacing the previous one whole).
    pub fn apply(&self, d: &GlobalDenials, now: Instant) {
        self.deny.borrow_mut().replace(d.until.iter().copied(), now);
        let mut unchecked = self.unchecked.borrow_mut();
        unchecked.clear();
        unchecked.extend_from_slice(&d.unchecked);
    }

    /// The counts since the last batch, indexed by `config`'s routes; `None` when none.
    pub fn take_batch(&self, config: &Arc<Config>) -> Option<AdmittedBatch> {
        let mut admitted = self.admitted.borrow_mut();
        if admitted.is_empty() {
            return None;
        }
        let mut counts = Vec::with_capacity(admitted.len());
        admitted.drain_into(&mut counts);
        Some(AdmittedBatch {
            config: config.clone(),
            counts,
        })
    }
}

/// How often a shard reports under `c`: the shortest `sync` of its global routes (at least
/// `MIN_PERIOD`), `None` when no route is global.
pub fn period(c: &Config) -> Option<Duration> {
    (c.routes.iter())
        .filter_map(|r| r.rate_limit.as_ref()?.global.as_ref())
        .map(|g| g.sync.max(MIN_PERIOD))
        .min()
}

/// Sends what this shard admitted on global routes once per period, for as long as the shard
/// runs (the runtime ends with the shard).
pub async fn report_admitted(shard: Rc<Shard>) {
    loop {
        let table = shard.table();
        let every = period(&table.config);
        drop(table);
        monoio::time::sleep(every.unwrap_or(IDLE_PERIOD)).await;
        shard.report_admitted();
    }
}

impl Shard {
    /// Sends the current table's admitted counts, if any (also before a config switch, so the
    /// counts always go with the route indices they were taken under).
    pub fn report_admitted(&self) {
        let table = self.table();
        if let Some(batch) = table.global.take_batch(&table.config) {
            let _ = self.reports.send(ToCoordinator::Admitted(batch));
        }
    }

    /// Takes the limits thread's verdict.
    pub fn apply_global_denials(&self, d: &GlobalDenials) {
        self.table().global.apply(d, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchecked_routes_and_deny_entries_refuse_and_counts_drain_once() {
        let g = GlobalShard::default();
        let now = Instant::now();
        assert_eq!(g.denied(0, 7, now), None);
        let d = GlobalDenials {
            until: vec![((0, 7), now + Duration::from_millis(1500))],
            unchecked: vec![2],
        };
        g.apply(&d, now);
        assert_eq!(g.denied(0, 7, now), Some(Duration::from_millis(1500)));
        assert_eq!(g.denied(0, 8, now), None);
        assert_eq!(g.denied(2, 8, now), Some(UNCHECKED_RETRY));
        g.apply(&GlobalDenials::default(), now);
        assert_eq!(g.denied(2, 8, now), None, "replaced whole");

        let text = "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n";
        let config = Arc::new(crate::config::parse("t.toml", text).unwrap());
        assert!(
            g.take_batch(&config).is_none(),
            "nothing admitted: no batch"
        );
        g.record(0, 7);
        g.record(0, 7);
        let b = g.take_batch(&config).unwrap();
        assert_eq!(b.counts, [((0, 7), 2)]);
        assert!(g.take_batch(&config).is_none());
    }

    #[test]
    fn the_period_is_the_shortest_sync_of_a_global_route() {
        let route = |rl: &str| {
            format!("[[routes]]\ncluster = \"a\"\nrate_limit = {{ rate = \"5/s\"{rl} }}\n")
        };
        let g = |sync: &str| {
            route(&format!(
                ", scope = \"global\", redis = \"redis://h\", sync = \"{sync}\""
            ))
        };
        let text = format!("listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:9\"]\n{}{}{}", route(""), g("300ms"), g("1ms"));
        let c = crate::config::parse("t.toml", &text).unwrap();
        assert_eq!(period(&c), Some(MIN_PERIOD));
        let text = format!("listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:9\"]\n{}", route(""));
        assert_eq!(
            period(&crate::config::parse("t.toml", &text).unwrap()),
            None
        );
    }
}
