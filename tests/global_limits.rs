//! Cluster-wide rate limits (`scope = "global"`) against a real `redis-server` the tests start:
//! first the GCRA script alone (`shardgate::external::limits::gcra`: counts from two
//! connections add up on the server's clock, a paused Redis fails within the timeout), then
//! fleets of two and three shardgate processes (two shards each) on one Redis, loaded from one
//! client address (127.0.0.2) through every instance: the fleet holds the global allowance
//! within the documented overshoot while each 429 carries `Retry-After`; with Redis paused
//! (SIGSTOP) `on_error = "allow"` serves under the local limits and counts
//! `shardgate_global_limit_errors_total`, `on_error = "deny"` answers 429; resumed (SIGCONT),
//! the global limit holds again; a reload pointing a route at another Redis is followed; a
//! `header:x-api-key` key is limited together across two instances while another key has its
//! own allowance.
//!
//! The load tests print what they measured (run with `--nocapture`).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use shardgate::external::limits::gcra::{charge, connect, Gcra};
use support::policy::try_connect_from;
use support::redis_server::RedisServer;
use support::sys::signal;
use support::*;

const TIMEOUT: Duration = Duration::from_millis(300);

/// The fleet's limit: 50/s with a burst of 10, synced every 100 ms.
const RATE: f64 = 50.0;
const BURST: f64 = 10.0;
const SHARDS: f64 = 2.0;
const SYNC: f64 = 0.1;
/// The client every test's load comes from (one key for the whole fleet).
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The load tests run one at a time (two shared cores).
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

// === the script alone ===

#[test]
fn batches_from_two_hosts_add_up_in_redis() {
    let redis = RedisServer::start();
    let mut a = connect(&redis.url(), TIMEOUT).unwrap();
    let mut b = connect(&redis.url(), TIMEOUT).unwrap();
    // 10/s with a burst of 5: 6 fit at once (the burst and the one the rate allows now).
    let limit = Gcra::new(10.0, 5);
    let over = charge(
        &mut a,
        limit,
        &[("route0:10.0.0.1", 3), ("route0:10.0.0.2", 1)],
    )
    .unwrap();
    assert_eq!(over, [Duration::ZERO, Duration::ZERO]);
    // The other host's 3 for the same key still fit; its next 10 do not: about 1 s over.
    let over = charge(&mut b, limit, &[("route0:10.0.0.1", 3)]).unwrap();
    assert_eq!(over, [Duration::ZERO]);
    let over = charge(&mut b, limit, &[("route0:10.0.0.1", 10)]).unwrap();
    assert!(
        over[0] > Duration::from_millis(300) && over[0] <= Duration::from_millis(1000),
        "{over:?}"
    );
    // Host a sees the same key over its allowance; the other key is not.
    let over = charge(
        &mut a,
        limit,
        &[("route0:10.0.0.1", 1), ("route0:10.0.0.2", 1)],
    )
    .unwrap();
    assert!(over[0] > Duration::from_millis(300), "{over:?}");
    assert_eq!(over[1], Duration::ZERO);
    assert!(charge(&mut a, limit, &[]).unwrap().is_empty());
}

#[test]
fn a_paused_redis_fails_within_the_timeout_and_works_again_after() {
    let redis = RedisServer::start();
    let mut conn = connect(&redis.url(), TIMEOUT).unwrap();
    let limit = Gcra::new(100.0, 10);
    assert!(charge(&mut conn, limit, &[("k", 1)]).is_ok());
    signal(redis.pid(), libc::SIGSTOP);
    let t = Instant::now();
    let res = charge(&mut conn, limit, &[("k", 1)]);
    let took = t.elapsed();
    assert!(res.is_err(), "{res:?}");
    assert!(took < TIMEOUT * 4, "took {took:?}");
    // A new connection cannot be checked either (connect succeeds on the kernel's backlog; the
    // script's answer times out).
    let res = connect(&redis.url(), TIMEOUT).and_then(|mut c| charge(&mut c, limit, &[("k", 1)]));
    assert!(res.is_err(), "{res:?}");
    signal(redis.pid(), libc::SIGCONT);
    // Resumed: a fresh connection charges again (poll with a deadline).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res =
            connect(&redis.url(), TIMEOUT).and_then(|mut c| charge(&mut c, limit, &[("k", 1)]));
        if res.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redis did not come back: {res:?}"
        );
    }
}

// === fleets ===

/// A config with one route `api` under a global limit on `redis`, keyed by client address.
fn config(redis: &str, upstream: SocketAddr, on_error: &str) -> String {
    keyed_config(redis, upstream, on_error, "client-ip")
}

