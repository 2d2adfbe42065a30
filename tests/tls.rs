//! HTTPS termination on every shard (`--listen-tls`): requests through the same pipeline with
//! `X-Forwarded-Proto: https`, keep-alive on one TLS connection, plain HTTP sent to the TLS port
//! answered with a 400 that says so, a stalled handshake closed at `--tls-handshake-timeout`,
//! garbage answered with an alert, TLS 1.2+ only with ALPN `http/1.1` (checked with openssl),
//! curl with the private CA, WebSocket tunnels over TLS, a PROXY header before the ClientHello,
//! a drain that finishes the request in flight and says close_notify, and handshakes counted per
//! listener (two TLS listeners: each counts only its own, done by version, failed by reason).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::certs::{Certs, Leaf};
use support::tls_client::TlsConn;
use support::*;

/// A proxy with one TLS listener (and the extra flags) in front of `up`.
fn tls_proxy(leaf: &Leaf, up: std::net::SocketAddr, extra: &[&str]) -> Proxy {
    let mut args = leaf.listen_args();
    let up = up.to_string();
    args.extend(["--upstream", up.as_str()]);
    args.extend(extra);
    Proxy::start(&args)
}

/// Waits until `shardgate_tls_handshakes_total{result}` summed over the shards is `n`.
fn handshakes(proxy: &Proxy, result: &str, n: f64) {
    scrape_until(
        proxy,
        Duration::from_secs(5),
        &format!("{n} handshakes with result {result}"),
        "shardgate_tls_handshakes_total",
        |m| m.sum("shardgate_tls_handshakes_total", &[("result", result)]) == n,
    );
}

fn setup(extra: &[&str]) -> (Certs, Upstream, Proxy) {
    let certs = Certs::new("tls");
    let leaf = certs.leaf("server", &["localhost", "127.0.0.1"]);
    let up = Upstream::echo_head();
    let proxy = tls_proxy(&leaf, up.addr, extra);
    (certs, up, proxy)
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[test]
fn https_requests_reach_the_upstream_marked_https_on_one_connection() {
    let (certs, up, proxy) = setup(&[]);
    let mut c = TlsConn::connect(proxy.addr, certs.ca(), "localhost").expect("handshake");
    for i in 0..3 {
        let r = c.exchange(GET).expect("a response over TLS");
        assert_eq!(r.status, 200, "request {i}: {}", r.head);
        let seen = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
        assert!(seen.contains("x-forwarded-proto: https\r\n"), "{seen}");
        assert!(seen.starts_with("get /a http/1.1\r\n"), "{seen}");
    }
    assert_eq!(up.accepted(), 1, "one upstream connection, reused");
    assert_eq!(up.request_count(), 3);
    handshakes(&proxy, "tls1.3", 1.0);
    // The one handshake was timed (and only it: the plain-HTTP and timeout tests time none).
    let m = scrape(&proxy);
    let timed = "shardgate_tls_handshake_duration_seconds_count";
    assert_eq!(m.sum(timed, &[]), 1.0);
    let took = m.sum("shardgate_tls_handshake_duration_seconds_sum", &[]);
    assert!(took > 0.0 && took < 5.0, "{took}");
}

#[test]
fn curl_verifies_the_certificate_and_gets_the_answer() {
    let (certs, _up, proxy) = setup(&[]);
    let port = proxy.addr.port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", certs.ca()])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args([
            "-w",
            "\n%{http_code} %{ssl_verify_result} %{num_connects}\n",
        ])
        .arg(format!("https://localhost:{port}/x"))
        .arg(format!("https://localhost:{port}/y"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("200 ")).collect();
    assert_eq!(
        lines,
        ["200 0 1", "200 0 0"],
        "second request reuses the connection: {text:?}"
    );
    assert!(
        text.contains("GET /x HTTP/1.1") && text.contains("GET /y HTTP/1.1"),
        "{text}"
    );
}

#[test]
fn plain_http_to_the_tls_port_gets_a_400_that_says_so() {
    let (_certs, up, proxy) = setup(&[]);
    let mut c = Conn::connect(proxy.addr);
    let r = c.exchange(GET);
    assert_canned(&r, 400, "plain HTTP on a TLS port");
    assert!(r.text().contains("TLS port"), "{:?}", r.text());
    assert!(c.expect_closed(Duration::from_secs(5)).is_ok());
    assert_eq!(up.request_count(), 0);
    handshakes(&proxy, "plain_http", 1.0);
    let m = scrape(&proxy);
    assert_eq!(
        m.sum("shardgate_tls_handshake_duration_seconds_count", &[]),
        0.0
    );
}

