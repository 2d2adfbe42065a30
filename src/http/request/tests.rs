//! Unit tests of `request::process`: header rewriting, HTTP/1.0 defaults, limits and the table
//! of refused heads. Test thread only.

use super::*;
use crate::http::head_rules::HeadRules;

fn run(input: &[u8]) -> (Result<Head<Request>, Reject>, String) {
    let fwd = Forwarding {
        client_ip: "10.1.2.3".parse().unwrap(),
        request_id: 0xabc,
        fallback_host: b"up:80",
        rules: HeadRules::default(),
        https: false,
        client_cert: None,
        trusted_peer: false,
    };
    let mut out = Vec::new();
    let ws = vec!["websocket".to_string()];
    let plan = |_: &Parsed<'_>| Plan {
        upgrades: &ws,
        ..Plan::forward()
    };
    let r = process(input, false, 8192, &fwd, plan, &mut out);
    (r, String::from_utf8(out).unwrap())
}

fn reject(input: &[u8]) -> Reject {
    run(input).0.expect_err("should be rejected")
}

#[test]
fn rewrites_headers() {
    let (r, out) = run(b"GET /a?b HTTP/1.1\r\nHost: ex.com\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\nAccept: */*\r\n\r\n");
    let Ok(Head::Complete(req)) = r else {
        panic!("{r:?}")
    };
    assert!(req.keep_alive && !req.http10 && req.body == BodyFraming::None);
    assert_eq!(
        out,
        "GET /a?b HTTP/1.1\r\nHost: ex.com\r\nAccept: */*\r\nX-Forwarded-For: 1.1.1.1, 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ex.com\r\nX-Request-Id: 00000000000000000000000000000abc\r\n\r\n"
    );
}

#[test]
fn keeps_client_request_id_and_upgrade() {
    let (r, out) = run(b"GET /ws HTTP/1.1\r\nHost: h\r\nX-Request-Id: mine\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(matches!(
        r,
        Ok(Head::Complete(Request { upgrade: true, .. }))
    ));
    assert!(out.contains("X-Request-Id: mine\r\n") && !out.contains("00000"));
    assert!(
        out.ends_with("Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
        "{out}"
    );
}

#[test]
fn ipv4_text_matches_display() {
    for ip in [
        "0.0.0.0",
        "10.1.2.3",
        "127.0.0.1",
        "255.255.255.255",
        "1.20.100.9",
        "::1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        let mut out = Vec::new();
        push_ip(&mut out, ip);
        assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
    }
}

#[test]
fn http10_defaults() {
    let (r, out) = run(b"GET / HTTP/1.0\r\n\r\n");
    assert!(matches!(
        r,
        Ok(Head::Complete(Request {
            keep_alive: false,
            http10: true,
            ..
        }))
    ));
    assert!(out.contains("Host: up:80\r\n"));
    let (r, _) = run(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(matches!(
        r,
        Ok(Head::Complete(Request {
            keep_alive: true,
            ..
        }))
    ));
}

#[test]
fn listed_request_id_is_replaced() {
    let (_, out) =
        run(b"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: mine\r\nConnection: X-Request-Id\r\n\r\n");
    assert!(
        !out.contains("mine") && out.contains("X-Request-Id: 0000"),
        "{out}"
    );
}

#[test]
fn http10_empty_host_gets_fallback() {
    let (r, out) = run(b"GET / HTTP/1.0\r\nHost:\r\n\r\n");
    assert!(matches!(r, Ok(Head::Complete(_))), "{r:?}");
    assert_eq!(out.matches("Host:").count(), 1, "{out}");
    assert!(out.contains("Host: up:80\r\n"), "{out}");
}

#[test]
fn partial_and_limits() {
    assert_eq!(run(b"GET / HTTP/1.1\r\nHost: x\r\n").0, Ok(Head::Partial));
    let fwd = Forwarding {
        client_ip: "::1".parse().unwrap(),
        request_id: 1,
        fallback_host: b"",
        rules: HeadRules::default(),
        https: false,
        client_cert: None,
        trusted_peer: false,
    };
    let long = [b"GET /".as_slice(), &[b'a'; 200]].concat();
    assert_eq!(
        process(&long, true, 100, &fwd, |_| Plan::forward(), &mut Vec::new()),
        Err(Reject::UriTooLong)
    );
    let big = b"GET / HTTP/1.1\r\nHost: x\r\nX: aaaaaaaa";
    assert_eq!(
        process(big, true, 100, &fwd, |_| Plan::forward(), &mut Vec::new()),
        Err(Reject::HeadersTooLarge)
    );
}

#[test]
fn rejects_table() {
    let cases: &[(&str, &[u8], Reject)] = &[
        ("missing host", b"GET / HTTP/1.1\r\n\r\n", Reject::BadRequest),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Reject::BadRequest),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Reject::BadRequest),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", Reject::BadRequest),
        ("bare cr", b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", Reject::BadRequest),
        ("cl and te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", Reject::BadRequest),
        ("unknown te", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n\r\n", Reject::NotImplemented),
        ("connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", Reject::NotImplemented),
        ("bad expect", b"POST / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", Reject::ExpectationFailed),
        ("bad version", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Reject::BadRequest),
        ("connection lists content-length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello", Reject::BadRequest),
        ("connection lists transfer-encoding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n", Reject::BadRequest),
        ("connection lists host", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n", Reject::BadRequest),
        ("dot-dot segment", b"GET /public/../admin HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
        ("dot segment", b"GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
        ("trailing dot-dot", b"GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
        ("encoded dot-dot", b"GET /a/%2e%2E/b HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
        ("half-encoded dot-dot", b"GET /a/.%2e/b HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
        ("encoded slash", b"GET /a%2F..%2fb HTTP/1.1\r\nHost: a\r\n\r\n", Reject::BadRequest),
        ("absolute form, other host", b"GET http://public.ex/x HTTP/1.1\r\nHost: admin.ex\r\n\r\n", Reject::BadRequest),
        ("absolute form, no host", b"OPT http://`/b HTTP/1.0\r\n\r\n", Reject::BadRequest),
    ];
    for (name, input, want) in cases {
        assert_eq!(reject(input), *want, "case {name}");
    }
}

#[test]
fn each_reject_has_one_status_and_its_response_carries_it() {
    let cases = [
        (Reject::BadRequest, 400),
        (Reject::UriTooLong, 414),
        (Reject::HeadersTooLarge, 431),
        (Reject::NotImplemented, 501),
        (Reject::ExpectationFailed, 417),
    ];
    for (r, want) in cases {
        assert_eq!(r.status(), want, "{r:?}");
        let text = std::str::from_utf8(r.response()).unwrap();
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want} ")),
            "{r:?}: {text}"
        );
    }
}
