//! Timeouts on both sides: slow client heads (408), idle keep-alive clients (silent close),
//! unreachable upstreams (502 refused, 504 connect timeout), silent upstreams (504), and stalled
//! bodies in either direction. Each waits just past a short configured timeout, then asserts.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;
use support::sys::Blackhole;
use support::*;

#[test]
fn slowloris_head_gets_408() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--header-timeout", "300ms"]);
    let mut c = proxy.connect();
    let (_, took) = timed(|| {
        c.send(b"GET / HTTP/1.1\r\nHost: shardgate.test\r\nX-Half: ")
            .unwrap();
        expect_canned_then_close(&mut c, 408, "half a head, then silence")
    });
    assert!(
        took >= ms(250) && took < ms(3000),
        "408 after {took:?}, want about 300ms"
    );
    assert_eq!(
        up.bytes_total(),
        0,
        "the upstream must not see a partial head"
    );
}

/// The header timeout bounds the whole head, not each read: a byte every 100 ms does not extend it.
#[test]
fn header_timeout_is_not_reset_by_trickling_bytes() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--header-timeout", "300ms"]);
    let mut c = proxy.connect();
    let mut writer = c.stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_writer = stop.clone();
    let trickle = thread::spawn(move || {
        let head = b"GET / HTTP/1.1\r\nHost: shardgate.test\r\nX-Trickle: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in head {
            if stop_writer.load(Ordering::SeqCst) || writer.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(ms(100));
        }
    });
    let (_, took) =
        timed(|| expect_canned_then_close(&mut c, 408, "a head trickled a byte every 100ms"));
    stop.store(true, Ordering::SeqCst);
    trickle.join().unwrap();
    assert!(
        took < ms(1500),
        "408 after {took:?}: the trickled bytes extended the 300ms header timeout"
    );
}

#[test]
fn idle_keepalive_client_closed_without_response() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--idle-timeout", "300ms"]);
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&get("/")).status, 200);
    let idle_since = Instant::now();
    c.expect_closed(ms(3000))
        .expect("idle keep-alive connection closed silently");
    let waited = idle_since.elapsed();
    assert!(
        waited >= ms(250),
        "closed after {waited:?}, before --idle-timeout 300ms"
    );
}

#[test]
fn upstream_connect_refused_is_502_quickly() {
    let proxy = Proxy::to(&[refused_addr()], &[]);
    let mut c = proxy.connect();
    let (_, took) = timed(|| {
        c.send(&get("/")).unwrap();
        expect_canned_then_close(&mut c, 502, "upstream refuses connections")
    });
    assert!(took < ms(1000), "502 took {took:?}");
}

/// A loopback listener with a full accept queue never answers the SYN: the connect times out.
#[test]
fn upstream_connect_timeout_is_504() {
    let hole = Blackhole::new();
    let proxy = Proxy::to(&[hole.addr], &["--connect-timeout", "300ms"]);
    let mut c = proxy.connect();
    let (_, took) = timed(|| {
        c.send(&get("/")).unwrap();
        expect_canned_then_close(&mut c, 504, "upstream connect never completes")
    });
    assert!(
        took >= ms(250) && took < ms(3000),
        "504 after {took:?}, want about 300ms"
    );
}

#[test]
fn upstream_response_timeout_is_504() {
    let up = Upstream::hang();
    let proxy = Proxy::to(&[up.addr], &["--upstream-timeout", "300ms"]);
    let mut c = proxy.connect();
    let (_, took) = timed(|| {
        c.send(&get("/")).unwrap();
        expect_canned_then_close(&mut c, 504, "upstream never answers")
    });
    assert!(
        took >= ms(250) && took < ms(3000),
        "504 after {took:?}, want about 300ms"
    );
    up.wait_for(
        "the proxy to drop the hung upstream connection",
        ms(3000),
        |s| s.peer_closed == 1,
    );
}

/// The client stops sending in the middle of a request body: after --body-timeout the proxy gives
/// up on both sides (a 408 or a plain close for the client, a close for the upstream).
#[test]
fn client_body_stall_times_out() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--body-timeout", "300ms"]);
    let mut c = proxy.connect();
    let start = Instant::now();
    c.send(b"POST / HTTP/1.1\r\nHost: shardgate.test\r\nContent-Length: 100\r\n\r\nonly ten b")
        .unwrap();
    c.set_timeout(ms(3000));
    match c.read_response() {
        Ok(r) => {
            assert_canned(&r, 408, "request body stalled");
            c.expect_closed(ms(3000)).expect("closed after the 408");
        }
        Err(e) => assert!(
            e.is_disconnect() && e.got() == 0,
            "expected a 408 or a close, got {e}"
        ),
    }
    let took = start.elapsed();
    assert!(
        took >= ms(250) && took < ms(3000),
        "gave up after {took:?}, want about 300ms"
    );
    assert_eq!(
        up.request_count(),
        0,
        "the upstream must not see a complete request"
    );
    if up.accepted() > 0 {
        up.wait_for(
            "the upstream connection with a partial body to be closed",
            ms(3000),
            |s| s.peer_closed == 1,
        );
    }
}

/// The upstream stops in the middle of a response body: after --body-timeout the client connection
/// is closed (a truncated response, never a hang).
#[test]
fn upstream_body_stall_times_out() {
    let up = Upstream::start(|p| {
        if p.next_request().is_some() {
            p.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b");
            p.wait_close();
        }
    });
    let proxy = Proxy::to(&[up.addr], &["--body-timeout", "300ms"]);
    let mut c = proxy.connect();
    c.send(&get("/")).unwrap();
    c.set_timeout(ms(3000));
    let start = Instant::now();
    let err = c
        .read_response()
        .expect_err("a 100-byte body with 10 bytes sent cannot complete");
    let took = start.elapsed();
    assert!(
        err.is_disconnect(),
        "expected the client connection closed, got {err}"
    );
    assert!(
        took >= ms(250) && took < ms(3000),
        "closed after {took:?}, want about 300ms"
    );
    up.wait_for(
        "the stalled upstream connection to be closed",
        ms(3000),
        |s| s.peer_closed == 1,
    );
}
