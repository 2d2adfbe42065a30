//! Config-file unit tests of the transport settings: TLS listeners and upstreams (tickets, file
//! watching), the upgrade socket, h2c listeners and the `[http2]` table, clusters' `protocol`,
//! and global rate limits; each parsed, rendered back and checked with located errors. The
//! helpers are tests.rs's.

use super::tests::{err, full, TWO_CLUSTERS};
use super::*;
use crate::config::Timeouts;

/// The `tls` table parses with its defaults, and `/config` writes it back so that it parses to
/// the same listener (paths only: the files are not read by `parse`).
#[test]
fn tls_listener_parses_and_renders_back() {
    let text = "upstreams = [\"127.0.0.1:9\"]\n[[listeners]]\naddr = \"127.0.0.1:8443\"\n\
                tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }, { cert = \"b.pem\", key = \"b.key\" }], client_ca = \"ca.pem\" }\n\
                [timeouts]\ntls_handshake = \"2s\"\n";
    let c = parse("t.toml", text).unwrap();
    let tls = c.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(tls.certificates[1].key, std::path::PathBuf::from("b.key"));
    assert_eq!(tls.client_auth, crate::config::ClientAuth::Required);
    assert_eq!(tls.alpn, ["h2", "http/1.1"]);
    assert_eq!(c.timeouts.tls_handshake, std::time::Duration::from_secs(2));
    assert_eq!(
        Timeouts::default().tls_handshake,
        std::time::Duration::from_secs(10)
    );
    let again = parse("r.toml", &crate::config::render(&c)).unwrap();
    assert_eq!(again.listeners, c.listeners);
    assert_eq!(again.timeouts, c.timeouts);
    let plain = parse("t.toml", "[[listeners]]\naddr = \"127.0.0.1:80\"\n").unwrap();
    assert_eq!(plain.listeners[0].tls, None);
}

/// `tls_ticket_rotation` parses (1h when absent), `/config` writes it back, and a value out of
/// range is refused at its file:line:col.
#[test]
fn tls_ticket_rotation_parses_renders_back_and_is_checked() {
    use std::time::Duration;
    let base = "listen = [\"127.0.0.1:80\"]\nupstreams = [\"127.0.0.1:9\"]\n";
    let c = parse("t.toml", base).unwrap();
    assert_eq!(c.tls_ticket_rotation, Duration::from_secs(3600));
    let c = parse("t.toml", &format!("{base}tls_ticket_rotation = \"15m\"\n")).unwrap();
    assert_eq!(c.tls_ticket_rotation, Duration::from_secs(900));
    let again = parse("r.toml", &crate::config::render(&c)).unwrap();
    assert_eq!(again.tls_ticket_rotation, c.tls_ticket_rotation);
    let text = format!("{base}tls_ticket_rotation = \"200ms\"\n");
    let mut short = parse("s.toml", &text).unwrap();
    let err = crate::config::check(&mut short).unwrap_err().to_string();
    assert!(
        err.contains("s.toml:3:") && err.contains("tls_ticket_rotation"),
        "{err}"
    );
    assert!(err.contains("out of range 1s..=168h"), "{err}");
}

/// `tls_watch_interval`: 5s unless written, `0` turns the watch off, `/config` writes it back,
/// and a bad value names the key.
#[test]
fn tls_watch_interval_parses_and_renders_back() {
    use std::time::Duration;
    let base = "upstreams = [\"127.0.0.1:9\"]\nlisten = [\"127.0.0.1:80\"]\n";
    let c = parse("t.toml", base).unwrap();
    assert_eq!(c.tls_watch_interval, Duration::from_secs(5));
    for (written, want) in [
        ("\"200ms\"", Duration::from_millis(200)),
        ("\"0\"", Duration::ZERO),
    ] {
        let text = format!("tls_watch_interval = {written}\n{base}");
        let c = parse("t.toml", &text).unwrap();
        assert_eq!(c.tls_watch_interval, want, "{written}");
        let again = parse("r.toml", &crate::config::render(&c)).unwrap();
        assert_eq!(again.tls_watch_interval, want, "{written} rendered back");
    }
    let e = parse("t.toml", &format!("tls_watch_interval = \"often\"\n{base}")).unwrap_err();
    assert_eq!(e.field, "tls_watch_interval", "{e}");
}

