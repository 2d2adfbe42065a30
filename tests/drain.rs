//! Graceful drain on SIGTERM: in-flight requests finish (their keep-alive responses say
//! `Connection: close`), new connections are refused, progress lines while it lasts, exit 0 when
//! drained, 1 past --drain-timeout or on a second signal. And a drain under load loses no request.

mod support;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Instant;
use support::*;

fn keepalive_get(
    addr: SocketAddr,
    path: &'static str,
) -> thread::JoinHandle<(Response, Result<(), String>)> {
    thread::spawn(move || {
        let mut c = Conn::connect(addr);
        let r = c.exchange(&get(path));
        let closed = c.expect_closed(ms(3000));
        (r, closed)
    })
}

/// Every check of the story is made and reported together, so one run shows all that is wrong.
#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let up = Upstream::slow(ms(1500), "slow answer");
    let mut proxy = Proxy::to(&[up.addr], &["--shards", "2"]);
    let clients: Vec<_> = ["/1", "/2", "/3"]
        .iter()
        .map(|p| keepalive_get(proxy.addr, p))
        .collect();
    up.wait_for("3 requests in flight", ms(3000), |s| s.requests.len() == 3);
    let signalled = Instant::now();
    proxy.sigterm();
    let mut failures = Vec::new();

    thread::sleep(ms(300));
    match TcpStream::connect_timeout(&proxy.addr, ms(500)) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        other => failures.push(format!(
            "a new connection 300ms into the drain was not refused: {other:?}"
        )),
    }

    for (i, h) in clients.into_iter().enumerate() {
        let (r, closed) = match h.join() {
            Ok(x) => x,
            Err(_) => {
                failures.push(format!(
                    "client {i}: no complete response (see its panic above)"
                ));
                continue;
            }
        };
        if r.status != 200 || r.text() != "slow answer" {
            failures.push(format!("client {i}: got {} {:?}", r.status, r.text()));
        }
        if !r.head.has_token("connection", "close") {
            failures.push(format!(
                "client {i}: a keep-alive response during the drain lacks Connection: close: {:?}",
                r.head.headers
            ));
        }
        if let Err(e) = closed {
            failures.push(format!("client {i}: after its last response: {e}"));
        }
    }
    match proxy.wait_exit(ms(5000)) {
        Some(st) if st.code() == Some(0) => {}
        other => failures.push(format!("exit status {other:?}, want 0")),
    }
    if signalled.elapsed() < ms(1000) {
        failures.push("the drain ended before the upstream answered".into());
    }
    match proxy.stderr.wait(ms(1000), |l| l.starts_with("draining:")) {
        None => failures.push("no `draining:` line in a 1.5 s drain".into()),
        Some(l) => {
            if !(l.starts_with("draining: shard 0: ")
                && l.contains("connections")
                && l.contains("requests"))
            {
                failures.push(format!("progress line format: {l:?}"));
            }
        }
    }
    if proxy.stderr.wait(ms(1000), |l| l == "drained").is_none() {
        failures.push("no `drained` line".into());
    }
    assert!(
        failures.is_empty(),
        "drain with 3 requests in flight:\n{}\nstderr: {:?}",
        failures.join("\n"),
        proxy.stderr_lines()
    );
}

#[test]
fn drain_deadline_exits_1() {
    let up = Upstream::hang();
    let mut proxy = Proxy::to(&[up.addr], &["--drain-timeout", "500ms"]);
    let mut c = proxy.connect();
    c.send(&get("/hangs")).unwrap();
    up.wait_for("the request in flight", ms(3000), |s| s.requests.len() == 1);
    let signalled = Instant::now();
    proxy.sigterm();
    let status = proxy
        .wait_exit(ms(4000))
        .expect("exit after --drain-timeout 500ms");
    let took = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(1),
        "exit status after the drain deadline"
    );
    assert!(
        took >= ms(400),
        "exited after {took:?}, before the 500ms drain deadline"
    );
    let line = proxy
        .wait_stderr(ms(1000), "drain deadline passed: ")
        .unwrap_or_else(|| {
            panic!(
                "no `drain deadline passed:` line: {:?}",
                proxy.stderr_lines()
            )
        });
    let left: usize = line
        .trim_start_matches("drain deadline passed: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    assert!(left >= 1, "{line:?}: one connection was still in flight");
}

