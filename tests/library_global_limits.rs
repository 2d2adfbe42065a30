//! Cluster-wide rate limits (`scope = "global"`) in library mode (`shardgate::embed`, public API
//! only) against a real `redis-server` the tests start: two clients on two threads sharing one
//! global limit are held near the fleet-wide allowance (well under what their local buckets
//! alone admit), and so are a client and a proxy (one shard) read from the same file; with Redis down `on_error = "deny"` gives the rate-limit error and `allow`
//! serves, the failed syncs showing in the client's stats; the limits thread ends when the last
//! clone of its client is dropped. Each client runs on a monoio runtime of its own (io_uring, or
//! epoll with `MONOIO_FORCE_LEGACY_DRIVER=1`).

mod support;

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use shardgate::embed::{Client, Error};
use support::embed::*;
use support::redis_server::RedisServer;
use support::*;

/// The limit: 50/s with a burst of 10, synced every 100 ms.
const RATE: f64 = 50.0;
const BURST: f64 = 10.0;
const SYNC: f64 = 0.1;

/// One test at a time: two shared cores, and the thread-count test must see only its own
/// client's threads.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A config with one route `api` to `upstream` under a global limit on `redis`.
fn config(redis: &str, upstream: std::net::SocketAddr, on_error: &str) -> String {
    format!(
        "[[clusters]]\nname = \"svc\"\nendpoints = [\"{upstream}\"]\n\n[[routes]]\nname = \"api\"\n\
         cluster = \"svc\"\nrate_limit = {{ rate = \"{RATE}/s\", burst = {BURST}, \
         scope = \"global\", redis = \"{redis}\", sync = \"100ms\", on_error = \"{on_error}\" }}\n"
    )
}

/// What one client's loop saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    limited: u64,
    failed: Vec<String>,
}