/// `upgrade_socket`: the default path unless written, `"off"` turns upgrades off, `/config` writes
/// it back, and an empty or too long path names the key and its line.
#[test]
fn upgrade_socket_parses_renders_back_and_names_its_errors() {
    use std::path::PathBuf;
    let base = "upstreams = [\"127.0.0.1:9\"]\nlisten = [\"127.0.0.1:80\"]\n";
    let c = parse("t.toml", base).unwrap();
    assert_eq!(
        c.upgrade_socket,
        Some(PathBuf::from(crate::config::DEFAULT_UPGRADE_SOCKET))
    );
    for (written, want) in [
        (
            "\"/tmp/sg/up.sock\"",
            Some(PathBuf::from("/tmp/sg/up.sock")),
        ),
        ("\"off\"", None),
    ] {
        let c = parse("t.toml", &format!("upgrade_socket = {written}\n{base}")).unwrap();
        assert_eq!(c.upgrade_socket, want, "{written}");
        let again = parse("r.toml", &crate::config::render(&c)).unwrap();
        assert_eq!(again.upgrade_socket, want, "{written} rendered back");
    }
    let long = format!("\"/tmp/{}\"", "x".repeat(120));
    for bad in ["\"\"", long.as_str()] {
        let e = parse("t.toml", &format!("{base}upgrade_socket = {bad}\n")).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("upgrade_socket", 3), "{e}");
    }
}

/// A cluster's `tls` table parses (cert and key together, sni checked, verify = false without
/// ca) and `/config` writes it back to the same cluster; each mistake names its key and line.
#[test]
fn upstream_tls_parses_renders_back_and_names_its_errors() {
    let head =
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n";
    let c = parse(
        "t.toml",
        &format!("{head}tls = {{ ca = \"ca.pem\", sni = \"api.internal\", cert = \"c.pem\", key = \"c.key\" }}\n"),
    )
    .unwrap();
    let t = c.clusters[0].tls.as_ref().unwrap();
    assert_eq!(t.ca, Some(std::path::PathBuf::from("ca.pem")));
    assert_eq!(t.sni.as_deref(), Some("api.internal"));
    assert!(t.verify);
    assert_eq!(
        t.client.as_ref().unwrap().key,
        std::path::PathBuf::from("c.key")
    );
    let again = parse("r.toml", &crate::config::render(&c)).unwrap();
    assert_eq!(again.clusters, c.clusters);
    let off = parse("t.toml", &format!("{head}tls = {{ verify = false }}\n")).unwrap();
    assert!(!off.clusters[0].tls.as_ref().unwrap().verify);
    let cases: &[(&str, &str)] = &[
        ("tls = { cert = \"c.pem\" }", "clusters[0].tls.key"),
        ("tls = { key = \"c.key\" }", "clusters[0].tls.cert"),
        ("tls = { sni = \"not a name\" }", "clusters[0].tls.sni"),
        ("tls = { ca = \"\" }", "clusters[0].tls.ca"),
        (
            "tls = { ca = \"ca.pem\", verify = false }",
            "clusters[0].tls.verify",
        ),
        ("tls = { ca_file = \"ca.pem\" }", "clusters[0].tls"),
    ];
    for (line, field) in cases {
        let e = parse("t.toml", &format!("{head}{line}\n")).expect_err(line);
        assert!(e.field.starts_with(field), "{line}: {e}");
        assert_eq!(e.line, 5, "{line}: {e}");
    }
    // A missing CA file fails the check at the line that names it.
    let e = err(&format!("{head}tls = {{ ca = \"/nonexistent/ca.pem\" }}\n"));
    assert_eq!((e.field.as_str(), e.line), ("clusters[0].tls.ca", 5), "{e}");
}

/// `h2c = true` on a plain listener parses and renders back; on a TLS listener it is refused at
/// its own line, naming the key and why.
#[test]
fn h2c_listener_parses_renders_back_and_is_refused_on_tls() {
    let base =
        "upstreams = [\"127.0.0.1:9\"]\n[[listeners]]\naddr = \"127.0.0.1:8080\"\nh2c = true\n";
    let c = parse("t.toml", base).unwrap();
    assert!(c.listeners[0].h2c);
    let again = parse("r.toml", &crate::config::render(&c)).unwrap();
    assert_eq!(again.listeners, c.listeners);
    let plain = parse("t.toml", "[[listeners]]\naddr = \"127.0.0.1:80\"\n").unwrap();
    assert!(!plain.listeners[0].h2c);
    let tls = "upstreams = [\"127.0.0.1:9\"]\n[[listeners]]\naddr = \"127.0.0.1:8443\"\n\
               tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }] }\nh2c = true\n";
    let e = parse("t.toml", tls).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (5, "listeners[0].h2c"), "{e}");
    assert!(e.message.contains("TLS listener"), "{e}");
}

