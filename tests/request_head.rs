//! Request-head hardening on raw bytes, against a recording upstream: transfer codings besides
//! one final `chunked` (501), Host and absolute-form authority syntax (400), header names with
//! underscores (`--underscores-in-headers` / `underscores_in_headers`), `--strict-http`, and
//! absolute-form targets reaching the upstream in origin-form (raw bytes and `curl -x`).
//! A refused request gets the canned answer, the connection closes, the access log has its line,
//! and the upstream never receives a byte of it: each proxy then forwards a sentinel request, and
//! the upstream must have received that one alone.

mod support;

use std::process::Command;
use std::time::Duration;

use support::admin::{temp_path, wait_log_lines};
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// Sends each `(name, raw bytes)` on its own connection and expects the canned `status` then a
/// close; then a sentinel request proves that nothing of them reached the upstream.
fn refused(extra: &[&str], status: u16, cases: &[(&str, &[u8])]) {
    let up = Upstream::echo();
    let log = temp_path("request-head", "log");
    let mut args = vec!["--shards", "1", "--access-log", log.path()];
    args.extend_from_slice(extra);
    let proxy = Proxy::to(&[up.addr], &args);
    for (name, raw) in cases {
        let mut c = proxy.connect();
        c.send(raw).unwrap();
        expect_canned_then_close(&mut c, status, name);
    }
    let lines = wait_log_lines(&log.0, cases.len(), WAIT);
    for (l, (name, _)) in lines.iter().zip(cases) {
        assert_eq!(l["status"].as_u64(), Some(status.into()), "{name}: log {l}");
    }
    assert_only_sentinel(&proxy, &up);
}

/// Forwards `GET /sentinel` and asserts it is all the upstream ever received.
fn assert_only_sentinel(proxy: &Proxy, up: &Upstream) {
    let r = proxy
        .connect()
        .exchange(b"GET /sentinel HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.status, 200);
    let seen = up.wait_for("the sentinel", WAIT, |s| !s.requests.is_empty());
    let targets: Vec<&str> = seen.requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        ["/sentinel"],
        "the upstream received only the sentinel"
    );
    assert_eq!(
        seen.bytes_total,
        seen.requests[0].head.raw.len(),
        "no byte besides the sentinel's head: {:?}",
        String::from_utf8_lossy(&seen.bytes)
    );
}

/// Sends one request and returns what the upstream received.
fn forwarded(extra: &[&str], raw: &[u8]) -> support::Request {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], extra);
    let r = proxy.connect().exchange(raw);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(raw));
    let seen = up.wait_for("the request", WAIT, |s| s.requests.len() == 1);
    seen.requests[0].clone()
}