/// Sends GETs one after another until `deadline`.
async fn load(client: &Client, deadline: Instant) -> Tally {
    let mut t = Tally::default();
    while Instant::now() < deadline {
        match fetch(client, "/").await {
            Ok((200, _)) => t.ok += 1,
            Ok((s, _)) => t.failed.push(format!("status {s}")),
            Err(Error::RateLimited { .. }) => {
                t.limited += 1;
                // Paced a little while refused, so the loop does not only spin.
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => t.failed.push(e.to_string()),
        }
    }
    t
}

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

#[test]
fn two_clients_on_two_threads_are_held_near_the_global_allowance() {
    let _s = serial();
    let redis = RedisServer::start();
    let up = Upstream::fixed("ok");
    let file = temp_file("library-global", &config(&redis.url(), up.addr, "allow"));
    let secs = 3.0;
    let start = Instant::now() + Duration::from_millis(300);
    let deadline = start + Duration::from_secs_f64(secs);
    let path = file.path().to_string();
    let tallies: Vec<(Tally, u64)> = thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let path = path.clone();
                s.spawn(move || {
                    block_on(async {
                        let client = Client::from_file(&path).unwrap();
                        monoio::time::sleep(start.saturating_duration_since(Instant::now())).await;
                        let t = load(&client, deadline).await;
                        let errors = client.stats().global_limit_errors["api"];
                        (t, errors)
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok: u64 = tallies.iter().map(|t| t.0.ok).sum();
    let limited: u64 = tallies.iter().map(|t| t.0.limited).sum();
    // The allowance, and the overshoot the sync allows: per client, its burst and its rate over
    // two sync periods (the report's and the verdict's way back).
    let allowance = RATE * secs + BURST;
    let bound = allowance + 2.0 * (BURST + RATE * 2.0 * SYNC);
    let local = 2.0 * allowance;
    println!(
        "2 clients on 2 threads, {RATE}/s burst {BURST}, sync 100ms, {secs} s: admitted {ok} \
         ({:?}), limited {limited}, allowance {allowance}, bound {bound}, local alone {local}",
        tallies.iter().map(|t| t.0.ok).collect::<Vec<_>>()
    );
    for (t, errors) in &tallies {
        assert!(t.failed.is_empty(), "{t:?}");
        assert_eq!(*errors, 0, "Redis answered every sync");
    }
    assert!(limited > 0);
    assert!((ok as f64) <= bound, "admitted {ok} > bound {bound}");
    assert!(
        (ok as f64) < local * 0.7,
        "admitted {ok} is not clearly less than the local allowance {local}"
    );
    // Not over-strict either: most of the allowance is served.
    assert!((ok as f64) >= 0.8 * RATE * secs, "admitted only {ok}");
}

/// GETs through the proxy at `addr` (keep-alive, from 127.0.0.1: the key a client has) until
/// `deadline`: (admitted, limited, failed).
fn proxy_load(addr: std::net::SocketAddr, deadline: Instant) -> (u64, u64, u64) {
    let req = request("GET", "/", &[], b"");
    let (mut ok, mut limited, mut failed) = (0, 0, 0);
    while Instant::now() < deadline {
        let mut c = Conn::connect(addr);
        for _ in 0..200 {
            if Instant::now() >= deadline {
                break;
            }
            if c.send(&req).is_err() {
                failed += 1;
                break;
            }
            match c.read_response() {
                Ok(r) if r.status == 200 => ok += 1,
                Ok(r) if r.status == 429 => {
                    limited += 1;
                    if r.head.has_token("connection", "close") {
                        break;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                _ => {
                    failed += 1;
                    break;
                }
            }
        }
    }
    (ok, limited, failed)
}

#[test]
fn a_client_and_a_proxy_share_one_global_limit() {
    let _s = serial();
    let redis = RedisServer::start();
    let up = Upstream::fixed("ok");
    // One file for both: the client ignores `listen`; the proxy runs one shard, so each side's
    // local bucket is the whole rate (as the client's is).
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[shards]\ncount = 1\n\n{}",
        config(&redis.url(), up.addr, "allow")
    );
    let file = temp_file("library-global-proxy", &text);
    let proxy = Proxy::start(&["--config", file.path()]);
    let secs = 3.0;
    let start = Instant::now() + Duration::from_millis(300);
    let deadline = start + Duration::from_secs_f64(secs);
    let path = file.path().to_string();
    let (lib, (p_ok, p_limited, p_failed)) = thread::scope(|s| {
        let lib = s.spawn(move || {
            block_on(async {
                let client = Client::from_file(&path).unwrap();
                monoio::time::sleep(start.saturating_duration_since(Instant::now())).await;
                load(&client, deadline).await
            })
        });
        thread::sleep(start.saturating_duration_since(Instant::now()));
        let p = proxy_load(proxy.addr, deadline);
        (lib.join().unwrap(), p)
    });
    let ok = lib.ok + p_ok;
    let allowance = RATE * secs + BURST;
    let bound = allowance + 2.0 * (BURST + RATE * 2.0 * SYNC);
    let local = 2.0 * allowance;
    println!(
        "a client and a proxy (1 shard), {RATE}/s burst {BURST}, sync 100ms, {secs} s: admitted \
         {ok} (client {}, proxy {p_ok}), limited {} + {p_limited}, bound {bound}, local alone {local}",
        lib.ok, lib.limited
    );
    assert!(lib.failed.is_empty(), "{lib:?}");
    assert_eq!(p_failed, 0);
    assert!(lib.ok > 0 && p_ok > 0, "both sides served");
    assert!((ok as f64) <= bound, "admitted {ok} > bound {bound}");
    assert!(
        (ok as f64) < local * 0.7,
        "admitted {ok} is not clearly less than the local allowance {local}"
    );
    assert!((ok as f64) >= 0.8 * RATE * secs, "admitted only {ok}");
}

/// A client of a route on a Redis that is down (started, then stopped): until its first sync
/// failed, then `n` requests 20 ms apart (under the local limit).
fn with_redis_down(on_error: &str, n: usize) -> (Vec<Result<u16, Error>>, u64, String) {
    let redis = RedisServer::start();
    let url = redis.url();
    drop(redis);
    let up = Upstream::fixed("ok");
    block_on(async {
        let (client, _f) = client_from_toml("library-global", &config(&url, up.addr, on_error));
        let errors = |c: &Client| c.stats().global_limit_errors.get("api").copied();
        assert_eq!(
            errors(&client),
            Some(0),
            "the route is shown before any sync"
        );
        // Admitted counts are what the client syncs: send until one sync has failed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while errors(&client) == Some(0) {
            assert!(Instant::now() < deadline, "no failed sync counted");
            let _ = fetch(&client, "/").await;
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
        // The verdict reaches the client at its next look.
        monoio::time::sleep(Duration::from_millis(200)).await;
        let mut got = Vec::new();
        for _ in 0..n {
            got.push(fetch(&client, "/").await.map(|r| r.0));
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
        let errors = errors(&client).unwrap();
        (
            got,
            errors,
            shardgate::embed::render_metrics(&[client.stats()]),
        )
    })
}

#[test]
fn with_redis_down_deny_refuses_with_the_rate_limit_error() {
    let _s = serial();
    let (got, errors, text) = with_redis_down("deny", 10);
    for r in &got {
        assert!(
            matches!(r, Err(Error::RateLimited { retry_after }) if *retry_after >= Duration::from_secs(1)),
            "{got:?}"
        );
    }
    assert!(errors >= 1);
    assert!(
        text.contains("shardgate_global_limit_errors_total{route=\"api\"}"),
        "{text}"
    );
}

#[test]
fn with_redis_down_allow_serves_under_the_local_limit() {
    let _s = serial();
    let (got, errors, text) = with_redis_down("allow", 20);
    assert!(got.iter().all(|r| matches!(r, Ok(200))), "{got:?}");
    assert!(errors >= 1);
    assert!(
        text.contains("shardgate_global_limit_errors_total{route=\"api\"}"),
        "{text}"
    );
}

#[test]
fn the_limits_thread_ends_with_the_last_clone_of_its_client() {
    let _s = serial();
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_named("limits") > 0 {
        assert!(
            Instant::now() < deadline,
            "a limits thread of an earlier test lives on"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let redis = RedisServer::start();
    let up = Upstream::fixed("ok");
    block_on(async {
        let (client, _f) =
            client_from_toml("library-global", &config(&redis.url(), up.addr, "allow"));
        // A new thread names itself once it runs.
        until("the client's limits thread", || {
            threads_named("limits") == 1
        })
        .await;
        assert_eq!(fetch(&client, "/").await.unwrap().0, 200);
        let other = client.clone();
        drop(client);
        monoio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(threads_named("limits"), 1, "a clone still lives");
        drop(other);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_named("limits") > 0 {
        assert!(
            Instant::now() < deadline,
            "the limits thread outlived its client"
        );
        thread::sleep(Duration::from_millis(10));
    }
}
