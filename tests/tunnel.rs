//! Tunnels (a WebSocket after a 101) have an idle timeout (`--tunnel-idle-timeout`, a route's
//! `tunnel_idle_timeout`), count in the drain's progress lines and in
//! `shardgate_downstream_connections{state="tunnel"}`, and a drain closes them once in-flight
//! requests have finished (or after `--tunnel-drain-grace`), so it exits 0 before its deadline.

mod support;

use std::thread;
use std::time::{Duration, Instant};
use support::*;

const UPGRADE_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: shardgate.test\r\nConnection: Upgrade\r\n\
Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// WebSocket requests get a 101 and an echo of every byte (a note when the proxy closes the
/// tunnel); any other request is answered after `slow`.
fn ws_or_slow(slow: Duration) -> Upstream {
    Upstream::start(move |p| {
        let Some(req) = p.next_request() else { return };
        if !req.head.has_token("upgrade", "websocket") {
            thread::sleep(slow);
            p.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
            p.wait_close();
            return;
        }
        p.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        p.conn.set_timeout(Duration::from_secs(30));
        loop {
            match p.conn.read_raw(1) {
                Ok(b) => {
                    if !p.write(&b) {
                        return;
                    }
                }
                Err(_) => {
                    p.note("tunnel closed".into());
                    return;
                }
            }
        }
    })
}

fn open_tunnel(proxy: &Proxy) -> Conn {
    let mut ws = proxy.connect();
    ws.send(UPGRADE_REQUEST).unwrap();
    assert_eq!(ws.read_response().expect("101").status, 101);
    ws.send(b"a").unwrap();
    assert_eq!(ws.read_raw(1).expect("echo"), b"a");
    ws
}

#[test]
fn idle_tunnel_is_closed_and_traffic_keeps_it_open() {
    let up = ws_or_slow(ms(0));
    let proxy = Proxy::to(
        &[up.addr],
        &["--shards", "1", "--tunnel-idle-timeout", "400ms"],
    );
    let mut ws = open_tunnel(&proxy);
    // A byte every 150 ms for 1 s: never idle for 400 ms, so the tunnel stays.
    let busy = Instant::now();
    while busy.elapsed() < ms(1000) {
        thread::sleep(ms(150));
        ws.send(b"b").unwrap();
        assert_eq!(ws.read_raw(1).expect("echo while busy"), b"b");
    }
    let quiet = Instant::now();
    ws.expect_closed(ms(3000))
        .expect("an idle tunnel is closed after --tunnel-idle-timeout");
    let took = quiet.elapsed();
    assert!(
        took >= ms(350),
        "closed {took:?} after the last byte, before it was idle 400 ms"
    );
    up.wait_for(
        "the upstream side of the tunnel to close too",
        ms(3000),
        |s| s.notes.iter().any(|n| n == "tunnel closed"),
    );
}

