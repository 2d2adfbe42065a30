//! The upgrade allow-list against a real h2c-capable upstream (hypercorn, tests/h2c/upstream.py):
//! an `Upgrade: h2c` request is forwarded as a plain HTTP/1.1 request (no `Upgrade`, no
//! `upgrade` Connection token, no `HTTP2-Settings`), so no 101 reaches the client and every
//! request after it on the connection still goes through routing (a direct 403), rate limits (a
//! 1/min route answers 429 the second time), header removal, and the access log (one line per
//! request). Also: a 101 to an upgrade that was not forwarded is a 502, never a tunnel; `h2c` in
//! an allow-list is a config error; `--upgrades` and a route's `upgrades` pick what is forwarded.

mod support;

use serde_json::Value;
use support::admin::{temp_path, wait_log_lines};
use support::script::Served;
use support::*;

/// tests/h2c/upstream.py (hypercorn) on 127.0.0.1; killed when dropped.
fn hypercorn() -> Served {
    Served::start("h2c/upstream.py", &[], "hypercorn (pip install hypercorn)")
}

const H2C_UPGRADE: &[u8] = b"GET /whoami HTTP/1.1\r\nHost: shardgate.test\r\n\
Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n";

/// What the upstream app reported: its protocol and the headers it got.
fn report(r: &Response) -> (String, Vec<(String, String)>) {
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not the app's JSON ({e}): {:?}", r.text()));
    let headers = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_string(),
                h[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (v["http_version"].as_str().unwrap().to_string(), headers)
}

fn has(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n == name)
}

#[test]
fn h2c_upgrade_is_not_tunnelled_and_routes_limits_and_rules_hold() {
    let up = hypercorn();
    let log = temp_path("h2c-log", "jsonl");
    let cfg = temp_file(
        "h2c",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{up}\"]\naccess_log = \"{log}\"\n\n\
             [[routes]]\npath = \"/forbidden\"\ndirect = {{ status = 403, body = \"no\\n\" }}\n\n\
             [[routes]]\npath = \"/limited\"\ncluster = \"default\"\nrate_limit = {{ rate = \"1/m\", burst = 1 }}\n\n\
             [[routes]]\ncluster = \"default\"\nrequest_headers_remove = [\"x-secret\"]\n",
            up = up.addr,
            log = log.path()
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path(), "--shards", "1"]);
    let mut c = proxy.connect();

    let r = c.exchange(H2C_UPGRADE);
    assert_eq!(
        r.status, 200,
        "the h2c upgrade was answered {}: {:?}",
        r.status, r.head.headers
    );
    assert!(!r.head.has("upgrade"), "{:?}", r.head.headers);
    let (version, headers) = report(&r);
    assert_eq!(version, "1.1", "the upstream spoke {version} to the proxy");
    for name in ["upgrade", "http2-settings"] {
        assert!(
            !has(&headers, name),
            "{name} reached the upstream: {headers:?}"
        );
    }
    assert!(
        headers
            .iter()
            .all(|(n, v)| n != "connection" || !v.to_ascii_lowercase().contains("upgrade")),
        "an upgrade token reached the upstream: {headers:?}"
    );

    // The connection is still HTTP/1.1 through the proxy's own rules.
    let r = c.exchange(&get("/forbidden"));
    assert_eq!(
        (r.status, r.text()),
        (403, "no\n".to_string()),
        "the direct route"
    );
    let r = c.exchange(&get("/limited"));
    assert_eq!(r.status, 200, "the first request of a 1/min route");
    let r = c.exchange(&get("/limited"));
    assert_eq!(r.status, 429, "the second request of a 1/min route");
    let r = c.exchange(
        b"GET /strip HTTP/1.1\r\nHost: shardgate.test\r\nX-Secret: s3cr3t\r\nX-Kept: yes\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let (version, headers) = report(&r);
    assert_eq!(version, "1.1");
    assert!(
        !has(&headers, "x-secret"),
        "a removed header reached the upstream: {headers:?}"
    );
    assert!(has(&headers, "x-kept"), "{headers:?}");

    // The HTTP/2 preface an attacker sends next is not a request.
    c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let r = c.read_response().expect("an answer to the HTTP/2 preface");
    assert!(
        r.status >= 400,
        "the HTTP/2 preface was answered {}",
        r.status
    );
    c.expect_closed(ms(3000)).expect("closed after the preface");

    let lines = wait_log_lines(std::path::Path::new(log.path()), 6, ms(5000));
    let statuses: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap_or("").to_string(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses.len(),
        6,
        "one access log line per request: {statuses:?}"
    );
    assert_eq!(
        statuses[..5],
        [
            ("/whoami".to_string(), 200),
            ("/forbidden".to_string(), 403),
            ("/limited".to_string(), 200),
            ("/limited".to_string(), 429),
            ("/strip".to_string(), 200),
        ]
    );
}

/// An upstream that switches protocols although no upgrade was forwarded: 502, connection closed,
/// and nothing it sent after the 101 reaches the client.
#[test]
fn switching_without_a_forwarded_upgrade_is_502_not_a_tunnel() {
    let up = Upstream::start(|p| {
        let Some(req) = p.next_request() else { return };
        p.note(format!("upgrade={:?}", req.header("upgrade")));
        p.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nSECRET-FRAMES");
        p.wait_close();
    });
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    c.send(H2C_UPGRADE).unwrap();
    let r = expect_canned_then_close(&mut c, 502, "a 101 to a request whose upgrade was dropped");
    assert!(!r.text().contains("SECRET"), "{:?}", r.text());
    let seen = up.seen();
    assert_eq!(seen.notes, vec!["upgrade=None".to_string()]);
}

/// The allow-list: `--upgrades none` drops WebSocket upgrades, a route's `upgrades` overrides
/// the flag, and `h2c` is refused in the file (file:line) and in the flag.
#[test]
fn allow_list_flag_route_key_and_h2c_refused() {
    let up = Upstream::start(|p| {
        p.serve(|req| {
            let body = format!("upgrade={:?}", req.header("upgrade"));
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
    });
    let cfg = temp_file(
        "upgrades-route",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n\n[[routes]]\npath_prefix = \"/ws\"\ncluster = \"default\"\nupgrades = [\"websocket\"]\n\n[[routes]]\ncluster = \"default\"\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&[
        "--config",
        cfg.path(),
        "--shards",
        "1",
        "--upgrades",
        "none",
    ]);
    for (path, want) in [
        ("/ws", r#"upgrade=Some("websocket")"#),
        ("/other", "upgrade=None"),
    ] {
        let mut c = proxy.connect();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        );
        let r = c.exchange(req.as_bytes());
        assert_eq!(r.text(), want, "{path}");
    }

    let bad = temp_file(
        "upgrades-h2c",
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n\n[[routes]]\ncluster = \"default\"\nupgrades = [\"websocket\", \"h2c\"]\n",
    );
    let run = support::run(&["--config", bad.path(), "--check"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(":6:")
            && run.stderr.contains("routes[0].upgrades")
            && run.stderr.contains("RFC 9113"),
        "{}",
        run.stderr
    );
    let run = support::run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--upgrades",
        "websocket,h2c",
        "--check",
    ]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--upgrades"), "{}", run.stderr);
}
