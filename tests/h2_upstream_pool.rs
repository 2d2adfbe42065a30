//! The HTTP/2 upstream pool against the scripted upstream (tests/h2_upstream/upstream.py on the
//! Python `h2` package), for what nginx cannot be told to do: SETTINGS_MAX_CONCURRENT_STREAMS = 1
//! (a second connection, then the wait and the 503 at the connection cap), a burst waiting for
//! the single connect, GOAWAY mid-flight, REFUSED_STREAM (a POST resent), a cut connection (502,
//! a failure, a new connection), PING keep-alive and the idle close, a route's retry, timeout,
//! `max_body` and access log over an h2c cluster, and HTTP/2 health checks.

#[path = "h2_upstream/harness.rs"]
mod harness;
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use harness::*;
use support::admin::scrape;
use support::*;

/// SETTINGS_MAX_CONCURRENT_STREAMS = 1: two requests at once take two connections, each with one
/// stream; with the endpoint capped at one connection and no queue, the second gets 503; with a
/// queue it waits for the first and succeeds.
#[test]
fn max_concurrent_streams_opens_another_connection_then_queues() {
    let up = PyUp::start(&["--max-streams", "1"]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    // Settle the first connection (its SETTINGS known) before the concurrent pair.
    assert_eq!(curl(&proxy, "/sleep/1", false, &[]).0, 200);
    let both = concurrently(&proxy, &["/sleep/600", "/sleep/600"]);
    assert_eq!(both, vec![200, 200]);
    let s = up.stats();
    assert_eq!(s["max_open"], 1, "never two streams on one connection: {s}");
    assert_eq!(
        s["connections"],
        2 + 1,
        "a second connection (+ the stats one): {s}"
    );

    let up = PyUp::start(&["--max-streams", "1"]);
    let capped = ["--max-upstream-connections", "1", "--upstream-queue", "0"];
    let proxy = proxy_to(up.addr, "h2c", &capped);
    assert_eq!(curl(&proxy, "/sleep/1", false, &[]).0, 200);
    let mut got = concurrently(&proxy, &["/sleep/800", "/sleep/800"]);
    got.sort();
    assert_eq!(
        got,
        vec![200, 503],
        "the second finds the only connection full"
    );

    let up = PyUp::start(&["--max-streams", "1"]);
    let queued = ["--max-upstream-connections", "1", "--upstream-queue", "4"];
    let proxy = proxy_to(up.addr, "h2c", &queued);
    assert_eq!(curl(&proxy, "/sleep/1", false, &[]).0, 200);
    let got = concurrently(&proxy, &["/sleep/300", "/sleep/300"]);
    assert_eq!(got, vec![200, 200], "the second waits for the stream");
    assert_eq!(up.stats()["connections"], 1 + 1);
}

/// A GOAWAY while a stream is in flight: that stream still finishes; new requests go to a new
/// connection.
#[test]
fn goaway_lets_in_flight_finish_and_moves_new_requests() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    assert_eq!(curl(&proxy, "/sleep/1", false, &[]).0, 200);
    let got = concurrently(&proxy, &["/sleep/700", "/goaway"]);
    assert_eq!(got, vec![200, 200], "in-flight finished after the GOAWAY");
    let (status, _) = curl(&proxy, "/info", false, &[]);
    assert_eq!(status, 200);
    let s = up.stats();
    assert_eq!(
        s["connections"],
        2 + 1,
        "a new connection after the GOAWAY: {s}"
    );
    assert_eq!(s["paths"]["/sleep/700"], 1, "not resent: {s}");
}

/// A stream the upstream refused (REFUSED_STREAM) was not processed: a POST is sent again and
/// succeeds (with its body), for both client kinds.
#[test]
fn a_refused_stream_is_resent_even_for_a_post() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let mut c = proxy.connect();
    let r =
        c.exchange(b"POST /refuse-once/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!((r.status, r.text()), (200, "5".to_string()));
    let (status, body) = curl(&proxy, "/refuse-once/b", true, &[]);
    assert_eq!((status, &body[..]), (200, &b"0"[..]));
    let s = up.stats();
    assert_eq!(s["paths"]["/refuse-once/a"], 2, "{s}");
    assert_eq!(s["paths"]["/refuse-once/b"], 2, "{s}");
}

