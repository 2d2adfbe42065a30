//! HTTP/2 over TLS: a TLS listener offers ALPN `h2` by default and a connection that negotiates it
//! runs the same HTTP/2 front-end as h2c, through the same pipeline, with real clients nobody here
//! wrote: curl `--http2` over https (GET and a POST body, the upstream sees
//! `X-Forwarded-Proto: https`; one access-log line per stream with `protocol` = `HTTP/2` and the
//! TLS fields), `nghttp` (concurrent streams on one TLS connection), `h2load` (a bounded load, all
//! 2xx, counted as HTTP/2). A client that offers only `http/1.1` gets HTTP/1.1, and
//! `alpn = ["http/1.1"]` turns HTTP/2 off. scripts/test.sh installs curl and nghttp2-client.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use support::admin::{scrape, temp_path, wait_log_lines};
use support::certs::{Certs, Leaf};
use support::*;

/// A proxy with one TLS listener (`alpn` set when given) in front of `up`, logging to `log`.
fn h2_proxy(leaf: &Leaf, up: std::net::SocketAddr, alpn: Option<&str>, log: &str) -> Proxy {
    let alpn = alpn.map_or(String::new(), |a| format!(", alpn = {a}"));
    let cfg = temp_file(
        "h2-tls",
        &format!(
            "upstreams = [\"{up}\"]\naccess_log = \"{log}\"\n[[listeners]]\n\
             addr = \"127.0.0.1:0\"\n\
             tls = {{ certificates = [{{ cert = \"{cert}\", key = \"{key}\" }}]{alpn} }}\n",
            cert = leaf.cert(),
            key = leaf.key(),
        ),
    );
    Proxy::start(&["--config", cfg.path()])
}

/// curl with the private CA: (status, HTTP version, body).
fn curl(certs: &Certs, proxy: &Proxy, path: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let port = proxy.addr.port();
    let body = temp_path("h2-tls-curl", "out");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert", certs.ca()])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-o", body.path(), "-w", "%{http_code} %{http_version}"])
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut w = text.split(' ');
    let status = w.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = w.next().unwrap_or("").to_string();
    assert!(
        status != 0,
        "curl {path} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        status,
        version,
        std::fs::read(body.path()).unwrap_or_default(),
    )
}

fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn curl_negotiates_h2_and_an_http1_only_client_gets_http1() {
    let certs = Certs::new("h2-tls-curl");
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::echo();
    let log = temp_path("h2-tls-curl", "log");
    let proxy = h2_proxy(&leaf, up.addr, None, log.path());

    let (status, version, body) = curl(&certs, &proxy, "/get?x=1", &["--http2"]);
    assert_eq!((status, version.as_str()), (200, "2"), "GET over h2 (ALPN)");
    assert!(body.is_empty());
    let seen = up.seen();
    let r = seen.requests.last().expect("the upstream got the GET");
    assert_eq!((r.method.as_str(), r.target.as_str()), ("GET", "/get?x=1"));
    assert_eq!(r.header("x-forwarded-proto"), Some("https"));

    let payload = "q".repeat(200_000);
    let file = temp_file("h2-tls-post", &payload);
    let data = format!("@{}", file.path());
    let (status, version, body) = curl(
        &certs,
        &proxy,
        "/post",
        &["--http2", "--data-binary", &data],
    );
    assert_eq!((status, version.as_str()), (200, "2"));
    assert!(
        body == payload.as_bytes(),
        "the echoed body came back whole"
    );

    // curl --http1.1 offers only ALPN http/1.1.
    let (status, version, _) = curl(&certs, &proxy, "/h1", &["--http1.1"]);
    assert_eq!((status, version.as_str()), (200, "1.1"));
    assert_eq!(up.seen().requests.last().unwrap().target, "/h1");

    let lines = wait_log_lines(&log.0, 3, ms(5000));
    // Shards write their lines on their own: compare as a set.
    let got: BTreeSet<(&str, &str)> = lines
        .iter()
        .map(|l| (l["path"].as_str().unwrap(), l["protocol"].as_str().unwrap()))
        .collect();
    let want = [
        ("/get?x=1", "HTTP/2"),
        ("/post", "HTTP/2"),
        ("/h1", "HTTP/1.1"),
    ];
    assert_eq!(got, BTreeSet::from(want));
    for l in &lines {
        assert_eq!(l["tls_version"], "TLSv1.3", "{l}");
        assert!(
            l["tls_cipher"].as_str().is_some_and(|c| !c.is_empty()),
            "{l}"
        );
        assert_eq!(l["sni"], "localhost", "{l}");
    }
}

