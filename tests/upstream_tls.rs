//! TLS to upstreams (`[[clusters]] tls`, `--upstream-tls`, `--upstream-ca`): requests reach an
//! HTTPS upstream with a private CA and reuse one connection (one handshake for many requests);
//! a certificate for another name is a 502 that says so, counted by reason, with nothing sent;
//! the system trust store is used when no CA is named (SSL_CERT_FILE); `verify = false` works and
//! warns at start and reload; a client certificate is presented when configured; health checks
//! speak TLS and verify like the pool; a broken CA file fails `--check` naming the field; an
//! upstream that requires a client certificate the cluster does not have is a 502 that says so,
//! counted as `client_certificate`, with TLS 1.2 (refused in the handshake) and TLS 1.3 (refused
//! after it, on the first read).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::certs::{Certs, Leaf};
use support::tls_upstream::{After, TlsUpstream};
use support::*;

/// A config with one cluster `web` at `localhost:PORT` (so the SNI is `localhost`) whose `tls`
/// table is `tls`, and `extra` lines appended to the cluster.
fn config(up: SocketAddr, tls: &str, extra: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n[[clusters]]\nname = \"web\"\nendpoints = [\"localhost:{}\"]\n\
         tls = {{ {tls} }}\n{extra}\n",
        up.port()
    )
}

/// Certificates: a CA and a leaf for `localhost` it signs.
fn server_certs() -> (Certs, Leaf) {
    let certs = Certs::new("up");
    let leaf = certs.leaf("upstream", &["localhost"]);
    (certs, leaf)
}

fn start(text: &str) -> (Proxy, TempFile) {
    let file = temp_file("upstream-tls", text);
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    (proxy, file)
}

fn metric(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.sum(name, labels)
}

#[test]
fn requests_reach_an_https_upstream_with_a_private_ca_on_one_reused_connection() {
    let (certs, leaf) = server_certs();
    let up = TlsUpstream::start(&leaf, None);
    let (proxy, _f) = start(&config(up.addr, &format!("ca = {:?}", certs.ca()), ""));
    let mut c = proxy.connect();
    for i in 0..5 {
        let r = c.exchange(&get(&format!("/r{i}")));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(
            r.text(),
            format!("sni=localhost client_cert=no path=/r{i}"),
            "the endpoint's host name went as SNI"
        );
    }
    // Another client connection reuses the same pooled TLS connection.
    let r = proxy.connect().exchange(&get("/other"));
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.seen();
    assert_eq!(seen.paths.len(), 6, "{seen:?}");
    assert_eq!(
        (seen.accepted, seen.handshakes),
        (1, 1),
        "one connection, one handshake"
    );
    let m = scrape_until(
        &proxy,
        Duration::from_secs(3),
        "six upstream responses",
        "shardgate_upstream",
        |m| {
            metric(
                m,
                "shardgate_upstream_requests_total",
                &[("cluster", "web")],
            ) == 6.0
        },
    );
    let web = [("cluster", "web")];
    assert_eq!(
        metric(&m, "shardgate_upstream_tls_handshakes_total", &web),
        1.0
    );
    assert_eq!(metric(&m, "shardgate_upstream_connects_total", &web), 1.0);
    assert_eq!(metric(&m, "shardgate_upstream_reuses_total", &web), 5.0);
    let ratio = metric(&m, "shardgate_upstream_new_connection_ratio", &web);
    assert!((ratio - 1.0 / 6.0).abs() < 1e-9, "reuse ratio {ratio}");
    assert_eq!(
        metric(&m, "shardgate_upstream_tls_failures_total", &web),
        0.0
    );
}

