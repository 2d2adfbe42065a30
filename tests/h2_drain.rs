//! Draining HTTP/2 connections (raw frames from tests/h2c/client.py over h2c, and curl over TLS):
//! a drain sends the graceful GOAWAY pair (last stream id 2^31-1, a PING, then the real last id);
//! a slow stream in flight completes across it, a stream the client opens after the final GOAWAY
//! is not served (never reaches the upstream), and the connection closes; a stream that outlives
//! `--drain-timeout` is cut by the deadline (exit 1). Both drivers.

mod support;

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;
use support::admin::scrape;
use support::*;

/// Starts tests/h2c/client.py `mode` on `port` (it prints `{"sent": true}` once its first stream
/// is out), SIGTERMs the proxy once the upstream has the request, and returns the report.
fn drain_with(proxy: &Proxy, up: &Upstream, mode: &str, path: &str) -> Value {
    let port = proxy.addr.port().to_string();
    let mut client = script::Running::start("h2c/client.py", &[mode, &port, path]);
    let first = client.next();
    assert_eq!(first["sent"], true, "{first}");
    up.wait_for("the request upstream", ms(5000), |s| s.requests.len() == 1);
    proxy.sigterm();
    client.next()
}

#[test]
fn a_slow_stream_completes_across_a_drain_and_a_later_stream_is_refused() {
    let up = Upstream::slow(ms(1500), "finished\n");
    let mut proxy = Proxy::to(&[up.addr], &["--h2c", "--drain-timeout", "10s"]);
    let rep = drain_with(&proxy, &up, "drain2", "/slow");
    let first = rep["first"].to_string();
    let late = rep["late"].to_string();
    assert_eq!(
        late, "3",
        "the client opened a stream after the final GOAWAY: {rep}"
    );
    let st = &rep["streams"][&first];
    assert_eq!(st["status"], 200, "{rep}");
    assert_eq!(st["body"], "finished\n", "the slow stream completed: {rep}");
    // The late stream got no response (h2 ignores streams above the GOAWAY's last id, RFC 9113
    // §6.8) and never reached the upstream.
    assert!(
        rep["streams"][&late]["status"].is_null(),
        "the late stream was served: {rep}"
    );
    let goaways = rep["goaways"].as_array().unwrap();
    assert_eq!(goaways.len(), 2, "{rep}");
    assert!(goaways.iter().all(|g| g["error"] == 0), "{rep}");
    assert_eq!(goaways[1]["last_stream_id"], 1, "{rep}");
    assert_eq!(rep["closed"], true, "{rep}");
    assert_eq!(up.request_count(), 1, "only the first stream went upstream");
    let status = proxy
        .wait_exit(ms(8000))
        .expect("shardgate exits after the drain");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_stream_past_the_drain_deadline_is_cut() {
    let up = Upstream::hang();
    let mut proxy = Proxy::to(&[up.addr], &["--h2c", "--drain-timeout", "700ms"]);
    let signalled = Instant::now();
    let rep = drain_with(&proxy, &up, "drain", "/hang");
    let status = proxy
        .wait_exit(ms(5000))
        .expect("exit at the drain deadline");
    assert_eq!(status.code(), Some(1), "the drain deadline passed");
    assert!(signalled.elapsed() >= ms(600), "{:?}", signalled.elapsed());
    assert!(!rep["goaways"].as_array().unwrap().is_empty(), "{rep}");
    assert_eq!(rep["closed"], true, "{rep}");
    assert!(rep["streams"]["1"]["status"].is_null(), "{rep}");
}

/// The same over TLS with curl: a drain while a slow HTTP/2 request is in flight; it completes.
#[test]
fn a_drain_finishes_an_h2_request_over_tls() {
    let certs = support::certs::Certs::new("h2-drain-tls");
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::slow(ms(1000), "tls finished\n");
    let upstream = up.addr.to_string();
    let mut args = leaf.listen_args();
    args.extend(["--upstream", &upstream, "--drain-timeout", "10s"]);
    let mut proxy = Proxy::start(&args);
    let port = proxy.addr.port();
    let child = Command::new("curl")
        .args(["-sS", "--http2", "--max-time", "10", "--cacert", certs.ca()])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .arg(format!("https://localhost:{port}/slow"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    up.wait_for("the request upstream", ms(5000), |s| s.requests.len() == 1);
    assert_eq!(
        scrape(&proxy).sum(
            "shardgate_downstream_protocol_connections",
            &[("protocol", "HTTP/2")]
        ),
        1.0
    );
    proxy.sigterm();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "tls finished\n\n200 2",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = proxy
        .wait_exit(ms(8000))
        .expect("shardgate exits after the drain");
    assert_eq!(status.code(), Some(0));
}
