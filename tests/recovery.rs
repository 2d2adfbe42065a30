//! Recovery after an upstream returns: a health verdict turning healthy closes the endpoint's
//! breakers and lifts its outlier ejections on every shard, so traffic flows again with the health
//! check instead of after the breaker's open timeout; and `shardgate_upstream_breaker_state`
//! reports the state as of the scrape (an Open breaker past its timeout is half-open).

#[path = "support/revive.rs"]
mod revive;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use revive::Revivable;
use support::policy::*;
use support::*;

fn config(ep: SocketAddr, breaker: &str, health: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n[[clusters]]\nname = \"web\"\nendpoints = [\"{ep}\"]\n\
         failure_statuses = [502, 503]\n[clusters.breaker]\n{breaker}\n{health}\n"
    )
}

fn gauge(m: &Metrics, name: &str, ep: SocketAddr) -> f64 {
    m.one(name, &[("endpoint", &ep.to_string())])
}

#[test]
fn a_passing_health_check_closes_the_breaker_long_before_its_open_timeout() {
    let mut up = Revivable::start("web");
    let open_timeout = Duration::from_secs(30);
    let file = temp_file(
        "recovery",
        &config(
            up.addr,
            "failures = 1\nopen_timeout = \"30s\"",
            "[clusters.health_check]\ncheck = \"http:/hc\"\ninterval = \"100ms\"\n\
             timeout = \"200ms\"\nfall = 3\nrise = 1",
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "2"]);
    assert_eq!(fetch(proxy.addr, &get("/")).text(), "web");

    // Dies: the next request fails (refused), which opens that shard's breaker at once; the
    // health check needs three failed probes to mark it down.
    up.kill();
    let r = fetch(proxy.addr, &get("/down"));
    assert!(matches!(r.status, 502 | 503), "{} {}", r.status, r.text());
    let ep = up.addr;
    scrape_until(
        &proxy,
        Duration::from_secs(5),
        "breaker open and endpoint unhealthy",
        "shardgate_upstream",
        |m| {
            gauge(m, "shardgate_upstream_breaker_state", ep) == 1.0
                && gauge(m, "shardgate_upstream_healthy", ep) == 0.0
        },
    );
    let hits = up.hits();

    // Returns: one good probe (rise = 1) marks it healthy on every shard, and that closes the
    // breaker, though its 30 s open timeout is far from over.
    let back = Instant::now();
    up.revive();
    let m = scrape_until(
        &proxy,
        Duration::from_secs(5),
        "healthy with the breaker closed",
        "shardgate_upstream",
        |m| {
            gauge(m, "shardgate_upstream_healthy", ep) == 1.0
                && gauge(m, "shardgate_upstream_breaker_state", ep) == 0.0
        },
    );
    let closed = m.sum(
        "shardgate_upstream_breaker_transitions_total",
        &[("endpoint", &ep.to_string()), ("to", "closed")],
    );
    assert!(closed >= 1.0, "the breaker closed: {closed}");
    // Every shard sends to it again (new connections spread over both shards).
    for i in 0..8 {
        let r = fetch(proxy.addr, &get(&format!("/back/{i}")));
        assert_eq!(
            (r.status, r.text()),
            (200, "web".to_string()),
            "request {i}"
        );
    }
    assert_eq!(up.hits(), hits + 8, "every request reached the upstream");
    let took = back.elapsed();
    assert!(
        took < open_timeout / 3,
        "traffic back {took:?} after the upstream, open timeout {open_timeout:?}"
    );
}

#[test]
fn an_open_breaker_past_its_timeout_is_scraped_as_half_open() {
    let bad = Backend::with_status("bad", 503);
    let open_timeout = Duration::from_millis(400);
    let file = temp_file(
        "recovery-scrape",
        &config(bad.addr, "failures = 1\nopen_timeout = \"400ms\"", ""),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    assert_eq!(fetch(proxy.addr, &get("/")).status, 503);
    let failed = bad.events()[0].at;
    let m = scrape(&proxy);
    if failed.elapsed() < open_timeout {
        assert_eq!(
            gauge(&m, "shardgate_upstream_breaker_state", bad.addr),
            1.0,
            "open within its timeout"
        );
    }
    // No request arrives; the scrape alone reports the expired Open as half-open.
    let m = scrape_until(
        &proxy,
        Duration::from_secs(5),
        "breaker state 2 (half-open)",
        "shardgate_upstream_breaker",
        |m| gauge(m, "shardgate_upstream_breaker_state", bad.addr) == 2.0,
    );
    assert!(
        failed.elapsed() >= open_timeout,
        "half-open before the open timeout"
    );
    let ep = bad.addr.to_string();
    let shards = |state| {
        m.one(
            "shardgate_upstream_breaker_shards",
            &[("endpoint", &ep), ("state", state)],
        )
    };
    assert_eq!((shards("open"), shards("half_open")), (0.0, 1.0));
    let half_opened = m.sum(
        "shardgate_upstream_breaker_transitions_total",
        &[("endpoint", &ep), ("to", "half_open")],
    );
    assert_eq!(half_opened, 0.0, "the scrape does not move the breaker");
    // The next request is let through as the probe, as the scrape said.
    assert_eq!(fetch(proxy.addr, &get("/probe")).status, 503);
    assert_eq!(bad.hits(), 2, "the probe reached the upstream");
}