/// A config with one route `api` under a global limit on `redis`, keyed by `key`.
fn keyed_config(redis: &str, upstream: SocketAddr, on_error: &str, key: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n[shards]\ncount = 2\n\n[[clusters]]\nname = \"up\"\n\
         endpoints = [\"{upstream}\"]\n\n[[routes]]\nname = \"api\"\ncluster = \"up\"\n\
         rate_limit = {{ rate = \"{RATE}/s\", burst = {BURST}, key = \"{key}\", \
         scope = \"global\", redis = \"{redis}\", sync = \"100ms\", on_error = \"{on_error}\" }}\n"
    )
}

/// `n` shardgates with two shards each under `config`, with their files.
fn fleet(n: usize, text: &str) -> (Vec<Proxy>, Vec<TempFile>) {
    let mut proxies = Vec::new();
    let mut files = Vec::new();
    for i in 0..n {
        let file = temp_file(&format!("global{i}"), text);
        proxies.push(Proxy::start(&["--config", file.path()]));
        files.push(file);
    }
    (proxies, files)
}

/// What a load loop got.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: usize,
    limited: usize,
    /// 429s without a `Retry-After` of at least one second.
    limited_without_retry: usize,
    /// Anything else: other statuses, failed connections or reads.
    failed: usize,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.ok += o.ok;
        self.limited += o.limited;
        self.limited_without_retry += o.limited_without_retry;
        self.failed += o.failed;
    }
}

/// Requests per connection before a load thread opens the next (new connections land on
/// either shard).
const PER_CONN: usize = 20;
/// The most requests one load thread sends.
const MAX_PER_THREAD: usize = 50_000;

/// For `run`, sends GETs from `CLIENT` as fast as answered through every proxy (`threads` each),
/// or one every `pace` per proxy when set; returns the tally.
fn load(proxies: &[&Proxy], threads: usize, run: Duration, pace: Option<Duration>) -> Tally {
    let deadline = Instant::now() + run;
    let addrs: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
    thread::scope(|s| {
        let req = request("GET", "/api", &[], b"");
        let handles: Vec<_> = (addrs.iter())
            .flat_map(|a| (0..threads).map(move |_| *a))
            .map(|addr| {
                let req = req.clone();
                s.spawn(move || load_one(addr, CLIENT, &req, deadline, pace))
            })
            .collect();
        let mut t = Tally::default();
        for h in handles {
            t.add(h.join().unwrap());
        }
        t
    })
}

/// Sends `req` from `src` to `addr` until `deadline` (see `load`).
fn load_one(
    addr: SocketAddr,
    src: IpAddr,
    req: &[u8],
    deadline: Instant,
    pace: Option<Duration>,
) -> Tally {
    let mut t = Tally::default();
    let mut sent = 0;
    while Instant::now() < deadline && sent < MAX_PER_THREAD {
        let Ok(mut c) = try_connect_from(src, addr) else {
            t.failed += 1;
            continue;
        };
        for _ in 0..PER_CONN {
            if Instant::now() >= deadline {
                break;
            }
            sent += 1;
            if c.send(req).is_err() {
                t.failed += 1;
                break;
            }
            match c.read_response() {
                Ok(r) if r.status == 200 => t.ok += 1,
                Ok(r) if r.status == 429 => {
                    t.limited += 1;
                    let retry: u64 = r
                        .header("retry-after")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if retry < 1 {
                        t.limited_without_retry += 1;
                    }
                    if r.head.has_token("connection", "close") {
                        break;
                    }
                }
                _ => {
                    t.failed += 1;
                    break;
                }
            }
            if let Some(p) = pace {
                thread::sleep(p);
            }
        }
    }
    t
}

/// The most a fleet of `hosts` may admit in `secs` under the global limit: the allowance
/// (rate × time + burst) and the documented overshoot, hosts × shards × what one shard admits
/// in one sync period and the one after it (its bucket's burst share and its rate share over
/// two periods, the report's and the verdict's way back).
fn global_bound(hosts: f64, secs: f64) -> f64 {
    let one_shard = BURST / SHARDS + RATE / SHARDS * 2.0 * SYNC;
    RATE * secs + BURST + hosts * SHARDS * one_shard
}

/// What `hosts` admit under their local limits alone.
fn local_allowance(hosts: f64, secs: f64) -> f64 {
    hosts * (RATE * secs + BURST)
}

fn metric(p: &Proxy) -> f64 {
    scrape(p).one("shardgate_global_limit_errors_total", &[("route", "api")])
}

