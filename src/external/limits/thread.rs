//! The limits thread: owns one Redis connection per distinct `redis` URL (`link`), charges each
//! shard's batch of admitted counts with one GCRA script per route in it (`gcra`), and sends the
//! owner the "deny until T" table (Redis answers how long a key is over; T is this host's
//! now plus that, so hosts need no clock sync) and the failed syncs per route, whenever either
//! changed. A down Redis is probed at its backoff so `on_error = "deny"` routes learn it is back.
//! Never touched by a shard or the coordinator's loop (they only send it messages). Own thread,
//! started by its owner (the coordinator, or a library client).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::gcra::Gcra;
use super::link::{Link, LinkError};
use crate::bus::{AdmittedBatch, GlobalDenials};
use crate::config::{Config, OnError};

/// What the owner sends.
pub enum Order {
    /// The config version the shards now serve (route indices of the table refer to it).
    Config(Arc<Config>),
    /// One shard's counts of one `sync` period.
    Admitted(AdmittedBatch),
}

/// What the thread sends back when it changed.
#[derive(Debug)]
pub struct News {
    pub denials: Arc<GlobalDenials>,
    /// Failed syncs so far, per route name.
    pub errors: BTreeMap<String, u64>,
}

/// How long the thread sleeps when no Redis is down.
const IDLE: Duration = Duration::from_secs(1);

/// A global route of the current config.
struct RouteLimit {
    index: u32,
    name: String,
    url: String,
    gcra: Gcra,
    on_error: OnError,
}

#[derive(Default)]
struct State {
    routes: Vec<RouteLimit>,
    links: HashMap<String, Link>,
    /// Per (route name, key): until when it is over the fleet-wide allowance.
    denied: HashMap<(String, u128), Instant>,
    errors: BTreeMap<String, u64>,
    /// A denial was added or extended, or the routes changed, since the last news. (One that
    /// only expired is not news: shards ignore past entries.)
    dirty: bool,
    /// The routes refusing every key and the error counts of the last news.
    sent: Option<(Vec<u32>, BTreeMap<String, u64>)>,
}

/// Starts the thread; it ends when its owner drops its sender.
pub fn spawn(
    orders: Receiver<Order>,
    news: Sender<News>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("limits".into())
        .spawn(move || run(orders, news))
}

