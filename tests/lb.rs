//! `--lb`: round-robin splits evenly, `weighted` follows `weight=`, `least-request` keeps away from
//! an endpoint holding requests, `ewma` from a slower one, `random` uses every endpoint, and the
//! hash balancers (`hash:client-ip`, `hash:header:NAME`, `hash:cookie:NAME`) keep one key on one
//! endpoint on every shard and move only the keys of an endpoint that went down; a cookie is
//! found only as RFC 6265 writes it.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::policy::*;
use support::*;

fn addrs(bs: &[&Backend]) -> Vec<SocketAddr> {
    bs.iter().map(|b| b.addr).collect()
}

/// `n` GETs, each on a new connection; who answered each, in order.
fn sequence(proxy: &Proxy, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| who(&fetch(proxy.addr, &get(&format!("/{i}")))))
        .collect()
}

fn counts(v: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in v {
        *m.entry(s.clone()).or_insert(0) += 1;
    }
    m
}

#[test]
fn round_robin_splits_evenly() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let proxy = Proxy::to(
        &addrs(&[&a, &b, &c]),
        &["--shards", "1", "--lb", "round-robin"],
    );
    let got = sequence(&proxy, 30);
    assert_eq!(
        counts(&got),
        BTreeMap::from([("a".into(), 10), ("b".into(), 10), ("c".into(), 10)]),
        "{got:?}"
    );
    // A fixed cycle: every window of three holds each endpoint once.
    for w in got.chunks(3) {
        let mut w = w.to_vec();
        w.sort();
        assert_eq!(w, ["a", "b", "c"], "{got:?}");
    }
}

#[test]
fn weighted_follows_weights_three_to_one() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let heavy = format!("{} weight=3", a.addr);
    let light = b.addr.to_string();
    let proxy = Proxy::start(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &heavy,
        "--upstream",
        &light,
        "--lb",
        "weighted",
        "--shards",
        "1",
    ]);
    let got = sequence(&proxy, 40);
    assert_eq!(
        counts(&got),
        BTreeMap::from([("a".into(), 30), ("b".into(), 10)]),
        "{got:?}"
    );
    // Smooth: every window of four has b exactly once.
    for w in got.chunks(4) {
        assert_eq!(w.iter().filter(|x| *x == "b").count(), 1, "{got:?}");
    }
}

/// `a` holds every request it gets; with least-request, once one request is stuck there the
/// other endpoint (no request in flight) gets everything. Round-robin would strand every second.
#[test]
fn least_request_prefers_the_idle_endpoint() {
    let (slow, fast) = (Backend::start("slow"), Backend::start("fast"));
    slow.hold();
    let proxy = Proxy::to(
        &addrs(&[&slow, &fast]),
        &["--shards", "1", "--lb", "least-request"],
    );
    let mut stuck = Vec::new();
    let mut answered = 0;
    for i in 0..20 {
        let before = slow.hits();
        let mut c = proxy.connect();
        c.send(&get(&format!("/{i}"))).unwrap();
        c.set_timeout(Duration::from_millis(20));
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match c.read_response() {
                Ok(r) => {
                    assert_eq!(who(&r), "fast");
                    answered += 1;
                    break;
                }
                Err(_) if slow.hits() > before => {
                    stuck.push(c);
                    break;
                }
                Err(e) if Instant::now() > deadline => panic!("request {i}: no answer: {e}"),
                Err(_) => {}
            }
        }
    }
    assert!(
        stuck.len() <= 2 && answered >= 18,
        "least-request sent {} of 20 requests to the endpoint already holding one (round-robin \
         would send 10)",
        stuck.len()
    );
    slow.release();
    for c in &mut stuck {
        c.set_timeout(Duration::from_secs(5));
        assert_eq!(who(&c.read_response().unwrap()), "slow");
    }
}

#[test]
fn ewma_shifts_traffic_away_from_a_slower_endpoint() {
    let (slow, fast) = (Backend::start("slow"), Backend::start("fast"));
    slow.set_delay(Duration::from_millis(100));
    let proxy = Proxy::to(&addrs(&[&slow, &fast]), &["--shards", "1", "--lb", "ewma"]);
    let mut c = proxy.connect();
    let got: Vec<String> = (0..40)
        .map(|i| who(&c.exchange(&get(&format!("/{i}")))))
        .collect();
    let n = counts(&got);
    let slow_n = n.get("slow").copied().unwrap_or(0);
    assert!(
        slow_n <= 4 && n.get("fast").copied().unwrap_or(0) >= 36,
        "ewma: the 100 ms endpoint got {slow_n} of 40 (round-robin: 20): {got:?}"
    );
}