#[test]
fn three_instances_hold_the_global_allowance_with_retry_after() {
    let _g = heavy();
    let redis = RedisServer::start();
    let up = Upstream::fixed("ok");
    let (proxies, _files) = fleet(3, &config(&redis.url(), up.addr, "allow"));
    let all: Vec<&Proxy> = proxies.iter().collect();
    let secs = 3.0;
    let t = load(&all, 2, Duration::from_secs_f64(secs), None);
    let (bound, local) = (global_bound(3.0, secs), local_allowance(3.0, secs));
    println!(
        "3 instances x 2 shards, {RATE}/s burst {BURST}, sync 100ms, {secs} s: admitted {} \
         (allowance {}, overshoot {}), limited {}, bound {bound}, local alone {local}",
        t.ok,
        RATE * secs + BURST,
        t.ok as f64 - (RATE * secs + BURST),
        t.limited
    );
    assert_eq!(t.failed, 0, "{t:?}");
    assert_eq!(
        t.limited_without_retry, 0,
        "every 429 has Retry-After >= 1: {t:?}"
    );
    assert!(t.limited > 0, "{t:?}");
    assert!(
        (t.ok as f64) <= bound,
        "admitted {} > bound {bound}: {t:?}",
        t.ok
    );
    assert!(
        (t.ok as f64) < local * 0.6,
        "admitted {} is not clearly less than the local allowance {local}",
        t.ok
    );
    // The fleet is not over-strict either: it admits most of the allowance.
    assert!((t.ok as f64) >= 0.8 * RATE * secs, "{t:?}");
    // Redis answered every sync.
    for p in &proxies {
        assert_eq!(metric(p), 0.0);
    }
}

