//! TLS session resumption across shards: with `--shards 2`, a session `openssl s_client` saved
//! from one connection resumes on every reconnect (TLS 1.3 and 1.2), whichever shard the kernel
//! hands it to, because every shard holds the coordinator's ticket keys
//! (`shardgate_tls_handshakes_resumed_total` counts each on the shard that served it); after two
//! rotations (`--tls-ticket-rotation`) every shard holds the new generation, a session from
//! before no longer resumes and a fresh one resumes on every shard.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::admin::temp_path;
use support::certs::Certs;
use support::*;

/// Reconnects per protocol version: all on one shard of two happens with odds 2^-23.
const RECONNECTS: usize = 24;

const RESUMED: &str = "shardgate_tls_handshakes_resumed_total";
const GENERATION: &str = "shardgate_tls_ticket_key_generation";

fn setup(extra: &[&str]) -> (Certs, Upstream, Proxy) {
    let certs = Certs::new("resume");
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::echo_head();
    let upstream = up.addr.to_string();
    let mut args = leaf.listen_args();
    args.extend(["--upstream", upstream.as_str(), "--shards", "2"]);
    args.extend(extra);
    let proxy = Proxy::start(&args);
    (certs, up, proxy)
}

/// One `openssl s_client` connection that sends a request and reads until the proxy closes
/// (so TLS 1.3 tickets sent after the handshake are read too); `session` is `-sess_out FILE` or
/// `-sess_in FILE`. Returns what it printed; fails the test unless the request got a 200.
fn s_client(proxy: &Proxy, ca: &str, version: &str, session: [&str; 2]) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &proxy.addr.to_string()])
        .args(["-servername", "localhost", "-CAfile", ca])
        .args(["-verify_return_error", "-ign_eof", version])
        .args(session)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"GET /r HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    let out = child.wait_with_output().expect("openssl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("HTTP/1.1 200 "), "no 200 over TLS: {text}");
    text
}

/// `Reused, TLSv1.x` or `New, TLSv1.x`: openssl's line about the session.
fn session_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("Reused, ") || l.starts_with("New, "))
        .unwrap_or_else(|| panic!("no New/Reused line: {text}"))
}

/// Each shard's samples of `name` summed (resumptions are split by listener and version).
fn per_shard(m: &Metrics, name: &str) -> [f64; 2] {
    let of = |shard| {
        assert!(
            !m.select(name, &[("shard", shard)]).is_empty(),
            "{name} on {shard}"
        );
        m.sum(name, &[("shard", shard)])
    };
    [of("0"), of("1")]
}

/// Saves a session with a full handshake, then reconnects with it `RECONNECTS` times: every one
/// must resume. Returns how many resumed.
fn resume_many(proxy: &Proxy, ca: &str, version: &str, file: &Path) -> usize {
    let file = file.to_str().unwrap();
    let first = s_client(proxy, ca, version, ["-sess_out", file]);
    assert!(session_line(&first).starts_with("New, "), "{first}");
    for i in 0..RECONNECTS {
        let out = s_client(proxy, ca, version, ["-sess_in", file]);
        let line = session_line(&out);
        let want = if version == "-tls1_3" {
            "TLSv1.3"
        } else {
            "TLSv1.2"
        };
        assert!(
            line.starts_with(&format!("Reused, {want}")),
            "{version} reconnect {i} did not resume: {line}\n{out}"
        );
    }
    RECONNECTS
}

#[test]
fn every_reconnect_resumes_whichever_shard_serves_it_tls13_and_tls12() {
    let (certs, up, proxy) = setup(&[]);
    let mut resumed = 0;
    for version in ["-tls1_3", "-tls1_2"] {
        let file = temp_path("session", "pem");
        resumed += resume_many(&proxy, certs.ca(), version, &file.0);
    }
    let want = resumed as f64;
    let m = scrape_until(
        &proxy,
        Duration::from_secs(5),
        "every resumption counted",
        RESUMED,
        |m| per_shard(m, RESUMED).iter().sum::<f64>() == want,
    );
    let [a, b] = per_shard(&m, RESUMED);
    assert!(
        a > 0.0 && b > 0.0,
        "both shards resumed sessions the other may have sealed: shard 0 {a}, shard 1 {b}"
    );
    assert_eq!(
        per_shard(&m, GENERATION),
        [1.0, 1.0],
        "no rotation within 1h"
    );
    assert_eq!(up.request_count(), 2 * (RECONNECTS + 1));
}

