//! gRPC-Web bridged to a gRPC upstream over h2c: curl (HTTP/1.1 and HTTP/2 with prior knowledge)
//! posts `application/grpc-web+proto` and `application/grpc-web-text` calls to shardgate, which
//! sends them to grpcio's server (tests/grpc/server.py) as gRPC; the answers come back as gRPC-Web:
//! its content type, the messages, and the trailers as the trailer frame (flag 0x80) at the end of
//! the body, base64 for `-text`. Unary with metadata both ways, server streaming, and a failing
//! call whose status and percent-encoded message ride in the trailer frame.

mod support;

use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use support::admin::temp_path;
use support::grpc_server;
use support::*;

/// A gRPC message frame (uncompressed).
fn frame(msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}

/// A body's frames: (flag, payload); panics on a cut frame.
fn frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 5, "a cut frame header: {b:?}");
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        assert!(b.len() >= 5 + len, "a cut frame: {b:?}");
        out.push((b[0], b[5..5 + len].to_vec()));
        b = &b[5 + len..];
    }
    out
}

/// What curl got: status, response headers (lowercase names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` to `path` as `content_type` over HTTP/1.1 or (`h2`) HTTP/2 with prior knowledge.
fn post(proxy: &Proxy, h2: bool, path: &str, content_type: &str, body: &[u8]) -> Answer {
    let req = temp_file("grpc-web-req", "");
    std::fs::write(req.path(), body).unwrap();
    let (out, head) = (temp_path("grpc-web", "body"), temp_path("grpc-web", "head"));
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-o",
        out.path(),
        "-D",
        head.path(),
    ]);
    if h2 {
        cmd.arg("--http2-prior-knowledge");
    }
    let data = format!("@{}", req.path());
    let ct = format!("content-type: {content_type}");
    cmd.args(["-H", &ct, "-H", "x-meta: m1", "-H", "x-grpc-web: 1"]);
    cmd.args(["--data-binary", &data]);
    cmd.arg(format!("http://{}{path}", proxy.addr));
    let r = cmd.output().expect("curl");
    assert!(
        r.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let head = std::fs::read_to_string(head.path()).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: std::fs::read(out.path()).unwrap(),
    }
}

