//! A client that goes away while its request waits for the upstream's response head cancels
//! the upstream side at once, not at the upstream timeout: an HTTP/2 client's RST_STREAM closes
//! the HTTP/1.1 upstream connection carrying it, an HTTP/1.1 client's close resets the HTTP/2
//! upstream stream (CANCEL). Sleeping upstreams on 127.0.0.1, upstream timeout 30 s.

#[path = "h2_upstream/harness.rs"]
mod harness;
mod support;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use harness::*;
use support::*;

/// How long the proxy may take to cancel: well under the 30 s upstream timeout (and the
/// upstreams' own sleeps).
const BOUND: Duration = Duration::from_secs(3);

/// An HTTP/2 client resets its stream 300 ms into a request to an HTTP/1.1 upstream that never
/// answers: the upstream sees its connection closed within the bound while the client's
/// connection stays open.
#[test]
fn an_http2_reset_closes_the_http1_upstream_connection() {
    let up = Upstream::start(|p| {
        if p.next_request().is_some() {
            p.wait_close();
        }
    });
    let proxy = Proxy::to(
        &[up.addr],
        &["--h2c", "--shards", "1", "--upstream-timeout", "30s"],
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_upstream/client.py");
    let started = Instant::now();
    let client = Command::new("python3")
        .args([
            script,
            "reset",
            &proxy.addr.port().to_string(),
            "/hang",
            "0.3",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with h2");
    let seen = up.wait_for("the upstream connection closed", BOUND, |s| {
        s.peer_closed == 1
    });
    let took = started.elapsed();
    assert_eq!(seen.requests.len(), 1);
    assert!(took < BOUND, "closed after {took:?}");
    let out = client.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"status\": null"),
        "no response came: {text}"
    );
}

/// An HTTP/1.1 client closes its connection 300 ms into a request to an HTTP/2 upstream that
/// sleeps 10 s: the upstream sees the stream reset within the bound.
#[test]
fn an_http1_close_resets_the_http2_upstream_stream() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &["--upstream-timeout", "30s"]);
    let started = Instant::now();
    let mut c = proxy.connect();
    c.send(b"GET /sleep/10000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    drop(c);
    loop {
        let s = up.stats();
        if s["reset"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/sleep/10000")
        {
            break;
        }
        assert!(
            started.elapsed() < BOUND,
            "the upstream stream was not reset: {s}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}
