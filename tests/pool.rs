//! The upstream connection pool: idle limits and expiry, detection of connections the upstream
//! closed while pooled, the single retry of an idempotent request that failed on a reused
//! connection, and the per-endpoint connection limit with its wait queue. One shard throughout, so
//! every request meets the same pool.

mod support;

use std::thread;
use std::time::Instant;
use support::*;

/// Sends `req` on a fresh connection in a thread; the handle yields the outcome and its duration.
fn in_thread(
    proxy: &Proxy,
    req: Vec<u8>,
) -> thread::JoinHandle<(Result<Response, String>, std::time::Duration)> {
    let addr = proxy.addr;
    thread::spawn(move || {
        let t = Instant::now();
        let mut c = Conn::connect(addr);
        let r = c
            .send(&req)
            .map_err(|e| e.to_string())
            .and_then(|()| c.read_response().map_err(|e| e.to_string()));
        (r, t.elapsed())
    })
}

#[test]
fn pool_max_idle_closes_surplus_connections() {
    let up = Upstream::slow(ms(300), "slow");
    let proxy = Proxy::to(&[up.addr], &["--shards", "1", "--pool-max-idle", "1"]);
    let clients: Vec<_> = (0..3).map(|_| in_thread(&proxy, get("/"))).collect();
    for h in clients {
        let (r, _) = h.join().unwrap();
        assert_eq!(r.expect("concurrent request").status, 200);
    }
    assert_eq!(
        up.accepted(),
        3,
        "three concurrent requests need three upstream connections"
    );
    up.wait_for(
        "2 of 3 connections closed (--pool-max-idle 1)",
        ms(3000),
        |s| s.peer_closed >= 2,
    );
    // The one idle connection kept is reused.
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&get("/again")).status, 200);
    let seen = up.seen();
    assert_eq!(
        seen.accepted, 3,
        "the idle pooled connection should have been reused"
    );
    assert_eq!(
        seen.peer_closed, 2,
        "more idle connections closed than --pool-max-idle asks"
    );
}

#[test]
fn pool_idle_timeout_closes_idle_connection() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &["--shards", "1", "--pool-idle-timeout", "300ms"],
    );
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&get("/")).status, 200);
    let idle_since = Instant::now();
    up.wait_for("the idle pooled connection to be closed", ms(3000), |s| {
        s.peer_closed == 1
    });
    let waited = idle_since.elapsed();
    assert!(
        waited >= ms(250),
        "idle connection closed after {waited:?}, before --pool-idle-timeout 300ms"
    );
    assert_eq!(c.exchange(&get("/")).status, 200);
    assert_eq!(
        up.accepted(),
        2,
        "a new upstream connection after the idle one expired"
    );
}

/// The upstream answers (without `Connection: close`) and then closes; the proxy must notice before
/// reusing the connection, so neither a GET nor a POST fails.
#[test]
fn connection_closed_by_upstream_while_pooled_is_not_reused() {
    let up = Upstream::close_after_response("fresh");
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    let requests = [
        get("/1"),
        request("POST", "/2", &[], b"post body"),
        get("/3"),
    ];
    for (i, req) in requests.iter().enumerate() {
        let r = c.exchange(req);
        assert_eq!(
            r.status,
            200,
            "request {i} after the pooled connection was closed: {:?}",
            r.text()
        );
        assert_eq!(r.text(), "fresh");
        up.wait_for("the upstream to close its side", ms(2000), |s| {
            s.finished == i + 1
        });
    }
    let seen = up.seen();
    assert_eq!(seen.requests.len(), 3);
    assert_eq!(seen.requests[1].body, b"post body");
    assert_eq!(seen.accepted, 3);
}

/// Connection 0 answers its first request, then takes the second request's bytes and closes
/// (`reset` = with RST) without answering; later connections answer normally.
fn fail_second_request_once(reset: bool) -> Upstream {
    Upstream::start(move |p| {
        let mut n = 0;
        while let Some(req) = p.next_request() {
            n += 1;
            if p.index == 0 && n == 2 {
                if reset {
                    p.reset_on_close();
                }
                return;
            }
            p.write(&response(200, &[], req.target.as_bytes()));
        }
    })
}