#[test]
fn codings_besides_one_final_chunked_are_501() {
    // What follows the body would be a second request to an upstream that decodes gzip first.
    let smuggle = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
        0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n";
    refused(
        &[],
        501,
        &[
            ("gzip, chunked", smuggle),
            (
                "gzip and chunked in two fields",
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            (
                "deflate, chunked",
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: deflate,chunked\r\n\r\n0\r\n\r\n",
            ),
            (
                "identity, chunked",
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
            ),
        ],
    );
}

#[test]
fn plain_chunked_still_flows() {
    let got = forwarded(
        &[],
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(got.body, b"abc");
}

#[test]
fn bad_host_syntax_is_400() {
    refused(
        &[],
        400,
        &[
            ("space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            ("slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            ("at sign", b"GET / HTTP/1.1\r\nHost: evil@good\r\n\r\n"),
            ("control byte", b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n"),
            ("port too large", b"GET / HTTP/1.1\r\nHost: h:65536\r\n\r\n"),
            ("port not digits", b"GET / HTTP/1.1\r\nHost: h:http\r\n\r\n"),
            (
                "empty host with port",
                b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n",
            ),
            ("open bracket", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"),
            (
                "absolute-form userinfo",
                b"GET http://user@h/x HTTP/1.1\r\nHost: h\r\n\r\n",
            ),
            (
                "absolute-form bad port",
                b"GET http://h:99999/x HTTP/1.1\r\nHost: h:99999\r\n\r\n",
            ),
            (
                "absolute-form empty authority",
                b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
            ),
        ],
    );
}

#[test]
fn valid_hosts_pass() {
    for host in ["h:", "[::1]:8080", "10.0.0.1:80", "a-b.example"] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let got = forwarded(&[], raw.as_bytes());
        assert_eq!(got.header("host"), Some(host));
    }
}

const UNDERSCORED: &[u8] = b"GET /u HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\n\
    Transfer_Encoding: chunked\r\nX-Kept: 1\r\n\r\n";

#[test]
fn underscored_headers_are_dropped_by_default() {
    let got = forwarded(&[], UNDERSCORED);
    let names: Vec<&str> = got.head.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.iter().any(|n| n.contains('_')), "{names:?}");
    assert_eq!(got.header("x-kept"), Some("1"));
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[test]
fn underscored_headers_pass_when_asked() {
    let got = forwarded(&["--underscores-in-headers", "pass"], UNDERSCORED);
    assert_eq!(got.header("x_forwarded_for"), Some("6.6.6.6"));
    assert_eq!(got.header("transfer_encoding"), Some("chunked"));
}

#[test]
fn underscored_headers_rejected_when_asked() {
    refused(
        &["--underscores-in-headers", "reject"],
        400,
        &[("underscored names", UNDERSCORED)],
    );
}

#[test]
fn underscores_key_in_the_file_applies_and_reloads() {
    let up = Upstream::echo();
    let text = |mode: &str| {
        format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\nunderscores_in_headers = \"{mode}\"\n",
            up.addr
        )
    };
    let file = temp_file("underscores", &text("pass"));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let r = proxy.connect().exchange(UNDERSCORED);
    assert_eq!(r.status, 200);
    let seen = up.wait_for("the request", WAIT, |s| s.requests.len() == 1);
    assert_eq!(seen.requests[0].header("x_forwarded_for"), Some("6.6.6.6"));

    std::fs::write(&file.0, text("reject")).unwrap();
    support::sys::signal(proxy.pid(), libc::SIGHUP);
    proxy
        .wait_stderr(WAIT, "reloaded ")
        .expect("a `reloaded` line on stderr");
    let mut c = proxy.connect();
    c.send(UNDERSCORED).unwrap();
    expect_canned_then_close(&mut c, 400, "after the reload to reject");
    assert_eq!(
        up.request_count(),
        1,
        "the refused request reached the upstream"
    );
}

#[test]
fn bad_underscores_value_names_the_flag_and_the_key() {
    let run = support::run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--underscores-in-headers",
        "allow",
        "--check",
    ]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("--underscores-in-headers")
            && run.stderr.contains("drop, pass or reject"),
        "{}",
        run.stderr
    );
    let file = temp_file(
        "underscores-bad",
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\nunderscores_in_headers = \"allow\"\n",
    );
    let run = support::run(&["--config", file.path(), "--check"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(":3:") && run.stderr.contains("underscores_in_headers"),
        "{}",
        run.stderr
    );
}

/// Leniencies httparse accepts: forwarded by default, refused with `--strict-http`.
const LENIENT: &[(&str, &[u8])] = &[
    ("bare LF", b"GET /lf HTTP/1.1\nHost: h\n\n"),
    ("bare LF at the end", b"GET /lf HTTP/1.1\r\nHost: h\r\n\n"),
    (
        "leading empty line",
        b"\r\nGET /lead HTTP/1.1\r\nHost: h\r\n\r\n",
    ),
    ("fragment", b"GET /x#frag HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("pipe in target", b"GET /a|b HTTP/1.1\r\nHost: h\r\n\r\n"),
    (
        "non-ASCII target",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
    ),
    (
        "bad percent-encoding",
        b"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
    ),
];

#[test]
fn strict_http_refuses_leniencies() {
    refused(&["--strict-http"], 400, LENIENT);
}

#[test]
fn leniencies_pass_without_strict_http() {
    for (name, raw) in LENIENT {
        let got = forwarded(&[], raw);
        assert_eq!(got.method, "GET", "{name}");
    }
}

#[test]
fn strict_http_from_the_file() {
    let up = Upstream::echo();
    let file = temp_file(
        "strict",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\nstrict_http = true\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    c.send(b"GET / HTTP/1.1\nHost: h\n\n").unwrap();
    expect_canned_then_close(&mut c, 400, "bare LF with strict_http = true");
    assert_only_sentinel(&proxy, &up);
}

/// What RFC 9112 allows but httparse or the framing rules refuse: 400 in both modes.
#[test]
fn always_refused_with_or_without_strict() {
    let cases: &[(&str, &[u8])] = &[
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n 2\r\n\r\n",
        ),
        (
            "NUL in value",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
        ),
        (
            "whitespace-led first header",
            b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
        ),
        (
            "duplicate identical Content-Length",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        ),
    ];
    refused(&[], 400, cases);
    refused(&["--strict-http"], 400, cases);
}

#[test]
fn absolute_form_reaches_the_upstream_in_origin_form() {
    let cases: &[(&[u8], &str, &str)] = &[
        (
            b"GET http://h:8080/path?q=1 HTTP/1.1\r\nHost: h:8080\r\n\r\n",
            "GET /path?q=1 HTTP/1.1",
            "h:8080",
        ),
        (
            b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1",
            "h",
        ),
        (
            b"OPTIONS http://h HTTP/1.1\r\nHost: h\r\n\r\n",
            "OPTIONS * HTTP/1.1",
            "h",
        ),
        (
            b"GET HTTP://H/a HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a HTTP/1.1",
            "h",
        ),
    ];
    for (raw, line, host) in cases {
        let got = forwarded(&[], raw);
        assert_eq!(got.head.start, *line);
        assert_eq!(got.header("host"), Some(*host));
    }
}

/// A route matches an absolute-form target by its path, and its rewrite applies to it.
#[test]
fn absolute_form_is_routed_by_its_path() {
    let up = Upstream::echo();
    let file = temp_file(
        "absolute-route",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n[[routes]]\npath_prefix = \"/api/\"\nrewrite_prefix = \"/v2/\"\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let r = proxy
        .connect()
        .exchange(b"GET http://h/api/users?id=7 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-target"), Some("/v2/users?id=7"));
}

#[test]
fn curl_through_the_proxy_sends_origin_form() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &[]);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-x",
        ])
        .arg(format!("http://{}", proxy.addr))
        .arg("http://app.example:8081/some/path?x=1&y=2")
        .output()
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = up.wait_for("curl's request", WAIT, |s| s.requests.len() == 1);
    let got = &seen.requests[0];
    assert_eq!(got.head.start, "GET /some/path?x=1&y=2 HTTP/1.1");
    assert_eq!(got.header("host"), Some("app.example:8081"));
    assert!(!got.head.has("proxy-connection"), "{:?}", got.head.headers);
}
