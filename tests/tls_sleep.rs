//! Idle HTTPS keep-alive connections give back their kit and their TLS stream's buffers and sleep
//! on readiness with only rustls' state, as plain ones do (`--idle-buffer-time`,
//! `shardgate_downstream_connections{state="asleep"}`): they still serve their next requests
//! (with bodies, pipelined, from the first request on with a zero buffer time), keep their idle
//! timeout, say close_notify when a drain or the idle timeout ends them, and lose no request that
//! arrives as they fall asleep. wrk over https, awake and with every request served from sleep,
//! gets every answer.

mod support;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use support::certs::Certs;
use support::tls_client::TlsConn;
use support::*;

fn asleep(m: &Metrics) -> f64 {
    m.sum("shardgate_downstream_connections", &[("state", "asleep")])
}

/// Waits until `n` connections are asleep.
fn until_asleep(proxy: &Proxy, n: f64) {
    scrape_until(
        proxy,
        Duration::from_secs(5),
        &format!("{n} connections asleep"),
        "shardgate_downstream_connections",
        |m| asleep(m) == n,
    );
}

/// A one-shard TLS proxy in front of an echo upstream, with `extra` flags.
fn setup(name: &str, extra: &[&str]) -> (Certs, Upstream, Proxy) {
    let certs = Certs::new(name);
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::echo();
    let upstream = up.addr.to_string();
    let mut args = leaf.listen_args();
    args.extend(["--shards", "1", "--upstream", upstream.as_str()]);
    args.extend(extra);
    let proxy = Proxy::start(&args);
    (certs, up, proxy)
}

fn post(path: &str, body: &str) -> Vec<u8> {
    request("POST", path, &[], body.as_bytes())
}

fn echoed(c: &mut TlsConn, path: &str, body: &str) -> String {
    let r = c.exchange(&post(path, body)).expect("an answer over TLS");
    assert_eq!(r.status, 200, "{}", r.head);
    String::from_utf8(r.body).unwrap()
}

/// True when the server's next record is close_notify (rustls reads that as a clean 0; an EOF
/// without it is an error) within `within`.
fn says_close_notify(c: &mut TlsConn, within: Duration) -> bool {
    c.tls.sock.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    matches!(c.tls.read(&mut b), Ok(0))
}

#[test]
fn a_sleeping_tls_connection_serves_its_next_requests() {
    let (certs, _up, proxy) = setup("tls-sleep", &["--idle-buffer-time", "50ms"]);
    let mut c = TlsConn::connect(proxy.addr, certs.ca(), "localhost").expect("handshake");
    assert_eq!(echoed(&mut c, "/", "one"), "one");
    until_asleep(&proxy, 1.0);
    assert_eq!(echoed(&mut c, "/", "two"), "two");
    until_asleep(&proxy, 1.0);
    // Woken by two pipelined requests in one TLS write.
    c.send(&[post("/a", "three"), post("/b", "four")].concat())
        .unwrap();
    assert_eq!(c.read_response().unwrap().body, b"three");
    assert_eq!(c.read_response().unwrap().body, b"four");
    // A large body after a sleep: the stream takes a new read buffer for its records.
    until_asleep(&proxy, 1.0);
    let big = "x".repeat(100_000);
    assert_eq!(echoed(&mut c, "/big", &big).len(), big.len());
}

#[test]
fn with_a_long_buffer_time_an_idle_tls_connection_stays_awake() {
    let (certs, _up, proxy) = setup("tls-awake", &["--idle-buffer-time", "10m"]);
    let mut c = TlsConn::connect(proxy.addr, certs.ca(), "localhost").expect("handshake");
    assert_eq!(echoed(&mut c, "/", "x"), "x");
    let m = scrape_until(
        &proxy,
        Duration::from_secs(5),
        "1 idle connection",
        "shardgate_downstream_connections",
        |m| m.sum("shardgate_downstream_connections", &[("state", "idle")]) == 1.0,
    );
    assert_eq!(asleep(&m), 0.0);
}

#[test]
fn zero_buffer_time_serves_every_tls_request_from_sleep() {
    let (certs, _up, proxy) = setup("tls-zero", &["--idle-buffer-time", "0"]);
    // After its handshake, the connection sleeps before its first request too.
    let mut c = TlsConn::connect(proxy.addr, certs.ca(), "localhost").expect("handshake");
    until_asleep(&proxy, 1.0);
    for i in 0..20 {
        let body = format!("request {i}");
        assert_eq!(echoed(&mut c, "/", &body), body);
    }
}

