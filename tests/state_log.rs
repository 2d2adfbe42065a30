//! Endpoint state changes on stderr, written by the coordinator: an upstream that dies and returns
//! gives `breaker open`, `unhealthy`, `healthy`, `breaker closed` in that order, one line each; a
//! flapping endpoint gets two lines at once, then at most one a second per kind, and
//! `N more ... suppressed` for the rest.

#[path = "support/revive.rs"]
mod revive;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use revive::Revivable;
use support::policy::*;
use support::*;

fn config(ep: SocketAddr, interval: &str, fall: u32) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n[[clusters]]\nname = \"web\"\nendpoints = [\"{ep}\"]\n\
         [clusters.breaker]\nfailures = 1\nopen_timeout = \"30s\"\n\
         [clusters.health_check]\ncheck = \"http:/hc\"\ninterval = \"{interval}\"\n\
         timeout = \"200ms\"\nfall = {fall}\nrise = 1\n"
    )
}

/// The state-change lines about `ep`, in the order they were written.
fn lines_about(proxy: &Proxy, ep: SocketAddr) -> Vec<String> {
    let prefix = format!("upstream web {ep}: ");
    proxy
        .stderr_lines()
        .into_iter()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

fn wait_line(proxy: &Proxy, ep: SocketAddr, text: &str) -> String {
    let line = format!("upstream web {ep}: {text}");
    proxy
        .wait_stderr(Duration::from_secs(5), &line)
        .unwrap_or_else(|| panic!("no {line:?} on stderr: {:?}", proxy.stderr_lines()))
}

#[test]
fn an_upstream_that_dies_and_returns_is_logged_in_order() {
    let mut up = Revivable::start("web");
    let file = temp_file("state-log", &config(up.addr, "100ms", 3));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "2"]);
    assert_eq!(fetch(proxy.addr, &get("/")).status, 200);
    assert!(
        lines_about(&proxy, up.addr).is_empty(),
        "nothing changed yet"
    );

    // Dies: a request fails at once (the breaker opens on the shard that took it); the health
    // check marks it down after three failed probes.
    up.kill();
    let r = fetch(proxy.addr, &get("/down"));
    assert!(matches!(r.status, 502 | 503), "{}", r.status);
    let open = wait_line(&proxy, up.addr, "breaker open on shard ");
    let shard = open.rsplit(' ').next().unwrap().to_string();
    wait_line(&proxy, up.addr, "unhealthy (health check failed)");

    // Returns: healthy, and that closes the breaker.
    up.revive();
    wait_line(&proxy, up.addr, "breaker closed on shard ");
    assert_eq!(fetch(proxy.addr, &get("/back")).status, 200);
    assert_eq!(
        lines_about(&proxy, up.addr),
        [
            format!("breaker open on shard {shard}"),
            "unhealthy (health check failed)".to_string(),
            "healthy (health check passed)".to_string(),
            format!("breaker closed on shard {shard}"),
        ]
    );
    // Proxied requests added no line.
    for i in 0..5 {
        assert_eq!(fetch(proxy.addr, &get(&format!("/{i}"))).status, 200);
    }
    assert_eq!(lines_about(&proxy, up.addr).len(), 4);
}

/// `(changes written, changes counted in summary lines, last state a summary named)`.
fn health_counts(lines: &[String]) -> (usize, usize, Option<String>) {
    let (mut written, mut suppressed, mut last) = (0, 0, None);
    for l in lines {
        if l.starts_with("healthy (") || l.starts_with("unhealthy (") {
            written += 1;
        } else if let Some((n, rest)) = l.split_once(" more health changes suppressed (last: ") {
            suppressed += n.parse::<usize>().unwrap();
            last = Some(rest.trim_end_matches(')').to_string());
        }
    }
    (written, suppressed, last)
}

#[test]
fn a_flapping_endpoint_is_rate_limited_with_a_count_of_what_was_suppressed() {
    let b = Backend::start("b");
    let file = temp_file("state-log-flap", &config(b.addr, "30ms", 1));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    // Ten changes: each waits until a probe got the new status (fall = rise = 1, so that probe's
    // verdict is the change).
    const CHANGES: usize = 10;
    let started = Instant::now();
    for i in 0..CHANGES {
        let status = if i % 2 == 0 { 500 } else { 200 };
        let seen = b.probes();
        b.set_health(status);
        poll(
            Duration::from_secs(5),
            "a probe with the new status",
            || {
                b.events()
                    .iter()
                    .filter(|e| e.probe)
                    .skip(seen)
                    .any(|e| e.status == status)
                    .then_some(())
            },
        );
    }
    let took = started.elapsed();
    // Every change is either written or counted; the count lines come within a second.
    let lines = poll(Duration::from_secs(5), "every change accounted for", || {
        let lines = lines_about(&proxy, b.addr);
        let (written, suppressed, _) = health_counts(&lines);
        (written + suppressed == CHANGES).then_some(lines)
    });
    let (written, suppressed, last) = health_counts(&lines);
    // Two at once, then one a second (a count line takes its turn too).
    assert!(
        written as u64 <= (took + Duration::from_millis(100)).as_secs() + 2,
        "{written} lines written in {took:?}: {lines:#?}"
    );
    assert!(suppressed > 0, "{lines:#?}");
    assert!(
        lines.last().unwrap().contains("suppressed"),
        "the count comes last: {lines:#?}"
    );
    assert_eq!(
        last.as_deref(),
        Some("healthy"),
        "ended healthy: {lines:#?}"
    );
}
