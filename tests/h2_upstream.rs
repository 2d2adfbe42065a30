//! HTTP/2 to upstreams (`protocol = "h2c"`/`"h2"`, `--upstream-protocol`): what goes through,
//! against real servers. nginx (`listen … http2`: h2c with prior knowledge, and with `ssl` h2 over
//! TLS) reached by curl over HTTP/1.1 and over HTTP/2 with prior knowledge, 1 MiB through, a
//! 64 MiB response read slowly without the proxy's memory growing, an upstream whose TLS does not
//! select h2 refused; and the scripted upstream on the Python `h2` package
//! (tests/h2_upstream/upstream.py) for Host ↔ `:authority` and connection-specific fields,
//! trailers both ways for both client kinds (also through the HTTP/1.1-upstream side), large
//! bodies echoed both ways, bidirectional streaming. The pool's behaviour is in
//! tests/h2_upstream_pool.rs. scripts/test.sh installs nginx, curl and the Python `h2` package.

#[path = "h2_upstream/harness.rs"]
mod harness;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;
use support::certs::Certs;
use support::*;

#[test]
fn curl_over_http1_and_h2_reaches_an_h2c_nginx() {
    let nginx = Nginx::start("h2c", None);
    let proxy = proxy_to(nginx.addr, "h2c", &[]);
    for h2 in [false, true] {
        let (status, body) = curl(&proxy, "/", h2, &[]);
        assert_eq!((status, &body[..]), (200, &b"ok"[..]), "h2 client: {h2}");
        let (status, body) = curl(&proxy, "/1m", h2, &[]);
        assert_eq!(status, 200, "h2 client: {h2}");
        assert!(body == pattern(1 << 20), "1 MiB through, h2 client: {h2}");
    }
    // nginx saw the client's Host as :authority.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Host: example.test",
        ])
        .arg(format!("http://{}/", proxy.addr))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("x-saw-host: example.test"), "{head}");
}

#[test]
fn h2_over_tls_with_alpn_reaches_an_ssl_nginx() {
    let certs = Certs::new("h2up-tls");
    let leaf = certs.leaf("upstream", &["localhost", "127.0.0.1"]);
    let nginx = Nginx::start("tls", Some((leaf.cert(), leaf.key())));
    let proxy = proxy_to(nginx.addr, "h2", &["--upstream-ca", certs.ca()]);
    for h2 in [false, true] {
        let (status, body) = curl(&proxy, "/1m", h2, &[]);
        assert_eq!(status, 200, "h2 client: {h2}");
        assert!(
            body == pattern(1 << 20),
            "1 MiB through TLS, h2 client: {h2}"
        );
    }
}

/// An upstream whose TLS does not select ALPN h2 (an HTTP/1.1-only TLS nginx) is refused: 502,
/// counted as a TLS handshake failure, never spoken to as HTTP/1.1.
#[test]
fn an_upstream_that_does_not_select_h2_is_refused() {
    let certs = Certs::new("h2up-noalpn");
    let leaf = certs.leaf("upstream", &["localhost", "127.0.0.1"]);
    let nginx = Nginx::start_http1_tls("noalpn", leaf.cert(), leaf.key());
    let proxy = proxy_to(nginx.addr, "h2", &["--upstream-ca", certs.ca()]);
    let (status, _) = curl(&proxy, "/", false, &[]);
    assert_eq!(status, 502);
}

type Fields = Vec<(String, String)>;