/// A request that arrives in one write with the client's Finished is already decrypted when the
/// handshake ends: with a zero buffer time the connection must read it, not sleep on a socket
/// that has nothing more to say.
#[test]
fn a_request_sent_with_the_clients_finished_is_answered_at_once() {
    let (certs, _up, proxy) = setup("tls-finished", &["--idle-buffer-time", "0"]);
    for i in 0..5 {
        let body = format!("with finished {i}");
        let req = post("/", &body);
        let mut c =
            TlsConn::connect_with_request_in_finished(proxy.addr, certs.ca(), "localhost", &req)
                .expect("handshake");
        let r = c.read_response().expect("answered without another byte");
        assert_eq!(r.body, body.as_bytes());
    }
}

#[test]
fn a_sleeping_tls_connection_keeps_its_idle_timeout_and_says_close_notify() {
    let (certs, _up, proxy) = setup(
        "tls-idle",
        &["--idle-buffer-time", "100ms", "--idle-timeout", "700ms"],
    );
    let mut c = TlsConn::connect(proxy.addr, certs.ca(), "localhost").expect("handshake");
    let sent = Instant::now();
    assert_eq!(echoed(&mut c, "/", "x"), "x");
    until_asleep(&proxy, 1.0);
    assert!(
        says_close_notify(&mut c, Duration::from_secs(3)),
        "the idle timeout ends the sleep with close_notify"
    );
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_millis(1500),
        "closed {took:?} after the request, the idle timeout is 700ms"
    );
    until_asleep(&proxy, 0.0);
}

#[test]
fn a_drain_closes_sleeping_tls_connections_at_once_with_close_notify() {
    let (certs, _up, mut proxy) = setup(
        "tls-drain-sleep",
        &["--idle-buffer-time", "50ms", "--drain-timeout", "20s"],
    );
    let mut conns: Vec<TlsConn> = (0..3)
        .map(|_| TlsConn::connect(proxy.addr, certs.ca(), "localhost").expect("handshake"))
        .collect();
    for c in &mut conns {
        assert_eq!(echoed(c, "/", "x"), "x");
    }
    until_asleep(&proxy, 3.0);
    let start = Instant::now();
    proxy.sigterm();
    for c in &mut conns {
        assert!(says_close_notify(c, Duration::from_secs(3)));
    }
    let status = proxy.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "the drain waited {:?} for sleeping TLS connections",
        start.elapsed()
    );
}

/// Requests sent around the moment a TLS connection gives its buffers back (the cancelled socket
/// read may already hold a record, or part of one) are all answered, on both drivers.
#[test]
fn tls_requests_racing_the_fall_asleep_are_not_lost() {
    let (certs, _up, proxy) = setup("tls-race", &["--idle-buffer-time", "2ms"]);
    let ca = certs.ca().to_string();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let addr = proxy.addr;
            let ca = ca.clone();
            std::thread::spawn(move || {
                let mut c = TlsConn::connect(addr, &ca, "localhost").expect("handshake");
                for i in 0..60u64 {
                    // Gaps of 0 to 4 ms: before, around and after the 2 ms.
                    std::thread::sleep(Duration::from_micros((i * 7 + t * 13) % 5 * 1000));
                    let body = format!("{t}/{i}");
                    assert_eq!(echoed(&mut c, "/", &body), body);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("every request answered");
    }
}

/// wrk over https for one second (8 connections): (requests, non-2xx, socket errors).
fn wrk_https(proxy: &Proxy) -> (u64, u64, u64) {
    let url = format!("https://{}/", proxy.addr);
    let out = Command::new("wrk")
        .args(["-t1", "-c8", "-d1s", &url])
        .output()
        .expect("wrk is required (scripts/test.sh installs it)");
    assert!(out.status.success(), "{out:?}");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |key: &str| -> u64 {
        out.lines().find(|l| l.contains(key)).map_or(0, |l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<u64>().unwrap())
                .sum()
        })
    };
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (requests, count("Non-2xx or 3xx"), count("Socket errors"))
}

#[test]
fn wrk_over_https_gets_every_answer_awake_and_from_sleep() {
    for buffer_time in ["1s", "0"] {
        let (_certs, up, proxy) = setup("tls-wrk", &["--idle-buffer-time", buffer_time]);
        let (requests, non2xx, errors) = wrk_https(&proxy);
        assert!(requests >= 100, "{buffer_time}: only {requests} requests");
        assert_eq!((non2xx, errors), (0, 0), "{buffer_time}: failed answers");
        assert!(
            up.request_count() as u64 >= requests,
            "{buffer_time}: the upstream saw every request"
        );
        let m = scrape(&proxy);
        assert_eq!(
            m.sum("shardgate_tls_handshakes_total", &[("result", "tls1.3")]),
            8.0,
            "{buffer_time}: one handshake per wrk connection"
        );
    }
}