/// An idle upstream connection is PINGed (every quarter of the pool idle timeout, at least 1 s)
/// and closed once it has had no stream for the idle timeout.
#[test]
fn idle_connections_are_pinged_then_closed() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &["--pool-idle-timeout", "4s"]);
    assert_eq!(curl(&proxy, "/info", false, &[]).0, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let pinged = loop {
        let s = up.stats();
        if s["pings"].as_u64().unwrap_or(0) >= 1 {
            break s;
        }
        assert!(Instant::now() < deadline, "no PING: {s}");
        thread::sleep(Duration::from_millis(200));
    };
    assert!(
        !pinged["closed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/info"),
        "closed before its idle timeout: {pinged}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = up.stats();
        if s["closed"].as_array().unwrap().iter().any(|p| p == "/info") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle connection stayed open: {s}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// An upstream connection cut mid-request: that POST gets 502 (never resent: it may have been
/// processed) and counts as the endpoint's failure; the next request opens a new connection and
/// succeeds.
#[test]
fn a_cut_connection_is_a_502_and_the_next_request_reconnects() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    assert_eq!(curl(&proxy, "/info", false, &[]).0, 200);
    // A POST: not resent (the cut stream may have been processed).
    assert_eq!(curl(&proxy, "/die", false, &["-d", "x"]).0, 502);
    assert_eq!(curl(&proxy, "/info", true, &[]).0, 200);
    let s = up.stats();
    assert_eq!(s["paths"]["/die"], 1, "not resent: {s}");
    assert_eq!(
        s["connections"],
        2 + 1,
        "a new connection after the cut (+ stats): {s}"
    );
    let failures = scrape(&proxy).sum("shardgate_upstream_failures_total", &[]);
    assert!(failures >= 1.0, "the cut counted as a failure");
}

/// Requests that arrive while the first connection is being opened wait for it (one connect at
/// a time per endpoint), however small the queue for a full endpoint: a burst of 8 on a fresh
/// proxy with `--upstream-queue 1` all succeed, over one connection.
#[test]
fn a_burst_waits_for_the_single_connect() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &["--upstream-queue", "1"]);
    // Connected first, then sent together: they reach the proxy in the same instant.
    let conns: Vec<Conn> = (0..8).map(|_| proxy.connect()).collect();
    let start = std::sync::Arc::new(std::sync::Barrier::new(conns.len()));
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let start = start.clone();
            thread::spawn(move || {
                c.set_timeout(Duration::from_secs(10));
                start.wait();
                c.exchange(b"GET /sleep/200 HTTP/1.1\r\nHost: t\r\n\r\n")
                    .status
            })
        })
        .collect();
    let got: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, vec![200; 8]);
    assert_eq!(
        up.stats()["connections"],
        1 + 1,
        "one connection (+ the stats one)"
    );
}