#[test]
fn a_header_key_is_limited_across_instances_and_each_key_has_its_own_allowance() {
    let _g = heavy();
    let redis = RedisServer::start();
    let up = Upstream::fixed("ok");
    let text = keyed_config(&redis.url(), up.addr, "allow", "header:x-api-key");
    let (proxies, _files) = fleet(2, &text);
    let secs = 3.0;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    // Each key through both instances, from a different client address on each (the key, not
    // the address, is what is limited): key-1 from 127.0.0.3 and .4, key-2 from .5 and .6.
    let keys = ["key-1", "key-2"];
    let tallies: Vec<Tally> = thread::scope(|s| {
        let handles: Vec<_> = (keys.iter().enumerate())
            .map(|(k, key)| {
                let ps: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
                s.spawn(move || {
                    let header = format!("x-api-key: {key}");
                    let req = request("GET", "/api", &[&header], b"");
                    thread::scope(|s| {
                        let hs: Vec<_> = (ps.iter().enumerate())
                            .map(|(i, addr)| {
                                let src =
                                    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3 + 2 * k as u8 + i as u8));
                                let req = &req;
                                s.spawn(move || load_one(*addr, src, req, deadline, None))
                            })
                            .collect();
                        let mut t = Tally::default();
                        for h in hs {
                            t.add(h.join().unwrap());
                        }
                        t
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let bound = global_bound(2.0, secs);
    for (key, t) in keys.iter().zip(&tallies) {
        println!(
            "2 instances x 2 shards, key = header:x-api-key, {key} through both, {RATE}/s burst \
             {BURST}, sync 100ms, {secs} s: admitted {} (allowance {}, overshoot {}), limited {}, \
             bound {bound}",
            t.ok,
            RATE * secs + BURST,
            t.ok as f64 - (RATE * secs + BURST),
            t.limited
        );
        assert_eq!(t.failed, 0, "{key}: {t:?}");
        assert_eq!(t.limited_without_retry, 0, "{key}: {t:?}");
        assert!(t.limited > 0, "{key} was never limited: {t:?}");
        // Limited together across the instances: within the fleet's allowance and overshoot,
        // clearly under what the two local limits alone would admit.
        assert!(
            (t.ok as f64) <= bound,
            "{key}: admitted {} > bound {bound}",
            t.ok
        );
        assert!(
            (t.ok as f64) < local_allowance(2.0, secs) * 0.6,
            "{key}: admitted {} is not clearly less than the local allowance",
            t.ok
        );
        // Its own allowance: the other key's load does not eat into it.
        assert!(
            (t.ok as f64) >= 0.8 * RATE * secs,
            "{key}: admitted only {} of its own allowance {}",
            t.ok,
            RATE * secs + BURST
        );
    }
    for p in &proxies {
        assert_eq!(metric(p), 0.0);
    }
}

#[test]
fn paused_redis_allow_falls_back_to_local_limits_and_counts_errors_then_resumes() {
    let _g = heavy();
    let redis = RedisServer::start();
    let up = Upstream::fixed("ok");
    let (proxies, _files) = fleet(2, &config(&redis.url(), up.addr, "allow"));
    let all: Vec<&Proxy> = proxies.iter().collect();
    let secs = 2.0;
    let t = load(&all, 2, Duration::from_secs_f64(secs), None);
    println!("2 instances, redis up: {t:?}");
    assert!((t.ok as f64) <= global_bound(2.0, secs), "{t:?}");
    assert_eq!(t.failed, 0, "{t:?}");

    signal(redis.pid(), libc::SIGSTOP);
    let t = load(&all, 2, Duration::from_secs_f64(secs), None);
    println!("2 instances, redis paused: {t:?}");
    // The local limits decide: more than the global allowance, at most the local one (their
    // buckets refilled while the fleet was denied: one more burst each).
    assert_eq!(t.failed, 0, "requests keep flowing: {t:?}");
    assert!((t.ok as f64) > global_bound(2.0, secs), "{t:?}");
    assert!(
        (t.ok as f64) <= local_allowance(2.0, secs) + 2.0 * BURST,
        "{t:?}"
    );
    assert!(t.limited > 0, "the local limits still answer 429: {t:?}");
    for p in &proxies {
        let errors = metric(p);
        assert!(
            errors >= 1.0,
            "shardgate_global_limit_errors_total {errors}"
        );
    }

    signal(redis.pid(), libc::SIGCONT);
    for p in &proxies {
        assert!(
            p.stderr
                .wait(Duration::from_secs(10), |l| l.contains("answers again"))
                .is_some(),
            "{:?}",
            p.stderr.all()
        );
    }
    let t = load(&all, 2, Duration::from_secs_f64(secs), None);
    println!("2 instances, redis resumed: {t:?}");
    assert!((t.ok as f64) <= global_bound(2.0, secs), "{t:?}");
    assert_eq!(t.failed, 0, "{t:?}");
    // Down and up were each logged once, not per sync.
    for p in &proxies {
        let lines = p.stderr.all();
        let down = lines
            .iter()
            .filter(|l| l.contains("routes follow their on_error"))
            .count();
        let up = lines.iter().filter(|l| l.contains("answers again")).count();
        assert_eq!((down, up), (1, 1), "{lines:?}");
    }
}

#[test]
fn paused_redis_deny_answers_429_until_it_answers_again() {
    let _g = heavy();
    let redis = RedisServer::start();
    let up = Upstream::fixed("ok");
    let (proxies, _files) = fleet(2, &config(&redis.url(), up.addr, "deny"));
    let all: Vec<&Proxy> = proxies.iter().collect();
    // Well under every limit (10/s per instance): all pass while Redis answers.
    let pace = Some(Duration::from_millis(100));
    let t = load(&all, 1, Duration::from_secs(1), pace);
    assert_eq!((t.limited, t.failed), (0, 0), "{t:?}");
    assert!(t.ok >= 10, "{t:?}");

    signal(redis.pid(), libc::SIGSTOP);
    // The first failed sync (a timeout) turns the route to 429 on both instances.
    for p in &proxies {
        poll_status(p, 429, Duration::from_secs(5));
    }
    let t = load(&all, 1, Duration::from_secs(1), pace);
    assert_eq!(t.ok, 0, "strict quota while Redis is paused: {t:?}");
    assert!(t.limited >= 10 && t.limited_without_retry == 0, "{t:?}");

    signal(redis.pid(), libc::SIGCONT);
    for p in &proxies {
        poll_status(p, 200, Duration::from_secs(10));
    }
    let t = load(&all, 1, Duration::from_secs(1), pace);
    assert_eq!((t.limited, t.failed), (0, 0), "{t:?}");
}

/// Sends one request every 50 ms from `CLIENT` until the answer is `status`.
fn poll_status(p: &Proxy, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let r = support::policy::fetch_from(CLIENT, p.addr, &request("GET", "/api", &[], b""));
        if r.as_ref().is_ok_and(|r| r.status == status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {status} within {within:?}: {:?}\n{:?}",
            r.map(|r| r.status),
            p.stderr.all()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reload_moving_the_route_to_another_redis_is_followed() {
    let _g = heavy();
    let redis = RedisServer::start();
    let up = Upstream::fixed("ok");
    // Nothing listens where the route points first: with on_error = deny it answers 429.
    let dead = format!("redis://{}", refused_addr());
    let (proxies, files) = fleet(1, &config(&dead, up.addr, "deny"));
    let p = &proxies[0];
    poll_status(p, 429, Duration::from_secs(5));
    // The same route on a live Redis: the limits thread follows the reload.
    std::fs::write(&files[0].0, config(&redis.url(), up.addr, "deny")).unwrap();
    signal(p.pid(), libc::SIGHUP);
    assert!(p
        .stderr
        .wait(Duration::from_secs(5), |l| l.starts_with("reloaded"))
        .is_some());
    poll_status(p, 200, Duration::from_secs(5));
}