#[test]
fn a_stalled_or_silent_handshake_is_closed_at_the_handshake_timeout() {
    let (_certs, _up, proxy) = setup(&["--tls-handshake-timeout", "400ms"]);
    // A ClientHello record header promising 200 bytes that never come.
    let mut stalled = Conn::connect(proxy.addr);
    stalled.send(b"\x16\x03\x01\x00\xc8\x01").unwrap();
    let silent = Conn::connect(proxy.addr);
    let start = Instant::now();
    for (mut c, what) in [(stalled, "stalled"), (silent, "silent")] {
        assert!(
            c.expect_closed(Duration::from_secs(5)).is_ok(),
            "{what} handshake still open"
        );
    }
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    handshakes(&proxy, "timeout", 2.0);
}

#[test]
fn garbage_gets_a_tls_alert_and_a_close() {
    let (_certs, _up, proxy) = setup(&[]);
    let mut c = Conn::connect(proxy.addr);
    c.send(b"\x01\x02\x03\x04 not tls at all \x00\x00\x00\x00\x00")
        .unwrap();
    let (bytes, closed) = c.read_for(Duration::from_secs(3));
    assert_eq!(bytes.first(), Some(&0x15), "an alert record: {bytes:?}");
    assert!(closed, "closed after the alert");
    handshakes(&proxy, "invalid", 1.0);
}