/// A keep-alive connection idle when the drain starts is not closed under its client at once:
/// a request it sends within `--drain-idle-grace` is answered (with `Connection: close`); one
/// that stays idle for the grace is closed then, and the drain ends.
#[test]
fn an_idle_connection_that_sends_within_the_grace_is_answered_and_one_that_does_not_closes() {
    let up = Upstream::fixed("ok");
    let mut proxy = Proxy::to(
        &[up.addr],
        &["--drain-idle-grace", "1500ms", "--shards", "1"],
    );
    let mut busy = proxy.connect();
    assert_eq!(busy.exchange(&get("/")).status, 200);
    let mut quiet = proxy.connect();
    assert_eq!(quiet.exchange(&get("/")).status, 200);
    let signalled = Instant::now();
    proxy.sigterm();
    // The one shard is draining once its listener refuses new connections.
    let deadline = Instant::now() + ms(2000);
    while std::net::TcpStream::connect(proxy.addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the shard never closed its listener"
        );
        std::thread::sleep(ms(5));
    }
    let r = busy.exchange(&get("/again"));
    assert!(signalled.elapsed() < ms(1500), "sent within the grace");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "ok"),
        "answered during the drain"
    );
    assert_eq!(
        r.header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("close")
    );
    quiet
        .expect_closed(ms(4000))
        .expect("the connection idle all along is closed after the grace");
    assert!(
        signalled.elapsed() >= ms(1400),
        "closed after {:?}, before the grace",
        signalled.elapsed()
    );
    assert_eq!(proxy.wait_exit(ms(5000)).expect("exit").code(), Some(0));
}

#[test]
fn second_sigterm_exits_at_once() {
    let up = Upstream::hang();
    let mut proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    c.send(&get("/hangs")).unwrap();
    up.wait_for("the request in flight", ms(3000), |s| s.requests.len() == 1);
    proxy.sigterm();
    // Let the first signal take effect: its first progress line shows the drain is running (and
    // 2.5 s is ample even if progress lines were missing).
    let _ = proxy.stderr.wait(ms(2500), |l| l.starts_with("draining:"));
    let (status, took) = timed(|| {
        proxy.sigterm();
        proxy.wait_exit(ms(3000))
    });
    let status = status.expect("exit on the second SIGTERM");
    assert_eq!(status.code(), Some(1));
    assert!(
        took < ms(1000),
        "the second SIGTERM took {took:?} to end the process"
    );
}

#[test]
fn idle_connections_closed_and_drain_completes() {
    let up = Upstream::fixed("ok");
    let mut proxy = Proxy::to(&[up.addr], &[]);
    let mut idle = proxy.connect();
    assert_eq!(idle.exchange(&get("/")).status, 200);
    let (status, took) = timed(|| {
        proxy.sigterm();
        proxy.wait_exit(ms(5000))
    });
    assert_eq!(status.expect("exit").code(), Some(0));
    assert!(
        took < ms(3000),
        "an idle keep-alive connection held the drain for {took:?}"
    );
    idle.expect_closed(ms(1000))
        .expect("idle connection closed by the drain");
}