fn retried_get(reset: bool) {
    let up = fail_second_request_once(reset);
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&get("/1")).text(), "/1");
    let r = c.exchange(&get("/2"));
    assert_eq!(
        r.status,
        200,
        "GET failing on a reused connection should be retried: {:?}",
        r.text()
    );
    assert_eq!(r.text(), "/2");
    let seen = up.seen();
    let targets: Vec<&str> = seen.requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/1", "/2", "/2"], "one retry of /2");
    assert_eq!(seen.accepted, 2, "the retry goes to a fresh connection");
}

#[test]
fn get_failing_on_reused_connection_is_retried_after_close() {
    retried_get(false);
}

#[test]
fn get_failing_on_reused_connection_is_retried_after_reset() {
    retried_get(true);
}

#[test]
fn post_failing_on_reused_connection_is_not_retried() {
    let up = fail_second_request_once(false);
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&get("/1")).text(), "/1");
    c.send(&request("POST", "/2", &[], b"not idempotent"))
        .unwrap();
    expect_canned_then_close(&mut c, 502, "POST that failed on a reused connection");
    let seen = up.seen();
    let targets: Vec<&str> = seen.requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/1", "/2"], "the POST must not be replayed");
}

#[test]
fn connection_close_from_upstream_is_honoured() {
    let up = Upstream::start(|p| {
        if p.next_request().is_some() {
            p.write(&response(200, &[("Connection", "close")], b"once"));
        }
    });
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    for i in 0..3 {
        let r = c.exchange(&get("/"));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.text(), "once");
    }
    assert_eq!(up.accepted(), 3);
}

#[test]
fn connection_limit_queues_then_rejects() {
    let up = Upstream::slow(ms(1000), "slow");
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--max-upstream-connections",
            "1",
            "--upstream-queue",
            "1",
            "--upstream-queue-timeout",
            "5s",
        ],
    );
    let a = in_thread(&proxy, get("/a"));
    up.wait_for("request /a at the upstream", ms(3000), |s| {
        s.requests.len() == 1
    });
    let b = in_thread(&proxy, get("/b"));
    // Let /b reach the queue (nothing observable marks that moment).
    thread::sleep(ms(250));
    let mut c = proxy.connect();
    let (_, took) = timed(|| {
        c.send(&get("/c")).unwrap();
        expect_canned_then_close(
            &mut c,
            503,
            "third request with 1 connection + 1 queue slot busy",
        )
    });
    assert!(
        took < ms(600),
        "the 503 should come at once, not after {took:?}"
    );
    let (ra, _) = a.join().unwrap();
    let (rb, tb) = b.join().unwrap();
    assert_eq!(ra.expect("/a").text(), "slow");
    assert_eq!(rb.expect("queued /b").text(), "slow");
    assert!(
        tb >= ms(1200),
        "queued /b answered after {tb:?}: it cannot have waited for /a"
    );
    let seen = up.seen();
    assert_eq!(seen.accepted, 1, "--max-upstream-connections 1");
    let targets: Vec<&str> = seen.requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/a", "/b"]);
}

#[test]
fn queue_timeout_gives_503() {
    let up = Upstream::slow(ms(2000), "slow");
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--max-upstream-connections",
            "1",
            "--upstream-queue",
            "1",
            "--upstream-queue-timeout",
            "300ms",
        ],
    );
    let a = in_thread(&proxy, get("/a"));
    up.wait_for("request /a at the upstream", ms(3000), |s| {
        s.requests.len() == 1
    });
    let mut c = proxy.connect();
    let (_, took) = timed(|| {
        c.send(&get("/b")).unwrap();
        expect_canned_then_close(&mut c, 503, "queued request past --upstream-queue-timeout")
    });
    assert!(
        took >= ms(250) && took < ms(1500),
        "503 after {took:?}, want about 300ms"
    );
    assert_eq!(a.join().unwrap().0.expect("/a").status, 200);
    assert_eq!(up.request_count(), 1);
}