#[test]
fn random_uses_every_endpoint() {
    let bs: Vec<Backend> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| Backend::start(n))
        .collect();
    let list: Vec<&Backend> = bs.iter().collect();
    let proxy = Proxy::to(&addrs(&list), &["--shards", "2", "--lb", "random"]);
    let got = sequence(&proxy, 100);
    let n = counts(&got);
    assert_eq!(n.len(), 4, "all four endpoints used: {n:?}");
    assert!(n.values().all(|&k| k >= 5), "roughly uniform: {n:?}");
    // Not a fixed rotation: some endpoint answers twice in a row somewhere.
    assert!(got.windows(2).any(|w| w[0] == w[1]), "{got:?}");
}

/// For each key, who answered its `per_key` requests (each on a new connection).
fn by_key(
    per_key: usize,
    keys: &[String],
    mut send: impl FnMut(&str, usize) -> Response,
) -> BTreeMap<String, Vec<String>> {
    let mut m = BTreeMap::new();
    for k in keys {
        let v: Vec<String> = (0..per_key).map(|i| who(&send(k, i))).collect();
        m.insert(k.clone(), v);
    }
    m
}

/// Each key always on one endpoint, and the keys together on more than one.
fn assert_sticky_and_spread(
    m: &BTreeMap<String, Vec<String>>,
    what: &str,
) -> BTreeMap<String, String> {
    let mut home = BTreeMap::new();
    for (k, v) in m {
        assert!(
            v.iter().all(|x| x == &v[0] && !x.starts_with('-')),
            "{what} {k}: {v:?}"
        );
        home.insert(k.clone(), v[0].clone());
    }
    let used: std::collections::BTreeSet<&String> = home.values().collect();
    assert!(
        used.len() >= 2,
        "{what}: {} keys all on {used:?}",
        home.len()
    );
    home
}

#[test]
fn hash_client_ip_keeps_each_source_on_one_endpoint() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let proxy = Proxy::to(
        &addrs(&[&a, &b, &c]),
        &["--shards", "2", "--lb", "hash:client-ip"],
    );
    let keys: Vec<String> = (10..34).map(|n| lo(n).to_string()).collect();
    let m = by_key(5, &keys, |k, i| {
        fetch_from(k.parse().unwrap(), proxy.addr, &get(&format!("/{i}"))).unwrap()
    });
    assert_sticky_and_spread(&m, "hash:client-ip");
}

#[test]
fn hash_header_keeps_each_value_on_one_endpoint() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let proxy = Proxy::to(
        &addrs(&[&a, &b, &c]),
        &["--shards", "2", "--lb", "hash:header:x-user"],
    );
    let keys: Vec<String> = (0..24).map(|n| format!("user-{n}")).collect();
    let m = by_key(5, &keys, |k, i| {
        let h = format!("X-User: {k}");
        fetch(proxy.addr, &request("GET", &format!("/{i}"), &[&h], b""))
    });
    assert_sticky_and_spread(&m, "hash:header:x-user");
    // Without the header: round-robin, so all three are used.
    let n = counts(&sequence(&proxy, 12));
    assert_eq!(n.len(), 3, "no key falls back to round-robin: {n:?}");
}

#[test]
fn hash_cookie_keeps_each_session_on_one_endpoint() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let proxy = Proxy::to(
        &addrs(&[&a, &b, &c]),
        &["--shards", "2", "--lb", "hash:cookie:session"],
    );
    let keys: Vec<String> = (0..24).map(|n| format!("s{n:04}")).collect();
    // Other cookies around it change on every request; only `session` counts.
    let m = by_key(5, &keys, |k, i| {
        let h = format!("Cookie: theme=t{i}; session={k}; other={i}");
        fetch(proxy.addr, &request("GET", &format!("/{i}"), &[&h], b""))
    });
    let home = assert_sticky_and_spread(&m, "hash:cookie:session");
    // The cookie's name must match exactly: `Session` is another cookie.
    let moved = keys
        .iter()
        .filter(|k| {
            let h = format!("Cookie: session={k}");
            who(&fetch(proxy.addr, &request("GET", "/", &[&h], b""))) != home[*k]
        })
        .count();
    assert_eq!(moved, 0, "the bare cookie maps like the one among others");
}