#[test]
fn a_certificate_for_another_name_is_a_502_that_says_so_and_is_counted() {
    let (certs, leaf) = server_certs();
    let up = TlsUpstream::start(&leaf, None);
    let tls = format!("ca = {:?}, sni = \"api.example\"", certs.ca());
    let (proxy, _f) = start(&config(up.addr, &tls, ""));
    let mut c = proxy.connect();
    let r = expect_canned_then_close_after(&mut c, &get("/x"), 502);
    assert_eq!(r.text(), "upstream certificate rejected\n");
    let seen = up.seen();
    assert!(seen.paths.is_empty(), "nothing sent upstream: {seen:?}");
    assert_eq!(seen.handshakes, 0, "{seen:?}");
    let m = scrape_until(
        &proxy,
        Duration::from_secs(3),
        "a name mismatch",
        "shardgate_upstream",
        |m| {
            metric(
                m,
                "shardgate_upstream_tls_failures_total",
                &[("cluster", "web"), ("reason", "name_mismatch")],
            ) >= 1.0
        },
    );
    // Counted as an endpoint failure (what the breaker counts).
    assert!(
        metric(
            &m,
            "shardgate_upstream_failures_total",
            &[("cluster", "web")]
        ) >= 1.0
    );
    assert_eq!(
        metric(
            &m,
            "shardgate_upstream_tls_failures_total",
            &[("cluster", "web"), ("reason", "unknown_issuer")]
        ),
        0.0
    );
}

/// Sends `req` and expects shardgate's canned `status`, then a close.
fn expect_canned_then_close_after(c: &mut Conn, req: &[u8], status: u16) -> Response {
    c.send(req).unwrap();
    expect_canned_then_close(c, status, "upstream TLS failure")
}

#[test]
fn upstream_tls_flag_verifies_against_the_system_roots_and_upstream_ca_names_a_ca() {
    let (certs, leaf) = server_certs();
    let other = Certs::new("other");
    let up = TlsUpstream::start(&leaf, None);
    let upstream = format!("localhost:{}", up.addr.port());
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--upstream",
        &upstream,
    ];
    let with = |extra: &[&str], roots: &str| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        Proxy::start_with_env(
            &args,
            &[("SSL_CERT_FILE", Some(roots)), ("SSL_CERT_DIR", None)],
        )
    };
    // The system store (here: SSL_CERT_FILE) does not hold the upstream's CA: refused.
    let proxy = with(&["--upstream-tls"], other.ca());
    let r = expect_canned_then_close_after(&mut proxy.connect(), &get("/a"), 502);
    assert_eq!(r.text(), "upstream certificate rejected\n");
    scrape_until(
        &proxy,
        Duration::from_secs(3),
        "an unknown issuer",
        "shardgate_upstream_tls",
        |m| {
            metric(
                m,
                "shardgate_upstream_tls_failures_total",
                &[("cluster", "default"), ("reason", "unknown_issuer")],
            ) >= 1.0
        },
    );
    drop(proxy);
    // The system store holds it: served.
    let proxy = with(&["--upstream-tls"], certs.ca());
    let r = proxy.connect().exchange(&get("/b"));
    assert_eq!(r.status, 200, "{}", r.text());
    drop(proxy);
    // --upstream-ca names the CA (and implies --upstream-tls).
    let proxy = with(&["--upstream-ca", certs.ca()], other.ca());
    let r = proxy.connect().exchange(&get("/c"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.seen().paths, ["/b", "/c"]);
}

#[test]
fn verify_false_accepts_any_certificate_and_warns_at_start_and_reload() {
    // A certificate from a CA nobody trusts, for another name.
    let untrusted = Certs::new("nobody");
    let leaf = untrusted.leaf("upstream", &["elsewhere.example"]);
    let up = TlsUpstream::start(&leaf, None);
    let (proxy, _f) = start(&config(up.addr, "verify = false", ""));
    let warning = "warning: cluster web: upstream TLS certificate verification is OFF";
    assert!(
        proxy
            .stderr
            .wait(Duration::from_secs(3), |l| l.starts_with(warning))
            .is_some(),
        "stderr: {:?}",
        proxy.stderr_lines()
    );
    let r = proxy.connect().exchange(&get("/v"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.seen().paths, ["/v"]);
    let r = admin(&proxy, "POST", "/reload");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        proxy
            .stderr
            .wait_n(Duration::from_secs(3), 2, |l| l.starts_with(warning)),
        "warned again at reload: {:?}",
        proxy.stderr_lines()
    );
}

