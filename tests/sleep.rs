//! Idle keep-alive connections give their buffers back (`--idle-buffer-time`, `--lean-above`)
//! and sleep on readiness alone: they still serve their next request (pipelined or with a body),
//! keep their idle timeout, close on drain, and lose no request that arrives as they fall asleep.
//! `shardgate_downstream_connections{state="asleep"}` shows them.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn asleep(m: &Metrics) -> f64 {
    m.sum("shardgate_downstream_connections", &[("state", "asleep")])
}

fn idle(m: &Metrics) -> f64 {
    m.sum("shardgate_downstream_connections", &[("state", "idle")])
}

/// Waits until `n` connections are asleep (shards publish gauges when scraped).
fn until_asleep(proxy: &Proxy, n: f64) -> Metrics {
    scrape_until(
        proxy,
        Duration::from_secs(5),
        &format!("{n} connections asleep"),
        "shardgate_downstream_connections",
        |m| asleep(m) == n,
    )
}

#[test]
fn a_sleeping_connection_serves_its_next_requests() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--shards", "1", "--idle-buffer-time", "50ms"]);
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&request("POST", "/", &[], b"one")).text(), "one");
    let m = until_asleep(&proxy, 1.0);
    assert_eq!(idle(&m), 0.0, "an asleep connection is not also idle");
    // Woken by a body-carrying request.
    assert_eq!(c.exchange(&request("POST", "/", &[], b"two")).text(), "two");
    until_asleep(&proxy, 1.0);
    // Woken by two pipelined requests at once.
    c.send(
        &[
            request("POST", "/a", &[], b"three"),
            request("POST", "/b", &[], b"four"),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(c.read_response().unwrap().text(), "three");
    assert_eq!(c.read_response().unwrap().text(), "four");
}

#[test]
fn without_the_setting_an_idle_connection_stays_awake() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--shards", "1", "--idle-buffer-time", "10m"]);
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&request("POST", "/", &[], b"x")).text(), "x");
    let m = scrape_until(
        &proxy,
        Duration::from_secs(5),
        "1 idle connection",
        "shardgate_downstream_connections",
        |m| idle(m) == 1.0,
    );
    assert_eq!(asleep(&m), 0.0);
}

#[test]
fn zero_buffer_time_serves_every_request_from_sleep() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--shards", "1", "--idle-buffer-time", "0"]);
    // A new connection sleeps before its first request too, and each request wakes it.
    let mut c = proxy.connect();
    until_asleep(&proxy, 1.0);
    for i in 0..20 {
        let body = format!("request {i}");
        assert_eq!(
            c.exchange(&request("POST", "/", &[], body.as_bytes()))
                .text(),
            body
        );
    }
    // A request already queued when the connection is accepted.
    let mut d = proxy.connect();
    assert_eq!(d.exchange(&get("/")).status, 200);
}

#[test]
fn above_lean_above_connections_idle_ones_sleep_at_once() {
    let up = Upstream::echo();
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--idle-buffer-time",
            "10m",
            "--lean-above",
            "2",
        ],
    );
    let mut conns: Vec<Conn> = (0..4).map(|_| proxy.connect()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let body = format!("c{i}");
        assert_eq!(
            c.exchange(&request("POST", "/", &[], body.as_bytes()))
                .text(),
            body
        );
    }
    // Four connections is above two: every one that waits for a request has slept.
    until_asleep(&proxy, 4.0);
    for c in &mut conns {
        assert_eq!(c.exchange(&get("/")).status, 200);
    }
}

#[test]
fn a_sleeping_connection_keeps_its_idle_timeout() {
    let up = Upstream::echo();
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--idle-buffer-time",
            "100ms",
            "--idle-timeout",
            "700ms",
        ],
    );
    let mut c = proxy.connect();
    let sent = Instant::now();
    assert_eq!(c.exchange(&get("/")).status, 200);
    until_asleep(&proxy, 1.0);
    c.expect_closed(Duration::from_secs(3)).unwrap();
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_millis(1500),
        "closed {took:?} after the request, the idle timeout is 700ms"
    );
    until_asleep(&proxy, 0.0);
}

#[test]
fn a_drain_closes_sleeping_connections_at_once() {
    let up = Upstream::echo();
    let mut proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--idle-buffer-time",
            "50ms",
            "--drain-timeout",
            "20s",
        ],
    );
    let mut conns: Vec<Conn> = (0..3).map(|_| proxy.connect()).collect();
    for c in &mut conns {
        assert_eq!(c.exchange(&get("/")).status, 200);
    }
    until_asleep(&proxy, 3.0);
    let start = Instant::now();
    proxy.sigterm();
    for c in &mut conns {
        c.expect_closed(Duration::from_secs(3)).unwrap();
    }
    let status = proxy.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "the drain waited {:?} for sleeping connections",
        start.elapsed()
    );
}

/// Requests sent around the moment a connection gives its buffers back (the cancelled read may
/// already hold them) are all answered, on both drivers.
#[test]
fn requests_racing_the_fall_asleep_are_not_lost() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--shards", "1", "--idle-buffer-time", "2ms"]);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = proxy.addr;
            std::thread::spawn(move || {
                let mut c = Conn::connect(addr);
                for i in 0..60u64 {
                    // Gaps of 0 to 4 ms: before, around and after the 2 ms.
                    std::thread::sleep(Duration::from_micros((i * 7 + t * 13) % 5 * 1000));
                    let body = format!("{t}/{i}");
                    let r = c.exchange(&request("POST", "/", &[], body.as_bytes()));
                    assert_eq!(r.text(), body);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("every request answered");
    }
}
