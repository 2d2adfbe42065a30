//! HTTP/2 with prior knowledge (h2c) from clients, proxied to HTTP/1.1 upstreams through the same
//! pipeline as HTTP/1.1, with real clients nobody here wrote: curl `--http2-prior-knowledge`
//! (GET, POST with a body, a 1 MiB response), `nghttp` (concurrent streams on one connection),
//! `h2load` (a bounded load, all 2xx), and the Python `h2` library (SETTINGS as sent, GOAWAY after
//! max requests and on drain, a body without content-length sent upstream chunked). HTTP/1.1 on
//! the same port still works; routing on :authority and path, 404, 413, 429; one access-log line
//! per stream with `protocol` = `HTTP/2`; metrics by protocol; `--check` refuses h2c on a TLS
//! listener. scripts/test.sh installs nghttp2-client (Debian) and h2 (PyPI).

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use support::admin::{scrape, temp_path, wait_log_lines};
use support::*;

/// curl over h2c: (status, HTTP version, body).
fn curl(url: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let body = temp_path("h2c-curl", "out");
    let out = Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-o", body.path()])
        .args(["-w", "%{http_code} %{http_version}", "--max-time", "20"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut w = text.split(' ');
    let status = w.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = w.next().unwrap_or("").to_string();
    let bytes = std::fs::read(body.path()).unwrap_or_default();
    assert!(
        status != 0,
        "curl {url} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (status, version, bytes)
}

/// tests/h2c/client.py: its JSON lines, all of them.
fn py(args: &[&str]) -> Vec<Value> {
    script::json_lines("h2c/client.py", args)
}

fn url(proxy: &Proxy, path: &str) -> String {
    format!("http://{}{path}", proxy.addr)
}

#[test]
fn curl_get_post_and_a_large_response_and_http1_on_the_same_port() {
    let up = Upstream::echo();
    let big = "0123456789abcdef".repeat(65_536); // 1 MiB
    let large = Upstream::fixed(&big);
    let cfg = temp_file(
        "h2c-curl",
        &format!(
            "upstreams = [\"{up}\"]\n[[listeners]]\naddr = \"127.0.0.1:0\"\nh2c = true\n\n\
             [[clusters]]\nname = \"large\"\nendpoints = [\"{large}\"]\n\n\
             [[routes]]\npath_prefix = \"/large\"\ncluster = \"large\"\n\n\
             [[routes]]\ncluster = \"default\"\n",
            up = up.addr,
            large = large.addr
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path()]);

    let (status, version, body) = curl(&url(&proxy, "/get?x=1"), &[]);
    assert_eq!((status, version.as_str()), (200, "2"), "GET over h2c");
    assert!(body.is_empty());
    let seen = up.seen();
    let r = seen.requests.last().expect("the upstream got the GET");
    assert_eq!((r.method.as_str(), r.target.as_str()), ("GET", "/get?x=1"));
    assert_eq!(r.version, "HTTP/1.1");
    assert_eq!(r.header("host"), Some(proxy.addr.to_string().as_str()));
    assert!(r.header("x-forwarded-for").is_some() && r.header("x-request-id").is_some());

    let payload = temp_file("h2c-post", &"p".repeat(300_000));
    let data = format!("@{}", payload.path());
    let (status, _, body) = curl(&url(&proxy, "/post"), &["--data-binary", &data]);
    assert_eq!(status, 200);
    assert_eq!(body.len(), 300_000, "the echoed body came back whole");
    assert!(body.iter().all(|&b| b == b'p'));
    let seen = up.seen();
    let r = seen.requests.last().unwrap();
    assert_eq!((r.method.as_str(), r.body.len()), ("POST", 300_000));

    let (status, _, body) = curl(&url(&proxy, "/large"), &[]);
    assert_eq!(status, 200);
    assert_eq!(body.len(), big.len());
    assert!(body == big.as_bytes(), "the 1 MiB body differs");

    let mut c = proxy.connect();
    let r = c.exchange(&request("GET", "/h1", &[], b""));
    assert_eq!((r.status, r.version.as_str()), (200, "HTTP/1.1"));
    assert_eq!(up.seen().requests.last().unwrap().target, "/h1");
}

/// A body without content-length (the Python client sends none) goes upstream chunked and comes
/// back whole; flow control: 200 000 bytes pass a 65 535-byte stream window only as the proxy
/// forwards them and gives the window back.
#[test]
fn a_body_without_length_goes_upstream_chunked_within_the_window() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--h2c"]);
    let port = proxy.addr.port().to_string();
    let rep = &py(&["post", &port, "/chunked", "200000"])[0];
    let st = &rep["streams"]["1"];
    assert_eq!(st["status"], 200, "{rep}");
    assert_eq!(st["len"], 200_000, "{rep}");
    assert_eq!(rep["body_matches"], true, "{rep}");
    let seen = up.seen();
    let r = seen.requests.last().unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.len(), 200_000);
}

#[test]
fn nghttp_runs_concurrent_streams_on_one_connection() {
    let up = Upstream::slow(ms(300), "slow\n");
    let log = temp_path("h2c-nghttp", "log");
    let proxy = Proxy::to(&[up.addr], &["--h2c", "--access-log", log.path()]);
    let urls: Vec<String> = (0..5).map(|i| url(&proxy, &format!("/s{i}"))).collect();
    let out = Command::new("nghttp")
        .args(["-n", "-s", "-t", "20"])
        .args(&urls)
        .output()
        .expect("nghttp (scripts/test.sh installs nghttp2-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = wait_log_lines(&log.0, 5, ms(5000));
    let clients: BTreeSet<&str> = lines.iter().filter_map(|l| l["client"].as_str()).collect();
    assert_eq!(
        clients.len(),
        1,
        "one connection carried every stream: {lines:#?}"
    );
    assert!(lines
        .iter()
        .all(|l| l["status"] == 200 && l["protocol"] == "HTTP/2"));
    // Five streams of 300 ms each overlapped: they needed several upstream connections at once.
    assert!(up.accepted() >= 2, "the streams ran one after another");
}

#[test]
fn h2load_bounded_run_is_all_2xx() {
    let up = Upstream::fixed("ok\n");
    let proxy = Proxy::to(&[up.addr], &["--h2c"]);
    let out = Command::new("h2load")
        .args(["-n", "2000", "-c", "4", "-m", "10", "-T", "20"])
        .arg(url(&proxy, "/"))
        .output()
        .expect("h2load (scripts/test.sh installs nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded"),
        "{text}"
    );
    assert!(text.contains("status codes: 2000 2xx"), "{text}");
    let m = scrape(&proxy);
    let h2 = m.sum(
        "shardgate_downstream_requests_total",
        &[("protocol", "HTTP/2")],
    );
    assert_eq!(h2, 2000.0, "every stream counted as HTTP/2");
    assert_eq!(
        m.sum(
            "shardgate_downstream_requests_total",
            &[("protocol", "HTTP/1.1")]
        ),
        0.0
    );
}

/// Routing on :authority and path exactly as HTTP/1.1 routes; 404 with no route; 413 for a body
/// over `max_body`; 429 from a rate-limited route; one access-log line per stream.
#[test]
fn routing_limits_and_the_access_log_per_stream() {
    let up = Upstream::echo();
    let log = temp_path("h2c-routes", "log");
    let cfg = temp_file(
        "h2c-routes",
        &format!(
            "upstreams = [\"{up}\"]\naccess_log = \"{log}\"\n\
             [[listeners]]\naddr = \"127.0.0.1:0\"\nh2c = true\n\n\
             [[routes]]\nhost = \"a.test\"\ndirect = {{ status = 201, body = \"a\\n\" }}\n\n\
             [[routes]]\npath_prefix = \"/b/\"\ndirect = {{ status = 202, body = \"b\\n\" }}\n\n\
             [[routes]]\npath_prefix = \"/small\"\ncluster = \"default\"\nmax_body = 10\n\n\
             [[routes]]\npath_prefix = \"/limited\"\ncluster = \"default\"\n\
             rate_limit = {{ rate = \"1/m\", burst = 1 }}\n",
            up = up.addr,
            log = log.path()
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path(), "--shards", "1"]);
    let (s, _, body) = curl(&url(&proxy, "/x"), &["-H", "Host: a.test"]);
    assert_eq!(
        (s, body.as_slice()),
        (201, b"a\n".as_slice()),
        ":authority routes"
    );
    let (s, _, body) = curl(&url(&proxy, "/b/y"), &[]);
    assert_eq!(
        (s, body.as_slice()),
        (202, b"b\n".as_slice()),
        "path routes"
    );
    let (s, _, _) = curl(&url(&proxy, "/nowhere"), &[]);
    assert_eq!(s, 404);
    let (s, _, _) = curl(
        &url(&proxy, "/small"),
        &["--data-binary", "01234567890123456789"],
    );
    assert_eq!(s, 413);
    let (s, _, _) = curl(&url(&proxy, "/small"), &["--data-binary", "0123"]);
    assert_eq!(s, 200);
    let (s, _, _) = curl(&url(&proxy, "/limited"), &[]);
    assert_eq!(s, 200);
    let (s, _, _) = curl(&url(&proxy, "/limited"), &[]);
    assert_eq!(s, 429);
    assert_eq!(
        up.request_count(),
        2,
        "only the admitted requests went upstream"
    );
    let lines = wait_log_lines(&log.0, 7, ms(5000));
    let got: Vec<(String, u64, String)> = lines
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_string(),
                l["status"].as_u64().unwrap(),
                l["protocol"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, u64, String)> = [
        ("/x", 201),
        ("/b/y", 202),
        ("/nowhere", 404),
        ("/small", 413),
        ("/small", 200),
        ("/limited", 200),
        ("/limited", 429),
    ]
    .iter()
    .map(|(p, s)| (p.to_string(), *s, "HTTP/2".to_string()))
    .collect();
    assert_eq!(got, want);
}

/// The SETTINGS a client sees carry the configured limits, and the stream limit is enforced by
/// GOAWAY after `--h2-max-requests` streams: the connection closes once they are done.
#[test]
fn settings_and_max_requests_goaway() {
    let up = Upstream::fixed("ok\n");
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--h2c",
            "--h2-max-concurrent-streams",
            "7",
            "--h2-initial-stream-window",
            "100000",
            "--h2-max-frame-size",
            "32768",
            "--h2-max-requests",
            "2",
        ],
    );
    let port = proxy.addr.port().to_string();
    let rep = &py(&["settings", &port])[0];
    let s = &rep["settings"];
    // SETTINGS_MAX_CONCURRENT_STREAMS (3), INITIAL_WINDOW_SIZE (4), MAX_FRAME_SIZE (5),
    // MAX_HEADER_LIST_SIZE (6) = the HTTP/1.1 head limit (--buffer-size, 16384).
    assert_eq!(s["3"], 7, "{rep}");
    assert_eq!(s["4"], 100_000, "{rep}");
    assert_eq!(s["5"], 32_768, "{rep}");
    assert_eq!(s["6"], 16_384, "{rep}");

    let rep = &py(&["streams", &port, "4", "/"])[0];
    let streams = rep["streams"].as_object().unwrap();
    assert_eq!(streams.len(), 2, "two streams, then GOAWAY: {rep}");
    assert!(streams
        .values()
        .all(|s| s["status"] == 200 && s["ended"] == true));
    let goaways = rep["goaways"].as_array().unwrap();
    assert!(!goaways.is_empty(), "no GOAWAY: {rep}");
    assert!(
        goaways.iter().all(|g| g["error"] == 0),
        "a graceful GOAWAY: {rep}"
    );
    assert_eq!(goaways.last().unwrap()["last_stream_id"], 3, "{rep}");
    assert_eq!(rep["closed"], true, "the connection closed: {rep}");
    // One graceful GOAWAY counted (h2 sends it in two frames, a PING between).
    let m = scrape(&proxy);
    let name = "shardgate_downstream_http2_goaways_total";
    assert_eq!(m.sum(name, &[("reason", "no_error")]), 1.0);
    assert_eq!(m.sum(name, &[]), 1.0);
}

