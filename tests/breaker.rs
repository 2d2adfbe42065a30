//! Circuit breakers from a cluster's `[clusters.breaker]`: after `failures` consecutive failures
//! (a status in `failure_statuses`, or a refused connection) an endpoint gets no request (Open);
//! after `open_timeout` one probe goes through (HalfOpen); `successes` good probes close it, a
//! failed one reopens it for twice as long. With every endpoint open the client gets a fast 503
//! `no healthy upstream`. Across shards, one shard's ejection is applied by the others (outlier
//! events), within `max_ejection_percent`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::admin::{temp_path, wait_log_lines};
use support::policy::*;
use support::*;

fn config(endpoints: &[SocketAddr], extra: &str, breaker: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n[[clusters]]\nname = \"web\"\nendpoints = [{}]\n\
         failure_statuses = [503]\n{extra}\n[clusters.breaker]\n{breaker}\n",
        list.join(", ")
    )
}

fn state(proxy: &Proxy, ep: SocketAddr) -> f64 {
    scrape(proxy).one(
        "shardgate_upstream_breaker_state",
        &[("endpoint", &ep.to_string())],
    )
}

fn transitions(m: &Metrics, ep: SocketAddr, to: &str) -> f64 {
    m.sum(
        "shardgate_upstream_breaker_transitions_total",
        &[("endpoint", &ep.to_string()), ("to", to)],
    )
}

/// Sends GETs on `c` until `bad` has had `n` requests; returns every answer's `who`.
fn until_hits(c: &mut Conn, bad: &Backend, n: usize, within: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    while bad.hits() < n {
        assert!(
            Instant::now() < deadline,
            "{} never reached {n} requests: {got:?}",
            bad.name()
        );
        got.push(who(&c.exchange(&get("/"))));
    }
    got
}