/// The cookie is read as RFC 6265 §4.2.1 writes it (src/http/lookup.rs): found in any `Cookie`
/// line (HTTP/2 clients split them), whitespace around a pair ignored, but `session = K` (spaces
/// around `=`) is not the `session` cookie, so such requests have no key and go round-robin.
#[test]
fn hash_cookie_reads_every_cookie_line_and_only_exact_pairs() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let proxy = Proxy::to(
        &addrs(&[&a, &b, &c]),
        &["--shards", "2", "--lb", "hash:cookie:session"],
    );
    let keys: Vec<String> = (0..24).map(|n| format!("s{n:04}")).collect();
    let m = by_key(3, &keys, |k, i| {
        let h = format!("Cookie: session={k}");
        fetch(proxy.addr, &request("GET", &format!("/{i}"), &[&h], b""))
    });
    let home = assert_sticky_and_spread(&m, "hash:cookie:session");
    let moved: Vec<&String> = keys
        .iter()
        .filter(|k| {
            let lines = [
                "Cookie: theme=dark".to_string(),
                format!("Cookie: \t session={k} ;x=1"),
            ];
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            who(&fetch(proxy.addr, &request("GET", "/", &lines, b""))) != home[*k]
        })
        .collect();
    assert!(
        moved.is_empty(),
        "the second Cookie line, padded, maps alike: {moved:?}"
    );
    // One key, written with spaces around `=`: no key, so round-robin uses all three.
    let spaced = format!("Cookie: session = {}", keys[0]);
    let got: Vec<String> = (0..12)
        .map(|i| {
            who(&fetch(
                proxy.addr,
                &request("GET", &format!("/{i}"), &[&spaced], b""),
            ))
        })
        .collect();
    assert_eq!(
        counts(&got).len(),
        3,
        "`session = K` is not cookie `session`: {got:?}"
    );
}

/// Consistent hashing: when one of three endpoints goes down (failing its health check), only
/// its keys move, and they spread over the other two.
#[test]
fn hashed_keys_on_live_endpoints_do_not_move_when_one_goes_down() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let proxy = Proxy::to(
        &addrs(&[&a, &b, &c]),
        &[
            "--shards",
            "2",
            "--lb",
            "hash:header:x-user",
            "--health-check",
            "http:/hc",
            "--health-interval",
            "100ms",
        ],
    );
    let keys: Vec<String> = (0..90).map(|n| format!("user-{n}")).collect();
    let ask = |k: &str| {
        let h = format!("X-User: {k}");
        who(&fetch(proxy.addr, &request("GET", "/", &[&h], b"")))
    };
    let before: BTreeMap<String, String> = keys.iter().map(|k| (k.clone(), ask(k))).collect();
    let on_c: Vec<&String> = keys.iter().filter(|k| before[*k] == "c").collect();
    assert!(on_c.len() >= 10, "c holds a share of the keys: {before:?}");

    c.set_health(500);
    scrape_until(
        &proxy,
        Duration::from_secs(5),
        "endpoint c marked unhealthy",
        "shardgate_upstream_healthy",
        |m| {
            m.sum(
                "shardgate_upstream_healthy",
                &[("endpoint", &c.addr.to_string())],
            ) == 0.0
        },
    );
    let c_hits = c.hits();
    let after: BTreeMap<String, String> = keys.iter().map(|k| (k.clone(), ask(k))).collect();
    assert_eq!(
        c.hits(),
        c_hits,
        "no request reaches the unhealthy endpoint"
    );
    let mut moved_to = BTreeMap::new();
    for k in &keys {
        if before[k] == "c" {
            assert!(after[k] == "a" || after[k] == "b", "{k}: {}", after[k]);
            *moved_to.entry(after[k].clone()).or_insert(0) += 1;
        } else {
            assert_eq!(after[k], before[k], "{k} was on a live endpoint and moved");
        }
    }
    assert_eq!(
        moved_to.len(),
        2,
        "c's keys spread over a and b: {moved_to:?}"
    );
}
