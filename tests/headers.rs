//! Header rewriting, checked against an upstream that answers with the request head it received:
//! hop-by-hop fields removed both ways, X-Forwarded-For/-Proto/-Host, X-Request-Id, Host kept.

mod support;

use support::message::{parse_head, Head};
use support::*;

/// Sends `req` through a proxy to an echo-head upstream; returns the head the upstream received
/// and the client's address as the upstream should report it.
fn forwarded_head(req: &[u8]) -> (Head, std::net::IpAddr) {
    let up = Upstream::echo_head();
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    let r = c.exchange(req);
    assert_eq!(r.status, 200, "{:?}", r.text());
    let head = parse_head(&r.body).expect("echoed head parses");
    (head, c.local_addr().ip())
}

#[test]
fn hop_by_hop_request_headers_not_forwarded() {
    let req = request(
        "GET",
        "/hop",
        &[
            "Connection: keep-alive, X-Custom-Hop",
            "X-Custom-Hop: secret",
            "Keep-Alive: timeout=5",
            "Proxy-Connection: keep-alive",
            "TE: trailers",
            "Trailer: X-Whatever",
            "Upgrade: foo/2",
            "X-End-To-End: kept",
        ],
        b"",
    );
    let (head, _) = forwarded_head(&req);
    for name in [
        "x-custom-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !head.has(name),
            "hop-by-hop `{name}` forwarded upstream:\n{}",
            head_text(&head)
        );
    }
    // shardgate may set its own Connection for its upstream hop, but never the client's tokens.
    assert!(
        !head.has_token("connection", "x-custom-hop"),
        "the client's Connection value was forwarded:\n{}",
        head_text(&head)
    );
    assert_eq!(head.get("x-end-to-end"), Some("kept"));
}

#[test]
fn hop_by_hop_response_headers_not_forwarded() {
    let up = Upstream::start(|p| {
        p.serve(|_| {
            response(
                200,
                &[
                    ("Connection", "X-Up-Hop"),
                    ("X-Up-Hop", "secret"),
                    ("Keep-Alive", "timeout=5, max=100"),
                    ("Proxy-Connection", "keep-alive"),
                    ("Trailer", "X-Nothing"),
                    ("Upgrade", "foo/2"),
                    ("X-Up-Kept", "yes"),
                ],
                b"body",
            )
        })
    });
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    let r = c.exchange(&get("/"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "body");
    for name in [
        "x-up-hop",
        "keep-alive",
        "proxy-connection",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !r.head.has(name),
            "hop-by-hop `{name}` forwarded to the client: {:?}",
            r.head.headers
        );
    }
    assert!(
        !r.head.has_token("connection", "x-up-hop"),
        "{:?}",
        r.head.headers
    );
    assert_eq!(r.header("x-up-kept"), Some("yes"));
}

#[test]
fn x_forwarded_for_appends_client_ip_to_existing_value() {
    let (head, client_ip) =
        forwarded_head(&request("GET", "/", &["X-Forwarded-For: 203.0.113.7"], b""));
    assert_eq!(
        head.list("x-forwarded-for"),
        vec!["203.0.113.7".to_string(), client_ip.to_string()],
        "{}",
        head_text(&head)
    );
}

#[test]
fn x_forwarded_for_set_to_client_ip_when_absent() {
    let (head, client_ip) = forwarded_head(&get("/"));
    assert_eq!(
        head.list("x-forwarded-for"),
        vec![client_ip.to_string()],
        "{}",
        head_text(&head)
    );
}

#[test]
fn x_forwarded_proto_and_host_set() {
    let req = b"GET /p HTTP/1.1\r\nHost: example.test:8080\r\n\r\n";
    let (head, _) = forwarded_head(req);
    assert_eq!(
        head.all("x-forwarded-proto"),
        vec!["http"],
        "{}",
        head_text(&head)
    );
    assert_eq!(
        head.all("x-forwarded-host"),
        vec!["example.test:8080"],
        "{}",
        head_text(&head)
    );
}

#[test]
fn host_method_and_target_preserved() {
    let req =
        b"DELETE /a/b%20c?x=1&y=%2F HTTP/1.1\r\nHost: Example.TEST:8080\r\nX-Other: 1\r\n\r\n";
    let (head, _) = forwarded_head(req);
    assert_eq!(head.start, "DELETE /a/b%20c?x=1&y=%2F HTTP/1.1");
    assert_eq!(
        head.all("host"),
        vec!["Example.TEST:8080"],
        "{}",
        head_text(&head)
    );
}

#[test]
fn request_id_generated_when_absent_and_unique() {
    let up = Upstream::echo_head();
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = c.exchange(&get("/"));
        let head = parse_head(&r.body).unwrap();
        let all = head.all("x-request-id");
        assert_eq!(
            all.len(),
            1,
            "exactly one X-Request-Id expected:\n{}",
            head_text(&head)
        );
        assert!(!all[0].trim().is_empty(), "empty X-Request-Id");
        ids.push(all[0].to_string());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "request ids repeat: {ids:?}");
}

#[test]
fn request_id_passed_through_when_present() {
    let (head, _) = forwarded_head(&request(
        "GET",
        "/",
        &["X-Request-Id: client-chose-this-1234"],
        b"",
    ));
    assert_eq!(
        head.all("x-request-id"),
        vec!["client-chose-this-1234"],
        "{}",
        head_text(&head)
    );
}

fn head_text(h: &Head) -> String {
    String::from_utf8_lossy(&h.raw).into_owned()
}