/// What /info reported, as (headers, body length, trailers).
fn info(body: &[u8]) -> (Fields, u64, Fields) {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "not /info's JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    });
    let pairs = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    (
        pairs(&v["headers"]),
        v["length"].as_u64().unwrap(),
        pairs(&v["trailers"]),
    )
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Host becomes :authority; Connection, Keep-Alive, Proxy-Connection, Upgrade and `te` other
/// than `trailers` never reach an HTTP/2 upstream; `te: trailers` does.
#[test]
fn host_becomes_authority_and_connection_fields_are_dropped() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let mut c = proxy.connect();
    let r = c.exchange(
        b"GET /info HTTP/1.1\r\nHost: api.test\r\nConnection: keep-alive, x-hop\r\n\
          Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
          X-Custom: 1\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (h, len, _) = info(&r.body);
    assert_eq!(header(&h, ":authority"), Some("api.test"));
    assert_eq!(header(&h, ":scheme"), Some("http"));
    assert_eq!(header(&h, ":method"), Some("GET"));
    assert_eq!(header(&h, ":path"), Some("/info"));
    assert_eq!(header(&h, "te"), Some("trailers"));
    assert_eq!(header(&h, "x-custom"), Some("1"));
    for n in [
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
    ] {
        assert_eq!(header(&h, n), None, "{n} reached the upstream");
    }
    assert_eq!(len, 0);
    // The connection is kept for the next request (and so is the upstream's).
    let r = c.exchange(b"GET /info HTTP/1.1\r\nHost: api.test\r\nTE: gzip\r\n\r\n");
    assert_eq!(r.status, 200);
    let (h, _, _) = info(&r.body);
    assert_eq!(header(&h, "te"), None, "te other than trailers is dropped");
    assert_eq!(
        up.stats()["connections"],
        1 + 1,
        "one upstream connection (+ the stats one)"
    );
}

/// A chunked HTTP/1.1 request with trailers reaches the upstream as DATA and HTTP/2 trailers;
/// the upstream's trailers come back to the HTTP/1.1 client as chunked trailers (the response
/// has no content-length, so it is sent chunked).
#[test]
fn trailers_both_ways_for_an_http1_client() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let mut c = proxy.connect();
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\nX-Client-Sum: 42\r\n\r\n",
    )
    .unwrap();
    c.set_timeout(Duration::from_secs(10));
    let head = c.read_head().unwrap();
    assert!(head.start.starts_with("HTTP/1.1 200"), "{}", head.start);
    assert!(
        head.has_token("transfer-encoding", "chunked"),
        "{:?}",
        head.headers
    );
    let raw = read_chunked_raw(&mut c);
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.starts_with("b\r\nhello world\r\n0\r\n"), "{text:?}");
    assert!(text.contains("x-client-sum: 42\r\n"), "{text:?}");
    assert!(text.contains("x-upstream-trailer: yes\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
}

/// Reads a chunked body verbatim up to and including the final CRLF after the trailers.
fn read_chunked_raw(c: &mut Conn) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    loop {
        let (bytes, _) = c.read_for(Duration::from_millis(100));
        got.extend_from_slice(&bytes);
        if let Some(i) = find(&got, b"\r\n0\r\n").or(got.starts_with(b"0\r\n").then_some(0)) {
            if find(&got[i..], b"\r\n\r\n").is_some() {
                return got;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no chunked end in {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// An HTTP/2 client's request trailers reach the upstream and the upstream's come back, through
/// the Python h2 client (tests/h2_upstream/client.py).
#[test]
fn trailers_both_ways_for_an_http2_client() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_upstream/client.py");
    let out = Command::new("python3")
        .args([script, "trailers", &proxy.addr.port().to_string(), "/echo"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "hello world");
    let t = v["trailers"].as_object().unwrap();
    assert_eq!(t["x-client-sum"], "42", "{v}");
    assert_eq!(t["x-upstream-trailer"], "yes", "{v}");
}

/// A 1 MiB body up and back down (echoed), for both client kinds: byte for byte.
#[test]
fn a_large_body_both_ways() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let body = pattern((1 << 20) + 123);
    let file = temp_path_bytes("h2up-large", &body);
    for h2 in [false, true] {
        let (status, got) = curl(
            &proxy,
            "/echo",
            h2,
            &[
                "--data-binary",
                &format!("@{}", file.display()),
                "-H",
                "content-type: x/y",
            ],
        );
        assert_eq!(status, 200, "h2 client: {h2}");
        assert!(
            got == body,
            "echo of {} bytes came back as {} (h2 client: {h2})",
            body.len(),
            got.len()
        );
    }
    let _ = std::fs::remove_file(file);
}

/// A 64 MiB response read slowly by an HTTP/1.1 client: the proxy's peak RSS grows by less than
/// 8 MiB (the upstream's window, not the body, bounds what it holds).
#[test]
fn a_slow_reader_does_not_grow_the_proxy() {
    let nginx = Nginx::start("slow", None);
    let proxy = proxy_to(nginx.addr, "h2c", &[]);
    assert_eq!(curl(&proxy, "/", false, &[]).0, 200);
    let before = proxy.peak_rss_kib();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /64m HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let started = Instant::now();
    // Slowly for the first 8 MiB (the proxy would have buffered the rest by then), then fast.
    while total < 64 << 20 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {total} bytes");
        total += n;
        if total < 8 << 20 {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(started.elapsed() < Duration::from_secs(60));
        if total > (64 << 20) + 4096 {
            break;
        }
    }
    let grown = proxy.peak_rss_kib().saturating_sub(before);
    assert!(grown < 8 * 1024, "peak RSS grew by {grown} KiB");
}

/// The existing HTTP/2-client → HTTP/1.1-upstream side relays trailers too: the client's HTTP/2
/// trailers end the chunked request body the upstream reads, and the upstream's chunked
/// trailers reach the client as HTTP/2 trailers.
#[test]
fn trailers_both_ways_between_an_http2_client_and_an_http1_upstream() {
    let up = Upstream::start(|p| {
        p.serve(|req| {
            let sum = req
                .trailers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("x-client-sum"))
                .map_or("none".to_string(), |(_, v)| v.clone());
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\
                 X-Client-Sum: {sum}\r\nX-Upstream-Trailer: yes\r\n\r\n",
                req.body.len(),
                String::from_utf8_lossy(&req.body)
            )
            .into_bytes()
        })
    });
    let proxy = Proxy::to(&[up.addr], &["--h2c", "--shards", "1"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_upstream/client.py");
    let out = Command::new("python3")
        .args([script, "trailers", &proxy.addr.port().to_string(), "/echo"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "hello world");
    let t = v["trailers"].as_object().unwrap();
    assert_eq!(
        t["x-client-sum"], "42",
        "the upstream got the client's trailer: {v}"
    );
    assert_eq!(t["x-upstream-trailer"], "yes", "{v}");
}

/// Bidirectional streaming for an HTTP/2 client: each DATA chunk reaches the upstream, and its
/// echo comes back, before the client sends the next (or ends its stream).
#[test]
fn an_http2_client_streams_both_ways_at_once() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_upstream/client.py");
    let out = Command::new("python3")
        .args([
            script,
            "pingpong",
            &proxy.addr.port().to_string(),
            "/pingpong",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["rounds"], 3, "{v}");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"], "ping0ping1ping2", "{v}");
}

/// An upstream that answers early (413 on the request's HEADERS, then RST_STREAM NO_ERROR) while
/// an HTTP/1.1 client's 1 MiB body is still coming: the client gets that 413 (not a 502), and its
/// connection closes after it (its body was not read).
#[test]
fn an_early_answer_reaches_an_http1_client_mid_body() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let mut c = proxy.connect();
    c.set_timeout(Duration::from_secs(10));
    let body = pattern(1 << 20);
    c.send(
        format!(
            "POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // Part of the body only: the proxy must answer without the rest.
    let _ = c.send(&body[..256 * 1024]);
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 413);
    assert!(
        r.head.has_token("connection", "close"),
        "{:?}",
        r.head.headers
    );
    c.expect_closed(Duration::from_secs(5)).unwrap();
}

/// An HTTP/2 client that stops reading (never gives window back) a 64 MiB response: it gets no
/// more than its initial windows allow, and the proxy holds no more than its own windows to the
/// upstream (peak RSS grows by less than 8 MiB while the upstream has 64 MiB to send).
#[test]
fn a_stalled_http2_reader_does_not_grow_the_proxy() {
    let nginx = Nginx::start("stall", None);
    let proxy = proxy_to(nginx.addr, "h2c", &[]);
    assert_eq!(curl(&proxy, "/", true, &[]).0, 200);
    let before = proxy.peak_rss_kib();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_upstream/client.py");
    let out = Command::new("python3")
        .args([script, "stall", &proxy.addr.port().to_string(), "/64m", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["status"], 200, "{v}");
    let got = v["got"].as_u64().unwrap();
    assert!(
        got > 0 && got <= 65_535,
        "more than the client's window arrived: {got}"
    );
    let grown = proxy.peak_rss_kib().saturating_sub(before);
    assert!(grown < 8 * 1024, "peak RSS grew by {grown} KiB");
}