#[test]
fn nghttp_runs_concurrent_streams_on_one_tls_connection() {
    let certs = Certs::new("h2-tls-nghttp");
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::slow(ms(300), "slow\n");
    let log = temp_path("h2-tls-nghttp", "log");
    let proxy = h2_proxy(&leaf, up.addr, None, log.path());
    let urls: Vec<String> = (0..5)
        .map(|i| format!("https://127.0.0.1:{}/s{i}", proxy.addr.port()))
        .collect();
    let out = Command::new("nghttp")
        .args(["-n", "-s", "-t", "20"])
        .args(&urls)
        .output()
        .expect("nghttp (scripts/test.sh installs nghttp2-client)");
    let text = ok(&out);
    assert_eq!(text.matches(" 200 ").count(), 5, "{text}");
    let lines = wait_log_lines(&log.0, 5, ms(5000));
    let clients: BTreeSet<&str> = lines.iter().filter_map(|l| l["client"].as_str()).collect();
    assert_eq!(clients.len(), 1, "one connection carried every stream");
    assert!(lines
        .iter()
        .all(|l| l["status"] == 200 && l["protocol"] == "HTTP/2" && l["tls_version"].is_string()));
    assert!(up.accepted() >= 2, "the streams ran one after another");
}

#[test]
fn h2load_over_tls_is_all_2xx_and_counted_as_http2() {
    let certs = Certs::new("h2-tls-h2load");
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::fixed("ok\n");
    let log = temp_path("h2-tls-h2load", "log");
    let proxy = h2_proxy(&leaf, up.addr, None, log.path());
    let out = Command::new("h2load")
        .args(["-n", "2000", "-c", "4", "-m", "10", "-T", "20"])
        .arg(format!("https://127.0.0.1:{}/", proxy.addr.port()))
        .output()
        .expect("h2load (scripts/test.sh installs nghttp2-client)");
    let text = ok(&out);
    assert!(text.contains("Application protocol: h2"), "{text}");
    assert!(
        text.contains("requests: 2000 total, 2000 started, 2000 done, 2000 succeeded"),
        "{text}"
    );
    assert!(text.contains("status codes: 2000 2xx"), "{text}");
    let m = scrape(&proxy);
    let h2 = &[("protocol", "HTTP/2")];
    assert_eq!(m.sum("shardgate_downstream_requests_total", h2), 2000.0);
    assert_eq!(
        m.sum(
            "shardgate_downstream_requests_total",
            &[("protocol", "HTTP/1.1")]
        ),
        0.0
    );
}

#[test]
fn alpn_http1_only_turns_h2_off() {
    let certs = Certs::new("h2-tls-off");
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::fixed("ok\n");
    let log = temp_path("h2-tls-off", "log");
    let proxy = h2_proxy(&leaf, up.addr, Some("[\"http/1.1\"]"), log.path());
    let (status, version, body) = curl(&certs, &proxy, "/", &["--http2"]);
    assert_eq!(
        (status, version.as_str()),
        (200, "1.1"),
        "h2 is not offered"
    );
    assert_eq!(body, b"ok\n");
    let lines = wait_log_lines(&log.0, 1, ms(5000));
    assert_eq!(lines[0]["protocol"], "HTTP/1.1");
}