#[test]
fn after_two_rotations_an_old_session_takes_a_full_handshake_and_a_fresh_one_resumes() {
    let (certs, _up, proxy) = setup(&["--tls-ticket-rotation", "2s"]);
    let ca = certs.ca();
    let old = temp_path("old-session", "pem");
    let out = s_client(&proxy, ca, "-tls1_3", ["-sess_out", old.path()]);
    assert!(session_line(&out).starts_with("New, "), "{out}");
    // The generation the old ticket was sealed with, at most.
    let sealed = per_shard(&scrape(&proxy), GENERATION)
        .into_iter()
        .fold(0.0, f64::max);
    assert!(sealed >= 1.0);
    // Two rotations later on every shard: that generation's key is gone everywhere.
    scrape_until(
        &proxy,
        Duration::from_secs(15),
        "two rotations on every shard",
        GENERATION,
        |m| per_shard(m, GENERATION).iter().all(|g| *g >= sealed + 2.0),
    );
    let out = s_client(&proxy, ca, "-tls1_3", ["-sess_in", old.path()]);
    assert!(
        session_line(&out).starts_with("New, "),
        "a session from before two rotations resumed: {out}"
    );
    // A fresh session resumes on whichever shard: every shard holds the new keys.
    let fresh = temp_path("fresh-session", "pem");
    let out = s_client(&proxy, ca, "-tls1_3", ["-sess_out", fresh.path()]);
    assert!(session_line(&out).starts_with("New, "), "{out}");
    let before = per_shard(&scrape(&proxy), RESUMED);
    for i in 0..8 {
        let out = s_client(&proxy, ca, "-tls1_3", ["-sess_in", fresh.path()]);
        assert!(
            session_line(&out).starts_with("Reused, TLSv1.3"),
            "fresh session, reconnect {i}: {out}"
        );
    }
    let after = per_shard(&scrape(&proxy), RESUMED);
    assert_eq!(after[0] + after[1] - before[0] - before[1], 8.0);
}

#[test]
fn a_ticket_rotation_out_of_range_is_refused_naming_the_flag() {
    for bad in ["0s", "500ms", "169h"] {
        let out = Command::new(support::proxy::bin())
            .args(["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9"])
            .args(["--tls-ticket-rotation", bad, "--check"])
            .output()
            .expect("run shardgate --check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--tls-ticket-rotation"), "{bad}: {err}");
        if bad != "169h" {
            assert!(err.contains("out of range 1s..=168h"), "{bad}: {err}");
        }
    }
}

#[test]
fn a_reload_applies_a_new_rotation_period_and_sessions_still_resume() {
    let certs = Certs::new("resume-reload");
    let leaf = certs.leaf("server", &["localhost"]);
    let up = Upstream::echo_head();
    let text = |rotation: &str| {
        format!(
            "tls_ticket_rotation = \"{rotation}\"\nupstreams = [\"{}\"]\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\
             tls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n\
             [shards]\ncount = 2\n",
            up.addr,
            leaf.cert(),
            leaf.key()
        )
    };
    let file = temp_file("resume-reload", &text("1h"));
    let proxy = Proxy::start(&["--config", file.path()]);
    let saved = temp_path("reload-session", "pem");
    let out = s_client(&proxy, certs.ca(), "-tls1_3", ["-sess_out", saved.path()]);
    assert!(session_line(&out).starts_with("New, "), "{out}");
    assert_eq!(per_shard(&scrape(&proxy), GENERATION), [1.0, 1.0]);
    // A reload keeps the keys (and so the sessions) while it changes the period.
    std::fs::write(&file.0, text("1s")).unwrap();
    support::sys::signal(proxy.pid(), libc::SIGHUP);
    proxy
        .wait_stderr(Duration::from_secs(5), "reloaded ")
        .expect("a `reloaded` line");
    let out = s_client(&proxy, certs.ca(), "-tls1_3", ["-sess_in", saved.path()]);
    assert!(
        session_line(&out).starts_with("Reused, TLSv1.3"),
        "a reload dropped the ticket keys: {out}"
    );
    scrape_until(
        &proxy,
        Duration::from_secs(10),
        "rotations every second after the reload",
        GENERATION,
        |m| per_shard(m, GENERATION).iter().all(|g| *g >= 3.0),
    );
    let running = admin(&proxy, "GET", "/config").text();
    assert!(
        running.contains("tls_ticket_rotation = \"1000ms\""),
        "{running}"
    );
}
