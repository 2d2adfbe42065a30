//! Strict request framing (RFC 9112; request smuggling defences) and strict upstream responses.
//! Table-driven: one named case per input. For every bad request the client gets shardgate's canned
//! error, the connection is closed, and the recording upstream never received a single byte.
//! For every malformed upstream response the client gets a canned 502.

mod support;

use support::*;

struct Case {
    name: &'static str,
    raw: Vec<u8>,
    status: u16,
}

fn case(name: &'static str, raw: &str, status: u16) -> Case {
    Case {
        name,
        raw: raw.as_bytes().to_vec(),
        status,
    }
}

/// Sends each case to its own proxy and recording upstream, checks the answer, then (once every
/// case ran, so a forward racing the canned answer is seen too) that no upstream received a byte.
fn run_cases(cases: Vec<Case>) {
    let mut failures = Vec::new();
    let mut setups = Vec::new();
    for case in &cases {
        let up = Upstream::echo();
        let proxy = Proxy::to(&[up.addr], &[]);
        let mut c = proxy.connect();
        c.send(&case.raw).unwrap();
        let outcome = match c.read_response() {
            Err(e) => Err(format!("no response: {e}")),
            Ok(r) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                assert_canned(&r, case.status, case.name)
            }))
            .map_err(|p| panic_text(&p))
            .and_then(|()| {
                c.expect_closed(ms(3000))
                    .map_err(|e| format!("after the {}: {e}", case.status))
            }),
        };
        if let Err(why) = outcome {
            failures.push(format!("{}: {why}", case.name));
        }
        setups.push((case.name, up, proxy));
    }
    std::thread::sleep(ms(100));
    for (name, up, _proxy) in &setups {
        let seen = up.seen();
        if seen.bytes_total != 0 {
            failures.push(format!(
                "{name}: the upstream received {} bytes: {:?}",
                seen.bytes_total,
                String::from_utf8_lossy(&seen.bytes)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn ambiguous_length_rejected() {
    run_cases(vec![
        case(
            "content_length_and_transfer_encoding",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "transfer_encoding_and_content_length",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "duplicate_content_length_different",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            400,
        ),
        case(
            "duplicate_content_length_same",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            400,
        ),
        case(
            "content_length_list",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
            400,
        ),
        case("content_length_plus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400),
        case("content_length_two_numbers", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\nhello", 400),
        case("content_length_letters", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nhello", 400),
        case("content_length_negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nhello", 400),
        case(
            "content_length_overflow",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\nhello",
            400,
        ),
    ]);
}

#[test]
fn bad_transfer_encoding_rejected() {
    run_cases(vec![
        case(
            "chunked_not_last",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "chunked_twice",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "transfer_encoding_in_http10",
            "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "unknown_coding",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n0\r\n\r\n",
            501,
        ),
    ]);
}

/// The bad chunk header is the first one and arrives with the head, so shardgate can (and must)
/// refuse before forwarding anything.
#[test]
fn bad_chunk_size_rejected() {
    run_cases(vec![
        case(
            "chunk_size_not_hex",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        case(
            "chunk_size_overflow",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        case(
            "chunk_size_negative",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            400,
        ),
    ]);
}

#[test]
fn bad_header_syntax_rejected() {
    run_cases(vec![
        case(
            "space_before_colon_host",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            400,
        ),
        case(
            "space_before_colon_other",
            "GET / HTTP/1.1\r\nHost: x\r\nX-Test : 1\r\n\r\n",
            400,
        ),
        case(
            "space_before_colon_content_length",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
            400,
        ),
        case(
            "obs_fold",
            "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
            400,
        ),
        case(
            "bare_cr_in_value",
            "GET / HTTP/1.1\r\nHost: x\r\nX-Test: a\rb\r\n\r\n",
            400,
        ),
        case("missing_host", "GET / HTTP/1.1\r\nX-Test: 1\r\n\r\n", 400),
        case(
            "duplicate_host",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
    ]);
}

/// A Connection header naming a framing header would make the proxy strip it as hop-by-hop, and
/// the body would reach the upstream as the next request (found by the request_head fuzz target).
#[test]
fn connection_listing_framing_headers_rejected() {
    run_cases(vec![
        case(
            "connection_lists_content_length",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\nConnection: Content-Length\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        case(
            "connection_lists_transfer_encoding",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n0\r\n\r\n",
            400,
        ),
        case(
            "connection_lists_host",
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Host\r\n\r\n",
            400,
        ),
    ]);
}

/// Heads past the limits in CONTRACT.md (request line 8192, head = buffer 16384 by default).
#[test]
fn oversized_heads_rejected() {
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let mut big_head = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..20 {
        big_head.push_str(&format!("X-Filler-{i}: {}\r\n", "b".repeat(1000)));
    }
    big_head.push_str("\r\n");
    run_cases(vec![
        Case {
            name: "request_line_over_8192",
            raw: long_line.into_bytes(),
            status: 414,
        },
        Case {
            name: "header_section_over_16384",
            raw: big_head.into_bytes(),
            status: 431,
        },
    ]);
}

/// The configured limits are the ones applied.
#[test]
fn head_limits_follow_flags() {
    let up = Upstream::echo();
    let proxy = Proxy::to(
        &[up.addr],
        &["--max-request-line", "100", "--buffer-size", "4096"],
    );
    let mut c = proxy.connect();
    let r = c.exchange(&get(&format!("/{}", "a".repeat(60))));
    assert_eq!(r.status, 200, "a request line under --max-request-line");
    let mut c = proxy.connect();
    c.send(&get(&format!("/{}", "a".repeat(200)))).unwrap();
    expect_canned_then_close(
        &mut c,
        414,
        "request line of 200+ bytes with --max-request-line 100",
    );
    let mut c = proxy.connect();
    let filler = format!("X-Fill: {}", "f".repeat(5000));
    c.send(&request("GET", "/", &[&filler], b"")).unwrap();
    expect_canned_then_close(&mut c, 431, "5 KB head with --buffer-size 4096");
    assert_eq!(up.request_count(), 1);
}

/// A response head larger than `--upstream-buffer-size` is a 502; one that fits is relayed.
#[test]
fn upstream_head_limit_follows_its_flag() {
    let filler = "h".repeat(5000);
    let big = response(200, &[("X-Fill", filler.as_str())], b"ok");
    let up = Upstream::raw_reply(&big);
    let small = Proxy::to(&[up.addr], &["--upstream-buffer-size", "4096"]);
    let mut c = small.connect();
    c.send(&get("/")).unwrap();
    expect_canned_then_close(
        &mut c,
        502,
        "5 KB response head with --upstream-buffer-size 4096",
    );
    let roomy = Proxy::to(&[up.addr], &["--upstream-buffer-size", "8192"]);
    let r = roomy.connect().exchange(&get("/"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-fill").map(str::len), Some(5000));
}

/// Upstream responses are parsed as strictly: a malformed one becomes a canned 502.
#[test]
fn malformed_upstream_responses_are_502() {
    let cases: Vec<(&str, &[u8])> = vec![
        ("garbage_status_line", b"HELLO WORLD\r\n\r\n"),
        ("not_http_at_all", b"\x00\x01\x02\x03garbage\r\n\r\n"),
        (
            "content_length_and_transfer_encoding",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        ("invalid_content_length", b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello"),
        ("negative_content_length", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello"),
        (
            "duplicate_content_length_different",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        ("space_before_colon", b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"),
        (
            "connection_lists_content_length",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\nhello",
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes) in cases {
        let up = Upstream::raw_reply(bytes);
        let proxy = Proxy::to(&[up.addr], &[]);
        let mut c = proxy.connect();
        c.send(&get("/")).unwrap();
        match c.read_response() {
            Err(e) => failures.push(format!("{name}: no response: {e}")),
            Ok(r) => {
                if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    assert_canned(&r, 502, name)
                })) {
                    failures.push(panic_text(&p));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}
