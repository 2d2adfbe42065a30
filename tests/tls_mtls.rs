//! Client certificates on a TLS listener (`client_ca`, `client_auth`): required refuses a client
//! without one or with one from another CA; a verified certificate goes upstream as Envoy's
//! `X-Forwarded-Client-Cert` (what a client sent under that name is dropped unless it is a trusted
//! proxy); optional lets a client without one through with no such header. The access log
//! carries the TLS version, cipher, SNI and the client certificate's subject.

mod support;

use std::process::{Command, Output};

use support::admin::{temp_path, wait_log_lines};
use support::certs::{Certs, Leaf};
use support::*;

struct Setup {
    _certs: Certs,
    _other: Certs,
    ca: String,
    client: Leaf,
    stranger: Leaf,
    up: Upstream,
    proxy: Proxy,
    log: support::TempFile,
    _cfg: support::TempFile,
}

fn setup(auth: &str, extra_top: &str) -> Setup {
    let certs = Certs::new("mtls");
    let server = certs.leaf("server", &["localhost"]);
    let client = certs.leaf("client", &["client.test"]);
    let other = Certs::new("other");
    let stranger = other.leaf("stranger", &["client.test"]);
    let up = Upstream::echo_head();
    let log = temp_path("mtls", "log");
    let cfg = temp_file(
        "mtls",
        &format!(
            "upstreams = [\"{}\"]\naccess_log = \"{}\"\n{extra_top}\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\
             tls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}], client_ca = \"{}\", client_auth = \"{auth}\" }}\n",
            up.addr,
            log.path(),
            server.cert(),
            server.key(),
            certs.ca()
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path()]);
    Setup {
        ca: certs.ca().to_string(),
        _certs: certs,
        _other: other,
        client,
        stranger,
        up,
        proxy,
        log,
        _cfg: cfg,
    }
}

/// curl to the listener, with a client certificate when given, and extra arguments.
fn curl(s: &Setup, cert: Option<&Leaf>, extra: &[&str]) -> Output {
    let port = s.proxy.addr.port();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert", &s.ca])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(extra);
    if let Some(c) = cert {
        cmd.args(["--cert", c.cert(), "--key", c.key()]);
    }
    cmd.arg(format!("https://localhost:{port}/who"));
    cmd.output().expect("run curl")
}

fn xfcc_lines(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("x-forwarded-client-cert:")
        })
        .collect()
}

#[test]
fn a_required_certificate_goes_upstream_as_xfcc_and_into_the_log() {
    let s = setup("required", "");
    let out = curl(
        &s,
        Some(&s.client),
        &["-H", "X-Forwarded-Client-Cert: By=forged"],
    );
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xfcc = xfcc_lines(&body);
    assert_eq!(xfcc.len(), 1, "only the proxy's own header: {body}");
    assert!(xfcc[0].contains(": Hash="), "{}", xfcc[0]);
    assert!(
        xfcc[0].contains(";Subject=\"CN=client.test\""),
        "{}",
        xfcc[0]
    );
    assert!(
        xfcc[0].ends_with(";DNS=client.test\r") || xfcc[0].ends_with(";DNS=client.test"),
        "{}",
        xfcc[0]
    );
    assert!(!body.contains("forged"), "{body}");

    let lines = wait_log_lines(&s.log.0, 1, ms(3000));
    let l = &lines[0];
    assert_eq!(l["tls_version"].as_str(), Some("TLSv1.3"), "{l}");
    assert!(
        l["tls_cipher"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{l}"
    );
    assert_eq!(l["sni"].as_str(), Some("localhost"), "{l}");
    assert_eq!(l["client_cert"].as_str(), Some("CN=client.test"), "{l}");
}

#[test]
fn a_required_certificate_refuses_clients_without_one_or_from_another_ca() {
    let s = setup("required", "");
    for (cert, what) in [(None, "no certificate"), (Some(&s.stranger), "another CA")] {
        let out = curl(&s, cert, &[]);
        assert!(
            !out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(s.up.request_count(), 0);
    scrape_until(
        &s.proxy,
        ms(5000),
        "two handshakes refused for their certificate",
        "shardgate_tls_handshakes_total",
        |m| {
            m.sum(
                "shardgate_tls_handshakes_total",
                &[("result", "bad_certificate")],
            ) == 2.0
        },
    );
    // The same listener still serves a client with a good certificate.
    assert!(curl(&s, Some(&s.client), &[]).status.success());
}

#[test]
fn an_optional_certificate_lets_clients_without_one_through() {
    let s = setup("optional", "");
    let out = curl(&s, None, &["-H", "X-Forwarded-Client-Cert: By=forged"]);
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{body}");
    assert!(
        xfcc_lines(&body).is_empty(),
        "no certificate, no header: {body}"
    );
    let out = curl(&s, Some(&s.client), &[]);
    assert_eq!(xfcc_lines(&String::from_utf8_lossy(&out.stdout)).len(), 1);
    // One from another CA is still verified, and refused.
    assert!(!curl(&s, Some(&s.stranger), &[]).status.success());
    // Shards flush their lines in any order: one line each way.
    let lines = wait_log_lines(&s.log.0, 2, ms(3000));
    let certs: Vec<Option<&str>> = lines.iter().map(|l| l["client_cert"].as_str()).collect();
    assert!(certs.contains(&None), "{lines:?}");
    assert!(certs.contains(&Some("CN=client.test")), "{lines:?}");
}

#[test]
fn a_trusted_proxy_keeps_the_xfcc_it_sent() {
    let s = setup("required", "trusted_proxies = [\"127.0.0.1/32\"]");
    let out = curl(
        &s,
        Some(&s.client),
        &["-H", "X-Forwarded-Client-Cert: By=edge;Hash=00"],
    );
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let xfcc = xfcc_lines(&body);
    assert_eq!(xfcc.len(), 2, "the trusted proxy's, then ours: {body}");
    assert!(xfcc[0].contains("By=edge;Hash=00"), "{body}");
    assert!(xfcc[1].contains(";Subject=\"CN=client.test\""), "{body}");
}