/// A connection without streams gets a graceful GOAWAY and is closed after the idle timeout; a
/// busy-looking one (idle timeout long) after `--h2-max-age`.
#[test]
fn idle_timeout_and_max_age_close_with_goaway() {
    let up = Upstream::fixed("ok\n");
    for (flags, what) in [
        (
            ["--idle-timeout", "300ms", "--h2-max-age", "1h"],
            "idle timeout",
        ),
        (["--idle-timeout", "1h", "--h2-max-age", "300ms"], "max age"),
    ] {
        let mut args = vec!["--h2c"];
        args.extend(flags);
        let proxy = Proxy::to(&[up.addr], &args);
        let port = proxy.addr.port().to_string();
        let rep = &py(&["idle", &port, "8"])[0];
        let goaways = rep["goaways"].as_array().unwrap();
        assert!(!goaways.is_empty(), "{what}: no GOAWAY: {rep}");
        assert!(goaways.iter().all(|g| g["error"] == 0), "{what}: {rep}");
        assert_eq!(
            rep["closed"], true,
            "{what}: the connection stayed open: {rep}"
        );
        let after = rep["closed_after"].as_f64().unwrap();
        assert!(after >= 0.25, "{what}: closed too early ({after} s): {rep}");
    }
}

/// Drain with an open stream: the client gets a GOAWAY, its stream still completes, the
/// connection closes and the process exits 0.
#[test]
fn drain_sends_goaway_and_the_open_stream_completes() {
    let up = Upstream::slow(ms(800), "finished\n");
    let mut proxy = Proxy::to(&[up.addr], &["--h2c", "--drain-timeout", "10s"]);
    let port = proxy.addr.port().to_string();
    let mut client = script::Running::start("h2c/client.py", &["drain", &port, "/slow"]);
    let first = client.next();
    assert_eq!(first["sent"], true, "{first}");
    up.wait_for("the request upstream", ms(5000), |s| s.requests.len() == 1);
    proxy.sigterm();
    let rep = client.next();
    let st = &rep["streams"]["1"];
    assert_eq!(st["status"], 200, "{rep}");
    assert_eq!(st["body"], "finished\n", "{rep}");
    let goaways = rep["goaways"].as_array().unwrap();
    assert!(!goaways.is_empty(), "no GOAWAY: {rep}");
    assert!(goaways.iter().all(|g| g["error"] == 0), "{rep}");
    let order: Vec<&str> = rep["order"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    let first_goaway = order.iter().position(|o| o.starts_with("goaway")).unwrap();
    let end = order.iter().position(|o| *o == "end:1").unwrap();
    assert!(
        first_goaway < end,
        "GOAWAY came before the stream ended: {order:?}"
    );
    assert_eq!(rep["closed"], true, "{rep}");
    let status = proxy
        .wait_exit(ms(8000))
        .expect("shardgate exits after the drain");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn check_refuses_h2c_on_a_tls_listener() {
    let cfg = temp_file(
        "h2c-tls",
        "upstreams = [\"127.0.0.1:9\"]\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\
         tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }] }\nh2c = true\n",
    );
    let out = support::proxy::run(&["--config", cfg.path(), "--check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains(":5:") && out.stderr.contains("listeners[0].h2c"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("TLS listener"), "{}", out.stderr);
    let out = support::proxy::run(&[
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        "a.pem",
        "--tls-key",
        "a.key",
        "--upstream",
        "127.0.0.1:9",
        "--h2c",
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--h2c"), "{}", out.stderr);
}