/// A route's policies hold over an HTTP/2 cluster as over HTTP/1.1: a retry on 503 goes to the
/// other endpoint, the upstream timeout answers 504, `max_body` answers 413 (chunked HTTP/1.1
/// body and HTTP/2 body without a length), and each request has its access-log line.
#[test]
fn route_policies_hold_over_an_h2c_cluster() {
    let bad = PyUp::start(&["--status", "503"]);
    let good = PyUp::start(&[]);
    let log = support::admin::temp_path("h2up-policies", "log");
    let cfg = temp_file(
        "h2up-policies",
        &format!(
            "listen = [\"127.0.0.1:0\"]\naccess_log = \"{log}\"\n\
             [[listeners]]\naddr = \"127.0.0.1:0\"\nh2c = true\n\
             [[routes]]\nname = \"slow\"\npath_prefix = \"/sleep/\"\n\
             timeouts = {{ upstream = \"300ms\" }}\ncluster = \"good\"\n\
             [[routes]]\nname = \"small\"\npath_prefix = \"/echo\"\nmax_body = 10\ncluster = \"good\"\n\
             [[routes]]\nname = \"status\"\npath = \"/status\"\n\
             retry = {{ attempts = 1, on = [\"503\"] }}\ncluster = \"both\"\n\
             [[clusters]]\nname = \"good\"\nprotocol = \"h2c\"\nendpoints = [\"{g}\"]\n\
             [[clusters]]\nname = \"both\"\nprotocol = \"h2c\"\nlb = \"round-robin\"\n\
             endpoints = [\"{b}\", \"{g}\"]\n",
            log = log.path(),
            g = good.addr,
            b = bad.addr,
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path(), "--shards", "1"]);
    let h2c = proxy.addrs[1];
    for _ in 0..2 {
        let mut c = Conn::connect(h2c);
        let r = c.exchange(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!((r.status, r.text()), (200, "status 200".to_string()));
    }
    let tried = bad.stats()["paths"]["/status"].as_u64().unwrap_or(0);
    assert!(
        tried >= 1,
        "the 503 endpoint was tried (and its answer retried)"
    );
    let mut c = Conn::connect(h2c);
    let r = c.exchange(b"GET /sleep/3000 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 504);
    let mut c = Conn::connect(h2c);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n01234567890123456789\r\n0\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response().unwrap().status, 413);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code}", "-X", "POST", "-T", "-"])
        .arg(format!("http://{h2c}/echo"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin.take().unwrap().write_all(&[b'x'; 100])?;
            ch.wait_with_output()
        })
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(code, "413", "an HTTP/2 body past max_body");
    assert!(
        support::admin::wait_log_lines(std::path::Path::new(log.path()), 5, Duration::from_secs(5))
            .len()
            >= 5,
        "one access-log line per request"
    );
}

/// Health checks of an h2c cluster speak HTTP/2: an endpoint answering 503 on the checked path
/// goes down, one answering 200 stays up (an HTTP/1.1 probe would fail both: the upstream
/// speaks only HTTP/2).
#[test]
fn health_checks_of_an_h2c_cluster_speak_http2() {
    let bad = PyUp::start(&["--status", "503"]);
    let good = PyUp::start(&[]);
    let cfg = temp_file(
        "h2up-health",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n\
             [[clusters]]\nname = \"api\"\nprotocol = \"h2c\"\nendpoints = [\"{b}\", \"{g}\"]\n\
             [clusters.health_check]\ncheck = \"http:/status\"\nexpect = \"200\"\n\
             interval = \"200ms\"\ntimeout = \"1s\"\nfall = 1\nrise = 1\n",
            b = bad.addr,
            g = good.addr,
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path(), "--shards", "1"]);
    let (b, g) = (bad.addr.to_string(), good.addr.to_string());
    let m = support::admin::scrape_until(
        &proxy,
        Duration::from_secs(10),
        "the 503 endpoint down",
        "shardgate_upstream_healthy",
        |m| m.sum("shardgate_upstream_healthy", &[("endpoint", &b)]) == 0.0,
    );
    assert_eq!(
        m.sum("shardgate_upstream_healthy", &[("endpoint", &g)]),
        1.0
    );
    let probes = good.stats()["paths"]["/status"].as_u64().unwrap_or(0);
    assert!(probes >= 1, "the good endpoint was probed over HTTP/2");
    for _ in 0..4 {
        let (status, body) = curl(&proxy, "/status", false, &[]);
        assert_eq!((status, &body[..]), (200, &b"status 200"[..]));
    }
}

/// A drain does not wait for idle upstream HTTP/2 connections: after a request left one open,
/// SIGTERM exits 0 well within the drain deadline; an in-flight stream finishes first.
#[test]
fn drain_finishes_in_flight_streams_and_exits() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    assert_eq!(curl(&proxy, "/info", false, &[]).0, 200);
    let addr = proxy.addr;
    let slow = thread::spawn(move || {
        let mut c = Conn::connect(addr);
        c.set_timeout(Duration::from_secs(10));
        c.exchange(b"GET /sleep/700 HTTP/1.1\r\nHost: t\r\n\r\n")
            .status
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.stats()["paths"]["/sleep/700"].as_u64().unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow request never reached the upstream"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let mut proxy = proxy;
    let t = Instant::now();
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(10));
    assert_eq!(slow.join().unwrap(), 200, "the in-flight stream finished");
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        t.elapsed()
    );
}