/// The trailer frame's fields, lowercased names.
fn trailer_fields(payload: &[u8]) -> Vec<(String, String)> {
    String::from_utf8(payload.to_vec())
        .unwrap()
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn proxy_to(server: &support::script::Served) -> Proxy {
    Proxy::to(
        &[server.addr],
        &["--h2c", "--upstream-protocol", "h2c", "--shards", "1"],
    )
}

#[test]
fn binary_unary_streaming_and_a_failure_over_http1_and_http2() {
    let server = grpc_server::start(None);
    let proxy = proxy_to(&server);
    for h2 in [false, true] {
        let ct = "application/grpc-web+proto";
        let a = post(&proxy, h2, "/test.Echo/Unary", ct, &frame(b"hello"));
        assert_eq!(a.status, 200, "h2={h2}");
        assert_eq!(a.header("content-type"), Some(ct), "h2={h2}");
        assert_eq!(a.header("x-echo"), Some("m1"), "initial metadata, h2={h2}");
        assert_eq!(a.header("grpc-status"), None, "not in the head: h2={h2}");
        let f = frames(&a.body);
        assert_eq!(f.len(), 2, "message + trailer frame, h2={h2}: {f:?}");
        assert_eq!(f[0], (0, b"hello".to_vec()));
        assert_eq!(f[1].0, 0x80, "the trailer frame");
        let t = trailer_fields(&f[1].1);
        assert_eq!(field(&t, "grpc-status"), Some("0"), "{t:?}");
        assert_eq!(field(&t, "x-trailer"), Some("t"), "{t:?}");

        let a = post(&proxy, h2, "/test.Echo/ServerStream", ct, &frame(b"3"));
        let f = frames(&a.body);
        let msgs: Vec<&[u8]> = f.iter().map(|(_, m)| m.as_slice()).collect();
        assert_eq!(&msgs[..3], [b"msg0", b"msg1", b"msg2"], "h2={h2}");
        assert_eq!(f[3].0, 0x80);

        let a = post(&proxy, h2, "/test.Echo/Fail", ct, &frame(b"x"));
        assert_eq!(a.status, 200);
        // grpcio answers a failure trailers-only: the status is in the head, no frame follows.
        let in_body = frames(&a.body)
            .into_iter()
            .find(|(flag, _)| *flag == 0x80)
            .map(|(_, p)| trailer_fields(&p));
        let status = in_body
            .as_ref()
            .and_then(|t| field(t, "grpc-status").map(str::to_string))
            .or(a.header("grpc-status").map(str::to_string));
        assert_eq!(status.as_deref(), Some("3"), "INVALID_ARGUMENT, h2={h2}");
        let message = in_body
            .as_ref()
            .and_then(|t| field(t, "grpc-message").map(str::to_string))
            .or(a.header("grpc-message").map(str::to_string));
        assert_eq!(
            message.as_deref(),
            Some("bad thing: 100%25 wrong"),
            "h2={h2}"
        );
    }
}

#[test]
fn text_calls_are_base64_both_ways() {
    let server = grpc_server::start(None);
    let proxy = proxy_to(&server);
    for h2 in [false, true] {
        // Two padded segments back to back, as a client that flushes as it goes may send.
        let f = frame(b"hello-text");
        let body = STANDARD.encode(&f[..4]) + &STANDARD.encode(&f[4..]);
        assert!(body[..8].ends_with("=="), "{body}");
        let a = post(
            &proxy,
            h2,
            "/test.Echo/Unary",
            "application/grpc-web-text",
            body.as_bytes(),
        );
        assert_eq!(a.status, 200, "h2={h2}");
        assert_eq!(
            a.header("content-type"),
            Some("application/grpc-web-text+proto"),
            "h2={h2}"
        );
        // The answer is base64 segments, each padded: decode them one by one.
        let text = String::from_utf8(a.body.clone()).unwrap();
        let mut raw = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let end = rest.find('=').map_or(rest.len(), |i| {
                i + rest[i..].bytes().take_while(|&b| b == b'=').count()
            });
            let seg = &rest[..end.min(rest.len())];
            raw.extend(
                STANDARD
                    .decode(seg)
                    .unwrap_or_else(|e| panic!("{e}: {seg}")),
            );
            rest = &rest[seg.len()..];
        }
        let f = frames(&raw);
        assert_eq!(f[0], (0, b"hello-text".to_vec()), "h2={h2}");
        assert_eq!(f.last().unwrap().0, 0x80);
        let t = trailer_fields(&f.last().unwrap().1);
        assert_eq!(field(&t, "grpc-status"), Some("0"), "{t:?}");
    }
    // A body that is not base64 is refused before anything goes upstream.
    let a = post(
        &proxy,
        false,
        "/test.Echo/Unary",
        "application/grpc-web-text",
        b"not base64!",
    );
    assert_eq!(a.status, 400);
}

/// Bridged gRPC-Web calls count in `shardgate_route_grpc_requests_total` by the `grpc-status`
/// their client got (in the trailer frame, or the head of a trailers-only answer), once each,
/// from HTTP/1.1 and HTTP/2 clients.
#[test]
fn grpc_web_calls_are_counted_by_grpc_status() {
    let server = grpc_server::start(None);
    let proxy = proxy_to(&server);
    let ct = "application/grpc-web+proto";
    for h2 in [false, true] {
        assert_eq!(
            post(&proxy, h2, "/test.Echo/Unary", ct, &frame(b"a")).status,
            200
        );
        assert_eq!(
            post(&proxy, h2, "/test.Echo/Fail", ct, &frame(b"x")).status,
            200
        );
    }
    let name = "shardgate_route_grpc_requests_total";
    let m = support::admin::scrape_until(&proxy, ms(5000), "the calls counted", name, |m| {
        m.sum(name, &[("grpc_status", "0")]) == 2.0 && m.sum(name, &[("grpc_status", "3")]) == 2.0
    });
    assert_eq!(m.sum(name, &[]), 4.0, "each call once");
}