#[test]
fn a_client_certificate_is_presented_when_configured() {
    let (certs, leaf) = server_certs();
    let clients = Certs::new("clients");
    let client = clients.leaf("proxy", &["proxy.internal"]);
    let up = TlsUpstream::start(&leaf, Some(clients.ca()));
    // Without one, the upstream refuses the connection: a 502, nothing served.
    let (proxy, _f) = start(&config(up.addr, &format!("ca = {:?}", certs.ca()), ""));
    let mut c = proxy.connect();
    c.send(&get("/none")).unwrap();
    let r = c.read_response().expect("an answer");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(up.seen().paths.is_empty(), "{:?}", up.seen());
    drop(proxy);
    // With one, it is served and the upstream saw the certificate.
    let tls = format!(
        "ca = {:?}, cert = {:?}, key = {:?}",
        certs.ca(),
        client.cert(),
        client.key()
    );
    let (proxy, _f) = start(&config(up.addr, &tls, ""));
    let r = proxy.connect().exchange(&get("/mtls"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "sni=localhost client_cert=yes path=/mtls");
}

#[test]
fn a_missing_client_certificate_is_a_502_that_says_so_with_tls_1_2_and_1_3() {
    let (certs, leaf) = server_certs();
    let clients = Certs::new("clients-missing");
    for (version, name) in [
        (&rustls::version::TLS12, "TLS 1.2"),
        (&rustls::version::TLS13, "TLS 1.3"),
    ] {
        let up =
            TlsUpstream::start_versions(&leaf, Some(clients.ca()), After::KeepAlive, &[version]);
        let (proxy, _f) = start(&config(up.addr, &format!("ca = {:?}", certs.ca()), ""));
        let mut c = proxy.connect();
        let r = expect_canned_then_close_after(&mut c, &get("/none"), 502);
        assert_eq!(
            r.text(),
            "upstream refused the client certificate (none configured, or not trusted)\n",
            "{name}"
        );
        // The upstream's thread notes the failed handshake when its side ends, which may come
        // after the proxy's answer. TLS 1.2 fails in the handshake, which the connect-retry
        // policy may try once more.
        let seen = support::policy::poll(Duration::from_secs(3), "the refusal seen", || {
            let seen = up.seen();
            (seen.failed >= 1).then_some(seen)
        });
        assert!(seen.paths.is_empty(), "{name}: {seen:?}");
        assert_eq!(seen.handshakes, 0, "{name}: {seen:?}");
        let reason = [("cluster", "web"), ("reason", "client_certificate")];
        let m = scrape_until(
            &proxy,
            Duration::from_secs(3),
            "a client certificate refusal",
            "shardgate_upstream",
            |m| metric(m, "shardgate_upstream_tls_failures_total", &reason) >= 1.0,
        );
        let refused = metric(&m, "shardgate_upstream_tls_failures_total", &reason);
        let all = metric(
            &m,
            "shardgate_upstream_tls_failures_total",
            &[("cluster", "web")],
        );
        assert_eq!(all, refused, "{name}: counted under its reason only");
    }
}

#[test]
fn health_checks_speak_tls_and_verify_like_the_pool() {
    let (certs, leaf) = server_certs();
    let good_up = TlsUpstream::start(&leaf, None);
    let bad_up = TlsUpstream::start(&leaf, None);
    let check = "[clusters.health_check]\ncheck = \"http:/hc\"\ninterval = \"100ms\"\n\
                 timeout = \"1s\"\nrise = 1\nfall = 1";
    let cluster = |name: &str, up: &TlsUpstream, sni: &str| {
        format!(
            "[[clusters]]\nname = \"{name}\"\nendpoints = [\"localhost:{}\"]\n\
             tls = {{ ca = {:?}{sni} }}\n{check}\n",
            up.addr.port(),
            certs.ca()
        )
    };
    let text = |bad_sni: &str| {
        format!(
            "listen = [\"127.0.0.1:0\"]\n\n[[routes]]\ncluster = \"good\"\n\n{}\n{}",
            cluster("good", &good_up, ""),
            cluster("bad", &bad_up, bad_sni)
        )
    };
    let (proxy, file) = start(&text(", sni = \"api.example\""));
    let healthy = |m: &Metrics, c: &str| metric(m, "shardgate_upstream_healthy", &[("cluster", c)]);
    scrape_until(
        &proxy,
        Duration::from_secs(5),
        "bad marked down",
        "shardgate_upstream_healthy",
        |m| healthy(m, "bad") == 0.0,
    );
    // The good endpoint's probes arrive over verified TLS; the bad one's never send a request.
    wait_until(Duration::from_secs(5), "a probe over TLS", || {
        good_up.seen().paths.iter().any(|p| p == "/hc")
    });
    let good = good_up.seen();
    assert!(good.sni.iter().all(|s| s == "localhost"), "{good:?}");
    assert!(bad_up.seen().paths.is_empty(), "{:?}", bad_up.seen());
    assert_eq!(healthy(&scrape(&proxy), "good"), 1.0);
    let r = proxy.connect().exchange(&get("/"));
    assert_eq!(r.status, 200, "{}", r.text());
    // With the right name the same endpoint's TLS probes pass and mark it up again.
    std::fs::write(&file.0, text("")).unwrap();
    let r = admin(&proxy, "POST", "/reload");
    assert_eq!(r.status, 200, "{}", r.text());
    scrape_until(
        &proxy,
        Duration::from_secs(5),
        "bad marked up",
        "shardgate_upstream_healthy",
        |m| healthy(m, "bad") == 1.0,
    );
    assert!(
        bad_up.seen().paths.iter().any(|p| p == "/hc"),
        "{:?}",
        bad_up.seen()
    );
}

/// Polls `cond` every 10 ms until it holds, or fails the test after `within`.
fn wait_until(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} not seen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_broken_ca_file_fails_the_check_naming_the_field() {
    let bad = temp_file("upstream-ca", "not a certificate\n");
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n\n[[clusters]]\nname = \"web\"\nendpoints = [\"localhost:1\"]\n\
         tls = {{ ca = {:?} }}\n",
        bad.path()
    );
    let file = temp_file("upstream-tls-check", &text);
    let out = run(&["--config", file.path(), "--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{}:6:", file.path()))
            && out.stderr.contains("clusters[0].tls.ca")
            && out.stderr.contains(bad.path()),
        "{}",
        out.stderr
    );
    // The flag's CA: the error names the flag.
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "localhost:1",
        "--upstream-ca",
        bad.path(),
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--upstream-ca") && out.stderr.contains(bad.path()),
        "{}",
        out.stderr
    );
}