#[test]
fn opens_after_consecutive_failures_probes_after_the_timeout_and_closes() {
    let good = Backend::start("good");
    let bad = Backend::with_status("bad", 503);
    let file = temp_file(
        "breaker-cycle",
        &config(
            &[good.addr, bad.addr],
            "",
            "failures = 3\nopen_timeout = \"500ms\"\nsuccesses = 2\n",
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    let got = until_hits(&mut c, &bad, 3, Duration::from_secs(3));
    assert_eq!(
        got,
        ["good", "bad", "good", "bad", "good", "bad"],
        "round-robin until open"
    );
    let third = bad.events()[2].at;
    assert_eq!(
        state(&proxy, bad.addr),
        1.0,
        "open after 3 failures in a row"
    );

    // Open: everything goes to the good one.
    let open: Vec<String> = (0..8).map(|_| who(&c.exchange(&get("/")))).collect();
    let fast = third.elapsed() < Duration::from_millis(450);
    assert!(
        open.iter().all(|w| w == "good"),
        "open breaker still used: {open:?}"
    );
    assert!(
        fast || bad.hits() == 3 || bad.events()[3].at >= third + Duration::from_millis(500),
        "a probe before the open timeout"
    );

    // Recovered; after the open timeout one probe goes through.
    bad.set_status(200);
    until_hits(&mut c, &bad, 4, Duration::from_secs(3));
    let probe = bad.events()[3].at;
    assert!(
        probe >= third + Duration::from_millis(500),
        "probe {:?} after the third failure, before open_timeout 500ms",
        probe - third
    );
    // Two successes close it: round-robin again.
    let after: Vec<String> = (0..10).map(|_| who(&c.exchange(&get("/")))).collect();
    let to_bad = after.iter().filter(|w| *w == "bad").count();
    assert!(
        (4..=6).contains(&to_bad),
        "closed again, back in rotation: {after:?}"
    );
    let m = scrape(&proxy);
    assert_eq!(
        m.one(
            "shardgate_upstream_breaker_state",
            &[("endpoint", &bad.addr.to_string())]
        ),
        0.0
    );
    for to in ["open", "half_open", "closed"] {
        assert_eq!(transitions(&m, bad.addr, to), 1.0, "one transition to {to}");
    }
}

/// Half-open lets `half_open_requests` probes through at a time: while the one probe is held at
/// the endpoint every other request goes elsewhere; it closes only after `successes` good probes.
#[test]
fn half_open_admits_one_probe_at_a_time_and_closes_after_successes() {
    let good = Backend::start("good");
    let bad = Backend::with_status("bad", 503);
    let file = temp_file(
        "breaker-halfopen",
        &config(
            &[good.addr, bad.addr],
            "",
            "failures = 3\nopen_timeout = \"300ms\"\nhalf_open_requests = 1\nsuccesses = 2\n",
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    until_hits(&mut proxy.connect(), &bad, 3, Duration::from_secs(3));
    bad.set_status(200);
    bad.hold();
    // New connections until one is the probe, held at the endpoint.
    let mut probe = None;
    let deadline = Instant::now() + Duration::from_secs(3);
    while probe.is_none() {
        assert!(Instant::now() < deadline, "no probe after the open timeout");
        let mut c = proxy.connect();
        c.send(&get("/")).unwrap();
        c.set_timeout(Duration::from_millis(50));
        match c.read_response() {
            Ok(r) => assert_eq!(who(&r), "good"),
            Err(_) if bad.hits() == 4 => probe = Some(c),
            Err(e) => {
                c.set_timeout(Duration::from_secs(5));
                let r = c
                    .read_response()
                    .unwrap_or_else(|_| panic!("no answer: {e}"));
                assert_eq!(who(&r), "good");
            }
        }
    }
    let mut probe = probe.unwrap();
    assert_eq!(state(&proxy, bad.addr), 2.0, "half-open");
    // The probe slot is taken: nothing else goes to the endpoint.
    let during: Vec<String> = (0..10)
        .map(|_| who(&fetch(proxy.addr, &get("/"))))
        .collect();
    assert!(during.iter().all(|w| w == "good"), "{during:?}");
    assert_eq!(bad.hits(), 4, "a second probe while the first is in flight");
    bad.release();
    probe.set_timeout(Duration::from_secs(5));
    assert_eq!(who(&probe.read_response().unwrap()), "bad");
    assert_eq!(
        state(&proxy, bad.addr),
        2.0,
        "one success of two: still half-open"
    );
    let mut c = proxy.connect();
    until_hits(&mut c, &bad, 5, Duration::from_secs(3));
    let m = scrape_until(
        &proxy,
        Duration::from_secs(2),
        "closed after the second success",
        "shardgate_upstream_breaker",
        |m| {
            m.one(
                "shardgate_upstream_breaker_state",
                &[("endpoint", &bad.addr.to_string())],
            ) == 0.0
        },
    );
    assert_eq!(transitions(&m, bad.addr, "closed"), 1.0);
}

#[test]
fn a_failed_probe_reopens_for_twice_as_long() {
    let good = Backend::start("good");
    let bad = Backend::with_status("bad", 503);
    let file = temp_file(
        "breaker-double",
        &config(
            &[good.addr, bad.addr],
            "",
            "failures = 3\nopen_timeout = \"400ms\"\nmax_open_timeout = \"10s\"\n",
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    // Keep traffic flowing (a request every 10 ms) until the second probe.
    let deadline = Instant::now() + Duration::from_secs(5);
    while bad.hits() < 5 {
        assert!(
            Instant::now() < deadline,
            "no second probe: {:?}",
            bad.events()
        );
        c.exchange(&get("/"));
        std::thread::sleep(Duration::from_millis(10));
    }
    let e = bad.events();
    let first = e[3].at - e[2].at;
    let second = e[4].at - e[3].at;
    assert!(
        first >= Duration::from_millis(400),
        "first probe after {first:?}"
    );
    assert!(
        second >= Duration::from_millis(800),
        "the failed probe reopened it for 2 × 400ms, yet the next probe came after {second:?}"
    );
    assert!(
        second < Duration::from_millis(1600),
        "not more than doubled: {second:?}"
    );
}

/// A refused connection is a failure too; the client never sees it (retried on the other), and
/// once open, no more connections are attempted until the open timeout.
#[test]
fn refused_connections_open_the_breaker() {
    let good = Backend::start("good");
    let refused = refused_addr();
    let file = temp_file(
        "breaker-refused",
        &config(
            &[good.addr, refused],
            "",
            "failures = 3\nopen_timeout = \"2s\"\n",
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let connects = |m: &Metrics| {
        m.sum(
            "shardgate_upstream_connects_total",
            &[("endpoint", &refused.to_string())],
        )
    };
    let mut c = proxy.connect();
    for i in 0..30 {
        let r = c.exchange(&get(&format!("/{i}")));
        assert_eq!(who(&r), "good", "request {i}");
    }
    let m = scrape(&proxy);
    assert_eq!(
        connects(&m),
        3.0,
        "3 refused connects, then the breaker stops trying"
    );
    assert_eq!(
        m.one(
            "shardgate_upstream_breaker_state",
            &[("endpoint", &refused.to_string())]
        ),
        1.0
    );
}

#[test]
fn all_endpoints_open_gives_a_fast_503_no_healthy_upstream() {
    let a = Backend::with_status("a", 503);
    let b = Backend::with_status("b", 503);
    let file = temp_file(
        "breaker-all",
        &config(
            &[a.addr, b.addr],
            "",
            "failures = 3\nopen_timeout = \"30s\"\n",
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    for i in 0..6 {
        let r = c.exchange(&get(&format!("/{i}")));
        assert_eq!(r.status, 503);
        assert!(
            r.header(ENDPOINT).is_some(),
            "the upstream's own 503, relayed"
        );
    }
    let (r, took) = timed(|| {
        let mut c = proxy.connect();
        c.send(&get("/")).unwrap();
        expect_canned_then_close(&mut c, 503, "every breaker open")
    });
    assert_eq!(r.text(), "no healthy upstream\n");
    assert!(took < Duration::from_millis(300), "fast: {took:?}");
    assert_eq!(
        (a.hits(), b.hits()),
        (3, 3),
        "no request reached an open endpoint"
    );
}

// === across shards ===

/// Two shards; failures driven through one keep-alive connection open the bad endpoint's breaker
/// on that connection's shard only. Returns (the proxy, the access log, that shard).
fn eject_on_one_shard(
    good: &Backend,
    bad: &Backend,
    max_ejection: u8,
) -> (Proxy, TempFile, TempFile, u64) {
    let log = temp_path("breaker-outlier", "log");
    let file = temp_file(
        "breaker-outlier",
        &config(
            &[good.addr, bad.addr],
            &format!("max_ejection_percent = {max_ejection}\n"),
            "failures = 3\nopen_timeout = \"10s\"\n",
        ),
    );
    let proxy = Proxy::start(&[
        "--config",
        file.path(),
        "--shards",
        "2",
        "--access-log",
        log.path(),
        "--pool-idle-timeout",
        "200ms",
    ]);
    let mut c = proxy.connect();
    until_hits(&mut c, bad, 3, Duration::from_secs(3));
    let bad_ep = bad.addr.to_string();
    // Sync: once a scrape shows the breaker open, the ejection event went out before that
    // shard's statistics; a second scrape is answered by every shard after it saw the event.
    scrape_until(
        &proxy,
        Duration::from_secs(3),
        "bad endpoint open on one shard",
        "shardgate_upstream_breaker_shards",
        |m| {
            m.sum(
                "shardgate_upstream_breaker_shards",
                &[("endpoint", &bad_ep), ("state", "open")],
            ) == 1.0
        },
    );
    scrape(&proxy);
    let lines = wait_log_lines(log.0.as_path(), 6, Duration::from_secs(3));
    let shard = lines[0]["shard"].as_u64().expect("shard in the access log");
    assert!(
        lines.iter().all(|l| l["shard"].as_u64() == Some(shard)),
        "one connection, one shard"
    );
    (proxy, file, log, shard)
}

/// 40 GETs on new connections (the kernel spreads them over both shards); returns, per access
/// log line of these requests, (shard, upstream).
fn spread(proxy: &Proxy, log: &TempFile, already: usize) -> Vec<(u64, String)> {
    for i in 0..40 {
        let r = fetch(proxy.addr, &get(&format!("/after-{i}")));
        assert!(r.status == 200 || r.status == 503, "{}", r.status);
    }
    wait_log_lines(log.0.as_path(), already + 40, Duration::from_secs(3))
        .iter()
        .filter(|l| l["path"].as_str().is_some_and(|p| p.starts_with("/after-")))
        .map(|l| {
            (
                l["shard"].as_u64().unwrap(),
                l["upstream"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn an_ejection_on_one_shard_is_applied_on_the_other() {
    let good = Backend::start("good");
    let bad = Backend::with_status("bad", 503);
    let (proxy, _file, log, shard) = eject_on_one_shard(&good, &bad, 50);
    let hits = bad.hits();
    let seen = spread(&proxy, &log, 6);
    let other: Vec<&(u64, String)> = seen.iter().filter(|(s, _)| *s != shard).collect();
    assert!(
        !other.is_empty() && other.len() < seen.len(),
        "40 connections on both shards: {seen:?}"
    );
    assert_eq!(
        bad.hits(),
        hits,
        "a shard sent to the ejected endpoint: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, u)| *u == good.addr.to_string()),
        "{seen:?}"
    );
    // The other shard avoided it without opening its own breaker.
    let m = scrape(&proxy);
    let open = m.sum(
        "shardgate_upstream_breaker_shards",
        &[("endpoint", &bad.addr.to_string()), ("state", "open")],
    );
    assert_eq!(
        open,
        1.0,
        "shard {} opened its own breaker instead",
        1 - shard
    );
}

#[test]
fn max_ejection_percent_zero_keeps_the_other_shard_sending() {
    let good = Backend::start("good");
    let bad = Backend::with_status("bad", 503);
    let (proxy, _file, log, shard) = eject_on_one_shard(&good, &bad, 0);
    let seen = spread(&proxy, &log, 6);
    let bad_ep = bad.addr.to_string();
    assert!(
        seen.iter().any(|(s, u)| *s != shard && *u == bad_ep),
        "max_ejection_percent = 0: the other shard must still use the endpoint until its own \
         breaker opens: {seen:?}"
    );
    assert!(
        !seen.iter().any(|(s, u)| *s == shard && *u == bad_ep),
        "the shard whose breaker is open used it: {seen:?}"
    );
}
