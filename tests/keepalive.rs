//! Persistent connections on both sides: client keep-alive, upstream connection reuse (the
//! upstream counts what it accepted), pipelining, and HTTP/1.0 clients.

mod support;

use support::*;

/// N sequential requests on one client connection, one shard: one upstream connection serves all.
#[test]
fn sequential_requests_share_one_upstream_connection() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    for i in 0..5 {
        let path = format!("/seq/{i}");
        let r = c.exchange(&get(&path));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(
            r.header("x-seen-target"),
            Some(path.as_str()),
            "request {i}"
        );
        assert!(
            !r.head.has_token("connection", "close"),
            "request {i}: {:?}",
            r.head.headers
        );
    }
    let seen = up.seen();
    assert_eq!(seen.requests.len(), 5);
    assert_eq!(
        seen.accepted, 1,
        "5 sequential requests must reuse one upstream connection"
    );
}

/// Sequential client connections (each closed after its response) reuse the pooled connection.
#[test]
fn pool_reused_across_client_connections() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    for i in 0..3 {
        let mut c = proxy.connect();
        let r = c.exchange(&get(&format!("/conn/{i}")));
        assert_eq!(r.status, 200);
        drop(c);
    }
    assert_eq!(up.request_count(), 3);
    assert_eq!(
        up.accepted(),
        1,
        "the pooled upstream connection should serve every client connection"
    );
}

/// Three requests written at once are answered in order, a POST with a body among them.
#[test]
fn pipelined_requests_answered_in_order() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    let mut batch = get("/first");
    batch.extend(request("POST", "/second", &[], b"second body"));
    batch.extend(get("/third"));
    c.send(&batch).unwrap();
    let expect = [
        ("/first", "GET", ""),
        ("/second", "POST", "second body"),
        ("/third", "GET", ""),
    ];
    for (path, method, body) in expect {
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("response to {path}: {e}"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-seen-target"),
            Some(path),
            "responses out of order"
        );
        assert_eq!(r.header("x-seen-method"), Some(method));
        assert_eq!(r.text(), body);
    }
}

/// A client `Connection: close` gets its response, marked close, then the connection closes.
#[test]
fn client_connection_close_is_honoured() {
    let up = Upstream::fixed("bye");
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    let r = c.exchange(&request("GET", "/", &["Connection: close"], b""));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "bye");
    assert!(
        r.head.has_token("connection", "close"),
        "{:?}",
        r.head.headers
    );
    c.expect_closed(ms(2000)).unwrap();
}

/// HTTP/1.0 without keep-alive: one response, then the proxy closes the connection.
#[test]
fn http10_client_closed_by_default() {
    let up = Upstream::fixed("one-oh");
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    c.send(b"GET /old HTTP/1.0\r\nHost: shardgate.test\r\n\r\n")
        .unwrap();
    let r = c.read_response().expect("response to HTTP/1.0 request");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "one-oh");
    assert!(
        !r.head.has_token("connection", "keep-alive"),
        "{:?}",
        r.head.headers
    );
    assert!(!r.chunked, "chunked must not be sent to an HTTP/1.0 client");
    c.expect_closed(ms(2000)).unwrap();
}

/// HTTP/1.0 with `Connection: keep-alive`: the response says keep-alive and the connection serves
/// a second request.
#[test]
fn http10_keep_alive_when_asked() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    for path in ["/a", "/b"] {
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: shardgate.test\r\nConnection: keep-alive\r\n\r\n"
        );
        c.send(req.as_bytes()).unwrap();
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("HTTP/1.0 keep-alive {path}: {e}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-seen-target"), Some(path));
        assert!(
            r.head.has_token("connection", "keep-alive"),
            "an HTTP/1.0 keep-alive response must say `Connection: keep-alive`: {:?}",
            r.head.headers
        );
        assert!(!r.chunked, "chunked must not be sent to an HTTP/1.0 client");
    }
}

/// An HTTP/1.0 client never receives chunked coding (RFC 9112 §6.1): a chunked upstream answer is
/// delivered whole, delimited some other way (length or close).
#[test]
fn http10_client_never_gets_chunked() {
    let up = Upstream::start(|p| {
        p.serve(|_| {
            let mut r = response(200, &[("Transfer-Encoding", "chunked")], b"");
            r.extend(chunked(&[b"hello ", b"from ", b"chunks"], &[]));
            r
        })
    });
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    c.send(b"GET / HTTP/1.0\r\nHost: shardgate.test\r\n\r\n")
        .unwrap();
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200);
    assert!(
        !r.head.has("transfer-encoding"),
        "TE sent to an HTTP/1.0 client: {:?}",
        r.head.headers
    );
    assert_eq!(r.text(), "hello from chunks");
}