fn run(orders: Receiver<Order>, news: Sender<News>) {
    let mut st = State::default();
    loop {
        let due = (st.links.values())
            .filter_map(Link::retry_at)
            .min()
            .unwrap_or_else(|| Instant::now() + IDLE);
        match orders.recv_deadline(due) {
            Ok(Order::Config(c)) => st.configure(&c),
            Ok(Order::Admitted(batch)) => st.charge(&batch),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        for link in st.links.values_mut() {
            link.probe(now);
        }
        if let Some(n) = st.news(Instant::now()) {
            if news.send(n).is_err() {
                return;
            }
        }
    }
}

impl State {
    /// Takes the global routes of `c`; keeps the connections of URLs still used.
    fn configure(&mut self, c: &Config) {
        self.routes = (c.routes.iter().enumerate())
            .filter_map(|(i, r)| {
                let l = r.rate_limit.as_ref()?;
                let g = l.global.as_ref()?;
                Some(RouteLimit {
                    index: i as u32,
                    name: r.name.clone(),
                    url: g.redis.text.clone(),
                    gcra: Gcra::new(l.rate.per_second, burst(l.burst, l.rate.per_second)),
                    on_error: g.on_error,
                })
            })
            .collect();
        let urls: Vec<&String> = self.routes.iter().map(|r| &r.url).collect();
        self.links.retain(|u, _| urls.contains(&u));
        for u in urls {
            self.links.entry(u.clone()).or_insert_with(|| Link::new(u));
        }
        self.denied
            .retain(|(name, _), _| self.routes.iter().any(|r| r.name == *name));
        for r in &self.routes {
            self.errors.entry(r.name.clone()).or_insert(0);
        }
        self.dirty = true;
    }

    /// Charges one batch: one script per route in it, on that route's Redis.
    fn charge(&mut self, batch: &AdmittedBatch) {
        let mut per_route: BTreeMap<&str, Vec<(String, u128, u64)>> = BTreeMap::new();
        for ((route, key), n) in &batch.counts {
            let Some(r) = batch.config.routes.get(*route as usize) else {
                continue;
            };
            per_route.entry(r.name.as_str()).or_default().push((
                redis_key(&r.name, *key),
                *key,
                *n,
            ));
        }
        for (name, counts) in per_route {
            // A route no longer global (or gone) in the current config: nothing to charge.
            let Some(r) = self.routes.iter().find(|r| r.name == name) else {
                continue;
            };
            let Some(link) = self.links.get_mut(&r.url) else {
                continue;
            };
            let keys: Vec<(&str, u64)> = counts.iter().map(|(k, _, n)| (k.as_str(), *n)).collect();
            match link.charge(r.gcra, &keys) {
                Ok(over) => {
                    let now = Instant::now();
                    for ((_, key, _), over) in counts.iter().zip(over) {
                        if over.is_zero() {
                            continue;
                        }
                        let until = now + over;
                        let slot = self.denied.entry((r.name.clone(), *key)).or_insert(now);
                        if until > *slot {
                            *slot = until;
                            self.dirty = true;
                        }
                    }
                }
                // The counts were served under the local limit; they are not charged later
                // (a Redis back after a long outage would otherwise deny everyone at once).
                Err(LinkError::Backoff) | Err(LinkError::Redis(_)) => {
                    *self.errors.entry(r.name.clone()).or_insert(0) += 1;
                }
            }
        }
    }

    /// The table and error counts to send, when they changed since the last ones sent.
    fn news(&mut self, now: Instant) -> Option<News> {
        self.denied.retain(|_, t| *t > now);
        let unchecked: Vec<u32> = (self.routes.iter())
            .filter(|r| r.on_error == OnError::Deny)
            .filter(|r| self.links.get(&r.url).is_some_and(Link::is_down))
            .map(|r| r.index)
            .collect();
        let same = (self.sent.as_ref()).is_some_and(|(u, e)| *u == unchecked && *e == self.errors);
        if !self.dirty && same {
            return None;
        }
        let mut until: Vec<_> = (self.denied.iter())
            .filter_map(|((name, key), t)| {
                let r = self.routes.iter().find(|r| r.name == *name)?;
                Some(((r.index, *key), *t))
            })
            .collect();
        until.sort_unstable_by_key(|e| e.0);
        self.dirty = false;
        self.sent = Some((unchecked.clone(), self.errors.clone()));
        Some(News {
            denials: Arc::new(GlobalDenials { until, unchecked }),
            errors: self.errors.clone(),
        })
    }
}

/// The burst a route's bucket holds: the configured one, or one second's worth of the rate.
fn burst(burst: u32, per_second: f64) -> u32 {
    if burst > 0 {
        burst
    } else {
        (per_second.ceil() as u32).max(1)
    }
}

/// The Redis key of a client key on a route: the same on every host of the fleet.
pub fn redis_key(route: &str, key: u128) -> String {
    format!("shardgate:rl:{route}:{key:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_only_when_a_denial_is_added_or_extended_or_routes_change() {
        let text = "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:9\"]\n\
                    [[routes]]\nname = \"open\"\ncluster = \"a\"\n\
                    [[routes]]\nname = \"api\"\ncluster = \"a\"\nrate_limit = { rate = \"5/s\", scope = \"global\", redis = \"redis://127.0.0.1:1\" }\n";
        let c = crate::config::parse("t.toml", text).unwrap();
        let mut st = State::default();
        st.configure(&c);
        let now = Instant::now();
        let n = st.news(now).expect("the first table");
        assert_eq!(*n.denials, GlobalDenials::default());
        assert_eq!(n.errors.get("api"), Some(&0));
        assert!(st.news(now).is_none(), "nothing changed");
        let until = now + Duration::from_secs(1);
        st.denied.insert(("api".into(), 7), until);
        st.dirty = true;
        let n = st.news(now).unwrap();
        // The route's index in the config (the second route), this host's instant.
        assert_eq!(n.denials.until, [((1, 7), until)]);
        assert!(st.news(now).is_none());
        assert!(st.news(until).is_none(), "an expiry alone is not news");
        assert!(st.denied.is_empty(), "expired entries are dropped");
        *st.errors.get_mut("api").unwrap() += 1;
        assert_eq!(st.news(until).unwrap().errors.get("api"), Some(&1));
    }

    #[test]
    fn keys_name_route_and_client() {
        assert_eq!(
            redis_key("api", 0xff),
            "shardgate:rl:api:000000000000000000000000000000ff"
        );
        assert_eq!(burst(0, 2.5), 3);
        assert_eq!(burst(7, 2.5), 7);
    }
}