fn s_client(addr: std::net::SocketAddr, ca: &str, extra: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args([
            "-servername",
            "localhost",
            "-CAfile",
            ca,
            "-verify_return_error",
        ])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn tls_1_2_and_1_3_with_alpn_http_1_1_and_nothing_older() {
    let (certs, _up, proxy) = setup(&[]);
    let out = s_client(proxy.addr, certs.ca(), &["-alpn", "http/1.1"]);
    assert!(
        out.contains("Protocol  : TLSv1.3") || out.contains("TLSv1.3"),
        "{out}"
    );
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let out = s_client(proxy.addr, certs.ca(), &["-tls1_2"]);
    assert!(
        out.contains("TLSv1.2") && out.contains("Verify return code: 0 (ok)"),
        "{out}"
    );
    handshakes(&proxy, "tls1.2", 1.0);
    let out = s_client(proxy.addr, certs.ca(), &["-tls1_1"]);
    assert!(
        out.contains("no peer certificate available"),
        "TLS 1.1 was accepted: {out}"
    );
    handshakes(&proxy, "no_shared_cipher", 1.0);
    // ALPN h2 is offered by default (tests/h2_tls.rs serves it).
    let out = s_client(proxy.addr, certs.ca(), &["-alpn", "h2"]);
    assert!(out.contains("ALPN protocol: h2"), "{out}");
}

#[test]
fn handshakes_count_on_their_own_listener_by_result_and_version() {
    let certs = Certs::new("two");
    let leaf = certs.leaf("server", &["localhost", "127.0.0.1"]);
    let up = Upstream::echo_head();
    // Two TLS listeners, told apart by their written addresses (the `listener` label).
    let (a, b) = ("127.0.0.1:0", "127.0.0.2:0");
    let proxy = tls_proxy(&leaf, up.addr, &["--listen-tls", b]);
    assert_eq!(proxy.addrs.len(), 2, "{:?}", proxy.addrs);
    let (on_a, on_b) = (proxy.addrs[0], proxy.addrs[1]);
    assert_eq!(on_b.ip().to_string(), "127.0.0.2");
    // On a: a TLS 1.3 request, a client offering TLS 1.1 only. On b: TLS 1.2, plain HTTP.
    let mut c = TlsConn::connect(on_a, certs.ca(), "localhost").expect("handshake on a");
    assert_eq!(c.exchange(GET).expect("a response").status, 200);
    let out = s_client(on_a, certs.ca(), &["-tls1_1"]);
    assert!(out.contains("no peer certificate available"), "{out}");
    let out = s_client(on_b, certs.ca(), &["-tls1_2"]);
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let mut plain = Conn::connect(on_b);
    assert_canned(&plain.exchange(GET), 400, "plain HTTP on b");

    let total = "shardgate_tls_handshakes_total";
    let m = scrape_until(
        &proxy,
        Duration::from_secs(5),
        "four handshakes",
        total,
        |m| m.sum(total, &[]) == 4.0,
    );
    let n = |listener, result| m.sum(total, &[("listener", listener), ("result", result)]);
    for (result, on_a, on_b) in [
        ("tls1.3", 1.0, 0.0),
        ("no_shared_cipher", 1.0, 0.0),
        ("tls1.2", 0.0, 1.0),
        ("plain_http", 0.0, 1.0),
    ] {
        assert_eq!((n(a, result), n(b, result)), (on_a, on_b), "{result}");
    }
    // Timed by listener and version: only the two that finished.
    let timed = "shardgate_tls_handshake_duration_seconds_count";
    let t = |listener, version| m.sum(timed, &[("listener", listener), ("version", version)]);
    assert_eq!([t(a, "tls1.3"), t(a, "tls1.2")], [1.0, 0.0]);
    assert_eq!([t(b, "tls1.3"), t(b, "tls1.2")], [0.0, 1.0]);
    let resumed = "shardgate_tls_handshakes_resumed_total";
    assert_eq!(
        m.sum(resumed, &[("listener", a), ("version", "tls1.3")]),
        0.0
    );
    for version in ["tls1.3", "tls1.2"] {
        let on_b = [("listener", b), ("version", version)];
        assert!(!m.select(resumed, &on_b).is_empty(), "{version} on b");
        assert_eq!(m.sum(resumed, &on_b), 0.0, "{version} on b");
    }
}

#[test]
fn a_websocket_upgrade_tunnels_over_tls() {
    let certs = Certs::new("ws");
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::start(|p| {
        if p.next_request().is_none() {
            return;
        }
        p.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        while let Ok(b) = p.conn.read_raw(1) {
            if !p.write(&[b[0].wrapping_add(1)]) {
                return;
            }
        }
    });
    let proxy = tls_proxy(&leaf, up.addr, &[]);
    let mut c = TlsConn::connect(proxy.addr, certs.ca(), "localhost").expect("handshake");
    c.send(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .unwrap();
    let r = c.read_response().expect("101");
    assert_eq!(r.status, 101, "{}", r.head);
    c.send(b"abc").unwrap();
    let mut got = [0u8; 3];
    std::io::Read::read_exact(&mut c.tls, &mut got).expect("echo through the tunnel");
    assert_eq!(&got, b"bcd");
}

#[test]
fn a_proxy_header_before_the_client_hello_names_the_client() {
    let (certs, _up, proxy) = setup(&["--proxy-protocol"]);
    // The PROXY header goes first on the raw socket, then TLS on the same socket.
    let sock = std::net::TcpStream::connect(proxy.addr).unwrap();
    std::io::Write::write_all(
        &mut &sock,
        b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\r\n",
    )
    .unwrap();
    let mut c = TlsConn::over(sock, certs.ca(), "localhost").expect("handshake after PROXY");
    let r = c.exchange(GET).expect("response");
    let seen = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
    assert!(seen.contains("x-forwarded-for: 203.0.113.9\r\n"), "{seen}");
}

#[test]
fn a_drain_finishes_the_request_in_flight_over_tls_and_closes() {
    let certs = Certs::new("drain");
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::slow(Duration::from_millis(600), "slow\n");
    let mut proxy = tls_proxy(&leaf, up.addr, &[]);
    let mut idle = TlsConn::connect(proxy.addr, certs.ca(), "localhost").expect("handshake");
    assert_eq!(idle.exchange(GET).unwrap().status, 200);
    let mut busy = TlsConn::connect(proxy.addr, certs.ca(), "localhost").expect("handshake");
    busy.send(GET).unwrap();
    up.wait_for("the second request", Duration::from_secs(5), |s| {
        s.requests.len() >= 2
    });
    proxy.sigterm();
    let r = busy
        .read_response()
        .expect("the request in flight is answered");
    assert_eq!(r.status, 200);
    assert!(
        r.head.to_ascii_lowercase().contains("connection: close"),
        "{}",
        r.head
    );
    assert!(
        idle.closed(Duration::from_secs(5)),
        "the idle TLS connection is closed by the drain"
    );
    assert!(proxy.wait_exit(Duration::from_secs(10)).is_some());
}