/// `[http2]`: defaults when absent, each key read, rendered back, and a value out of range
/// refused at its line.
#[test]
fn http2_table_parses_renders_back_and_is_checked() {
    use std::time::Duration;
    let base = "listen = [\"127.0.0.1:80\"]\nupstreams = [\"127.0.0.1:9\"]\n";
    let c = full(base).unwrap();
    assert_eq!(c.http2, crate::config::Http2::default());
    assert_eq!(c.http2.max_concurrent_streams, 100);
    let text = format!(
        "{base}[http2]\nmax_concurrent_streams = 7\ninitial_stream_window = 100000\n\
         initial_connection_window = 2000000\nmax_frame_size = 32768\nmax_requests = 5\n\
         max_age = \"90s\"\nmax_pending_accept_reset_streams = 30\n\
         max_local_error_reset_streams = 40\n"
    );
    let c = full(&text).unwrap();
    let h = c.http2;
    assert_eq!(
        (h.max_concurrent_streams, h.initial_stream_window),
        (7, 100_000)
    );
    assert_eq!(
        (
            h.initial_connection_window,
            h.max_frame_size,
            h.max_requests
        ),
        (2_000_000, 32_768, 5)
    );
    assert_eq!(h.max_age, Duration::from_secs(90));
    assert_eq!(
        (
            h.max_pending_accept_reset_streams,
            h.max_local_error_reset_streams
        ),
        (30, 40)
    );
    let again = parse("r.toml", &crate::config::render(&c)).unwrap();
    assert_eq!(again.http2, c.http2);
    let e = err(&format!("{base}[http2]\nmax_frame_size = 100\n"));
    assert_eq!(
        (e.line, e.field.as_str()),
        (4, "http2.max_frame_size"),
        "{e}"
    );
    let e = err(&format!("{base}[http2]\nmax_concurrent_streams = 0\n"));
    assert_eq!(e.field, "http2.max_concurrent_streams", "{e}");
}

#[test]
fn global_rate_limit_settings() {
    let c = full(&format!("{TWO_CLUSTERS}[[routes]]\ncluster = \"a\"\nrate_limit = {{ rate = \"100/s\", burst = 20, scope = \"global\", redis = \"redis://127.0.0.1:6390\", sync = \"250ms\", on_error = \"deny\" }}\n[[routes]]\ncluster = \"b\"\nrate_limit = {{ rate = \"5/s\", scope = \"global\", redis = \"redis://cache\" }}\n[[routes]]\ncluster = \"b\"\nrate_limit = {{ rate = \"5/s\", scope = \"local\" }}\n")).unwrap();
    let g = c.routes[0]
        .rate_limit
        .as_ref()
        .unwrap()
        .global
        .clone()
        .unwrap();
    assert_eq!((g.redis.port, g.sync.as_millis()), (6390, 250));
    assert_eq!(g.on_error, super::super::OnError::Deny);
    let g = c.routes[1]
        .rate_limit
        .as_ref()
        .unwrap()
        .global
        .clone()
        .unwrap();
    assert_eq!((g.redis.host.as_str(), g.redis.port), ("cache", 6379));
    assert_eq!(g.sync, super::super::DEFAULT_SYNC);
    assert_eq!(g.on_error, super::super::OnError::Allow);
    assert_eq!(c.routes[2].rate_limit.as_ref().unwrap().global, None);
    // Rendered back, the settings read the same.
    let again = full(&super::super::render(&c)).unwrap();
    assert_eq!(again.routes[0].rate_limit, c.routes[0].rate_limit);
    assert_eq!(again.routes[1].rate_limit, c.routes[1].rate_limit);
}

/// `protocol` defaults to h1; `h1`, `h2c` and `h2` over tls render back; `h2` without tls and
/// `h2c` with it are refused naming the key and its line.
#[test]
fn cluster_protocol_parses_renders_back_and_is_checked_against_tls() {
    let head =
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n";
    let c = parse("t.toml", head).unwrap();
    assert_eq!(c.clusters[0].protocol, crate::config::UpstreamProtocol::H1);
    for ok in [
        "protocol = \"h1\"",
        "protocol = \"h2c\"",
        "protocol = \"h2\"\ntls = { verify = false }",
    ] {
        let c = parse("t.toml", &format!("{head}{ok}\n")).expect(ok);
        let again = parse("r.toml", &crate::config::render(&c)).unwrap();
        assert_eq!(again.clusters, c.clusters, "{ok}");
    }
    for line in [
        "protocol = \"h3\"",
        "protocol = \"h2\"",
        "protocol = \"h2c\"\ntls = { verify = false }",
    ] {
        let e = parse("t.toml", &format!("{head}{line}\n")).expect_err(line);
        assert_eq!(
            (e.field.as_str(), e.line),
            ("clusters[0].protocol", 5),
            "{e}"
        );
    }
}