#[test]
fn an_idle_tls_connection_the_upstream_closed_is_not_reused() {
    let (certs, leaf) = server_certs();
    let up = TlsUpstream::start_with(&leaf, None, After::Drop);
    let (proxy, _f) = start(&config(up.addr, &format!("ca = {:?}", certs.ca()), ""));
    let post = request("POST", "/p", &[], b"abc");
    let r = proxy.connect().exchange(&post);
    assert_eq!(r.status, 200, "{}", r.text());
    wait_until(Duration::from_secs(3), "the upstream's close", || {
        up.seen().closed == 1
    });
    // A POST is not sent again after a failure: it only succeeds because the pool saw the close
    // (close_notify and FIN) on the TCP socket under TLS and opened a new connection.
    let r = proxy.connect().exchange(&post);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "sni=localhost client_cert=no path=/p body=3");
    let seen = up.seen();
    assert_eq!((seen.accepted, seen.handshakes), (2, 2), "{seen:?}");
}

#[test]
fn a_websocket_upgrade_tunnels_over_the_tls_upstream() {
    let (certs, leaf) = server_certs();
    let up = TlsUpstream::start(&leaf, None);
    let (proxy, _f) = start(&config(up.addr, &format!("ca = {:?}", certs.ca()), ""));
    let mut ws = proxy.connect();
    ws.send(
        b"GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    assert_eq!(ws.read_response().expect("101").status, 101);
    for msg in [&b"ping"[..], b"over tls"] {
        ws.send(msg).unwrap();
        assert_eq!(ws.read_raw(msg.len()).expect("echo"), msg);
    }
    assert_eq!(up.seen().paths, ["/chat"]);
}
