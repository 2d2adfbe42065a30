//! The known HTTP/2 attacks against the downstream front-end, sent as raw frames by
//! tests/h2c/client.py over h2c (the same front-end serves ALPN `h2`): each closes the
//! connection with a GOAWAY naming the error, counts in
//! `shardgate_downstream_http2_goaways_total{reason}`, and the proxy keeps serving others.
//! Rapid reset (CVE-2023-44487) in one burst (`h2`'s pending-accept reset limit,
//! `--h2-max-pending-accept-reset-streams`) and against accepted streams (the connection's
//! running stream tasks, capped at twice the stream limit), while a client that cancels fewer
//! calls than it completes is served on; streams reset before they were taken up never reach the
//! upstream; a CONTINUATION flood (CVE-2024-27316) and an empty DATA frame
//! flood (`h2`'s limits). scripts/test.sh installs hyperframe and hpack (PyPI).

mod support;

use serde_json::Value;
use support::admin::scrape_until;
use support::*;

/// tests/h2c/client.py: its one JSON report.
fn py(args: &[&str]) -> Value {
    script::json_last("h2c/client.py", args)
}

/// The report shows one GOAWAY with ENHANCE_YOUR_CALM (0xb) and the connection closed.
fn calmed(rep: &Value, what: &str) {
    let goaways = rep["goaways"].as_array().unwrap();
    assert_eq!(goaways.len(), 1, "{what}: {rep}");
    assert_eq!(goaways[0]["error"], 0xb, "{what}: ENHANCE_YOUR_CALM: {rep}");
    assert_eq!(rep["closed"], true, "{what}: the connection closed: {rep}");
}

/// Waits until the proxy counted `n` GOAWAYs with `reason`.
fn goaways(proxy: &Proxy, reason: &str, n: f64) {
    let name = "shardgate_downstream_http2_goaways_total";
    scrape_until(proxy, ms(5000), reason, name, |m| {
        m.sum(name, &[("reason", reason)]) == n
    });
}

/// The proxy still serves a new client: one h2c GET through it.
fn still_serves(proxy: &Proxy) {
    let port = proxy.addr.port().to_string();
    let rep = py(&["streams", &port, "1", "/after"]);
    assert_eq!(rep["streams"]["1"]["status"], 200, "{rep}");
}

#[test]
fn rapid_reset_in_one_burst_gets_goaway_and_reset_streams_never_go_upstream() {
    let up = Upstream::fixed("ok\n");
    let proxy = Proxy::to(&[up.addr], &["--h2c"]);
    let port = proxy.addr.port().to_string();
    // 100 streams opened and reset at once: past h2's 20 pending-accept resets.
    let rep = py(&["rapid", &port, "100", "/r"]);
    calmed(&rep, "rapid reset");
    goaways(&proxy, "enhance_your_calm", 1.0);
    still_serves(&proxy);

    // With room for them all, the burst is taken, none of the reset streams is served, and the
    // GET that follows it is.
    let proxy = Proxy::to(
        &[up.addr],
        &["--h2c", "--h2-max-pending-accept-reset-streams", "1000"],
    );
    let port = proxy.addr.port().to_string();
    let before = up.request_count();
    let rep = py(&["rapid", &port, "100", "/r"]);
    assert!(rep["goaways"].as_array().unwrap().is_empty(), "{rep}");
    let last = rep["last"].to_string();
    assert_eq!(rep["streams"][&last]["status"], 200, "{rep}");
    assert_eq!(
        up.request_count() - before,
        1,
        "only the GET after the burst went upstream"
    );
}

#[test]
fn resetting_accepted_streams_is_capped_at_twice_the_stream_limit() {
    let up = Upstream::hang();
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--h2c",
            "--h2-max-concurrent-streams",
            "4",
            // h2's own limit cannot fire: only the running-task cap can.
            "--h2-max-pending-accept-reset-streams",
            "1000",
        ],
    );
    let port = proxy.addr.port().to_string();
    let rep = py(&["reset_after", &port, "50", "/hang"]);
    calmed(&rep, "reset after accept");
    // 8 tasks (twice the limit of 4) run on the upstream; the 9th stream (id 17) ends the
    // connection (the client may have sent a 10th before it read the GOAWAY).
    assert_eq!(rep["goaways"][0]["last_stream_id"], 17, "{rep}");
    assert!((9..=10).contains(&rep["opened"].as_u64().unwrap()), "{rep}");
    goaways(&proxy, "enhance_your_calm", 1.0);
    assert!(rep["streams"].as_object().unwrap().is_empty(), "{rep}");
}

/// A client that cancels some calls mid-exchange (fewer than it completes) is not taken for a
/// rapid reset, even past twice the stream limit of such cancels: each cancel ends its task at
/// once and the connection keeps serving.
#[test]
fn occasional_cancels_mid_exchange_are_not_a_rapid_reset() {
    let up = Upstream::start(|p| {
        while let Some(req) = p.next_request() {
            if req.target == "/hang" {
                p.wait_close();
                return;
            }
            if !p.write(&response(200, &[], b"ok")) {
                return;
            }
        }
    });
    let proxy = Proxy::to(&[up.addr], &["--h2c", "--h2-max-concurrent-streams", "4"]);
    let port = proxy.addr.port().to_string();
    // 12 cancels, past the cap of 8 running tasks, after 20 completed calls.
    let rep = py(&["mixed", &port, "20", "12", "/ok", "/hang"]);
    assert!(rep["goaways"].as_array().unwrap().is_empty(), "{rep}");
    let last = rep["last"]
        .as_u64()
        .expect("the last GET was sent")
        .to_string();
    assert_eq!(rep["streams"][&last]["status"], 200, "{rep}");
    // Each cancel closed the upstream connection that carried it.
    up.wait_for("12 cancelled upstream connections", ms(5000), |s| {
        s.peer_closed == 12
    });
}

#[test]
fn continuation_and_empty_data_floods_get_goaway() {
    let up = Upstream::fixed("ok\n");
    let proxy = Proxy::to(&[up.addr], &["--h2c"]);
    let port = proxy.addr.port().to_string();
    // A header block that never ends: h2 allows a few CONTINUATION frames for the header list
    // limit (--buffer-size), then says ENHANCE_YOUR_CALM.
    let rep = py(&["continuation", &port, "1000"]);
    calmed(&rep, "CONTINUATION flood");
    assert!(rep["sent"].as_u64().unwrap() < 20, "{rep}");
    goaways(&proxy, "enhance_your_calm", 1.0);

    // Empty DATA frames without END_STREAM: h2 allows 100 per connection.
    let rep = py(&["empty_data", &port, "200", "/post"]);
    calmed(&rep, "empty DATA flood");
    goaways(&proxy, "enhance_your_calm", 2.0);
    still_serves(&proxy);
}