/// What happened to one request in the load test.
#[derive(Debug)]
enum Outcome {
    Complete(u16),
    /// The connection closed before any response byte (the request may never have been read).
    ClosedBeforeResponse,
    /// Some bytes of the response, then close, reset or timeout (the text is for the failure
    /// message, printed through Debug).
    Broken(#[allow(dead_code)] String),
}

#[test]
fn drain_under_load_loses_no_request() {
    let up = Upstream::slow(ms(15), &"x".repeat(4000));
    let mut proxy = Proxy::to(&[up.addr], &["--shards", "2"]);
    let addr = proxy.addr;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            thread::spawn(move || {
                let mut log: Vec<(String, Outcome)> = Vec::new();
                let deadline = Instant::now() + ms(6000);
                let mut n = 0;
                'connections: while Instant::now() < deadline {
                    let mut c = match TcpStream::connect_timeout(&addr, ms(500)) {
                        Ok(s) => Conn::new(s),
                        Err(_) => break,
                    };
                    c.set_timeout(ms(3000));
                    while Instant::now() < deadline {
                        n += 1;
                        let seq = format!("{w}-{n}");
                        let req =
                            request("GET", &format!("/{seq}"), &[&format!("X-Seq: {seq}")], b"");
                        if c.send(&req).is_err() {
                            log.push((seq, Outcome::ClosedBeforeResponse));
                            continue 'connections;
                        }
                        match c.read_response() {
                            Ok(r) => {
                                let close = r.head.has_token("connection", "close");
                                let ok = r.body.len() == 4000;
                                log.push((
                                    seq,
                                    if ok {
                                        Outcome::Complete(r.status)
                                    } else {
                                        Outcome::Broken(format!("{} bytes", r.body.len()))
                                    },
                                ));
                                if close {
                                    continue 'connections;
                                }
                            }
                            Err(e) if e.is_disconnect() && e.got() == 0 => {
                                log.push((seq, Outcome::ClosedBeforeResponse));
                                continue 'connections;
                            }
                            Err(e) => {
                                log.push((seq, Outcome::Broken(e.to_string())));
                                continue 'connections;
                            }
                        }
                    }
                }
                log
            })
        })
        .collect();
    up.wait_for("load to build up", ms(3000), |s| s.requests.len() >= 40);
    proxy.sigterm();
    let status = proxy.wait_exit(ms(6000)).expect("exit after the drain");
    let outcomes: HashMap<String, Outcome> = workers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(status.code(), Some(0), "drained exit status");

    let broken: Vec<_> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Broken(_)))
        .collect();
    assert!(
        broken.is_empty(),
        "truncated or failed responses: {broken:?}"
    );
    let seen = up.seen();
    let mut lost = Vec::new();
    for req in &seen.requests {
        let seq = req.header("x-seq").unwrap_or("?").to_string();
        match outcomes.get(&seq) {
            Some(Outcome::Complete(200)) => {}
            other => lost.push(format!("{seq}: upstream got it, client saw {other:?}")),
        }
    }
    assert!(
        lost.is_empty(),
        "requests lost mid-way:\n{}",
        lost.join("\n")
    );
    let complete = outcomes
        .values()
        .filter(|o| matches!(o, Outcome::Complete(_)))
        .count();
    let unanswered = outcomes.len() - complete;
    eprintln!(
        "drain under load: {complete} complete, {unanswered} closed before a response, \
         {} reached the upstream",
        seen.requests.len()
    );
    assert!(complete >= 40, "only {complete} complete responses");
}

/// A connection still in the listen queue when the drain starts is accepted and its first
/// request answered (with `Connection: close`), not closed unread.
#[test]
fn a_queued_connection_gets_its_request_answered() {
    let up = Upstream::slow(ms(600), "slow");
    let mut proxy = Proxy::to(&[up.addr], &["--shards", "1", "--max-connections", "1"]);
    // The only slot: a request in flight until the upstream answers.
    let busy = keepalive_get(proxy.addr, "/busy");
    up.wait_for("the busy request", ms(3000), |s| s.requests.len() == 1);
    // The next connection waits in the kernel's queue (the shard is at max-connections).
    let mut queued = Conn::connect(proxy.addr);
    queued.send(&get("/queued")).unwrap();
    proxy.sigterm();
    let r = queued
        .read_response()
        .expect("the queued connection's request is answered");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "answered during a drain: Connection: close"
    );
    let (first, closed) = busy.join().unwrap();
    assert_eq!(first.status, 200);
    assert!(closed.is_ok());
    assert_eq!(
        proxy.wait_exit(ms(5000)).and_then(|s| s.code()),
        Some(0),
        "{:?}",
        proxy.stderr_lines()
    );
}