#[test]
fn route_key_sets_the_tunnel_idle_timeout() {
    let up = ws_or_slow(ms(0));
    let cfg = temp_file(
        "tunnel-route",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n\n[[routes]]\ncluster = \"default\"\ntunnel_idle_timeout = \"300ms\"\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path(), "--shards", "1"]);
    let mut ws = open_tunnel(&proxy);
    ws.expect_closed(ms(3000))
        .expect("the route's tunnel_idle_timeout closes the idle tunnel");
    let bad = temp_file(
        "tunnel-bad",
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n\n[[routes]]\ncluster = \"default\"\ntunnel_idle_timeout = \"0s\"\n",
    );
    let run = support::run(&["--config", bad.path(), "--check"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(":6:") && run.stderr.contains("routes[0].tunnel_idle_timeout"),
        "{}",
        run.stderr
    );
}

/// With no request in flight, a drain closes the open tunnel at once and exits 0, long before
/// its deadline; the metric counted the tunnel while it was open.
#[test]
fn drain_closes_an_open_tunnel_and_exits_0() {
    let up = ws_or_slow(ms(0));
    let mut proxy = Proxy::to(&[up.addr], &["--shards", "1", "--drain-timeout", "20s"]);
    let mut ws = open_tunnel(&proxy);
    scrape_until(
        &proxy,
        ms(3000),
        "one tunnel",
        "shardgate_downstream",
        |m| m.sum("shardgate_downstream_connections", &[("state", "tunnel")]) == 1.0,
    );
    let signalled = Instant::now();
    proxy.sigterm();
    ws.expect_closed(ms(5000))
        .expect("the drain closes the tunnel");
    let st = proxy.wait_exit(ms(10_000)).expect("exit after the drain");
    assert_eq!(st.code(), Some(0), "stderr: {:?}", proxy.stderr_lines());
    let took = signalled.elapsed();
    assert!(
        took < ms(5000),
        "the drain took {took:?} with only a tunnel open"
    );
    up.wait_for("the upstream side to close", ms(3000), |s| {
        s.notes.iter().any(|n| n == "tunnel closed")
    });
}

/// A request in flight keeps the drain going: the progress line counts the tunnel, which is
/// closed as soon as the request has finished; the drain exits 0.
#[test]
fn drain_progress_counts_tunnels_until_requests_finish() {
    let up = ws_or_slow(ms(2500));
    let mut proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--drain-timeout",
            "20s",
            "--tunnel-drain-grace",
            "20s",
        ],
    );
    let mut ws = open_tunnel(&proxy);
    let addr = proxy.addr;
    let slow = thread::spawn(move || Conn::connect(addr).exchange(&get("/slow")));
    up.wait_for("the slow request upstream", ms(3000), |s| {
        s.requests.len() == 2
    });
    proxy.sigterm();
    let line = proxy
        .stderr
        .wait(ms(3000), |l| l.starts_with("draining:"))
        .expect("a progress line");
    assert_eq!(
        line,
        "draining: shard 0: 2 connections, 1 requests, 1 tunnels"
    );
    // The tunnel still carries bytes while the request is in flight.
    ws.send(b"c").unwrap();
    assert_eq!(ws.read_raw(1).expect("echo during the drain"), b"c");
    let r = slow.join().expect("the slow request's answer");
    assert_eq!((r.status, r.text()), (200, "slow".to_string()));
    ws.expect_closed(ms(3000))
        .expect("the tunnel closes once the request has finished");
    let st = proxy.wait_exit(ms(10_000)).expect("exit after the drain");
    assert_eq!(st.code(), Some(0), "stderr: {:?}", proxy.stderr_lines());
}

/// `--tunnel-drain-grace` bounds how long a tunnel outlives the start of a drain, even while
/// requests are still in flight.
#[test]
fn tunnel_drain_grace_closes_tunnels_while_requests_run() {
    let up = ws_or_slow(ms(4000));
    let mut proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--drain-timeout",
            "20s",
            "--tunnel-drain-grace",
            "300ms",
        ],
    );
    let mut ws = open_tunnel(&proxy);
    let addr = proxy.addr;
    let slow = thread::spawn(move || Conn::connect(addr).exchange(&get("/slow")));
    up.wait_for("the slow request upstream", ms(3000), |s| {
        s.requests.len() == 2
    });
    let signalled = Instant::now();
    proxy.sigterm();
    ws.expect_closed(ms(3000))
        .expect("the grace closes the tunnel while the request runs");
    let took = signalled.elapsed();
    assert!(took < ms(3000), "the tunnel lasted {took:?} into the drain");
    let r = slow.join().expect("the slow request's answer");
    assert_eq!(r.status, 200, "the in-flight request still finishes");
    let st = proxy.wait_exit(ms(10_000)).expect("exit after the drain");
    assert_eq!(st.code(), Some(0), "stderr: {:?}", proxy.stderr_lines());
}
