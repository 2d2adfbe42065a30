//! Routes from a config file: host (exact, `*.suffix`), path (exact, prefix, `{name}` template),
//! method and header matches, first match in file order, 404 when none matches, each route's
//! cluster, `rewrite_prefix`, request and response header edits, per-route timeouts, `max_body`
//! (Content-Length and chunked) and `direct` answers. Every backend names itself in its answer.

mod support;

use std::time::{Duration, Instant};

use support::policy::*;
use support::*;

/// `[[clusters]]` named after each backend (`a`, `b`, ...), one endpoint each, then `routes`.
fn config(backends: &[(&str, std::net::SocketAddr)], routes: &str) -> String {
    let mut s = String::from("listen = [\"127.0.0.1:0\"]\n\n");
    for (name, addr) in backends {
        s.push_str(&format!(
            "[[clusters]]\nname = \"{name}\"\nendpoints = [\"{addr}\"]\n\n"
        ));
    }
    s.push_str(routes);
    s
}

fn start(file: &TempFile) -> Proxy {
    Proxy::start(&["--config", file.path(), "--shards", "1"])
}

/// A GET with the given Host.
fn get_host(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// Sends `req` on `c` and returns who answered (`-404` for the proxy's own 404).
fn ask(c: &mut Conn, req: &[u8]) -> String {
    let r = c.exchange(req);
    if r.status == 404 {
        assert_eq!(r.text(), "not found\n", "the proxy's own 404");
        assert!(
            !r.head.has_token("connection", "close"),
            "a 404 for a bodiless request keeps the connection: {:?}",
            r.head.headers
        );
    }
    who(&r)
}

#[test]
fn host_exact_and_wildcard() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let file = temp_file(
        "routing-host",
        &config(
            &[("a", a.addr), ("b", b.addr)],
            "[[routes]]\nhost = \"api.example.com\"\ncluster = \"a\"\n\
             [[routes]]\nhost = \"*.example.com\"\ncluster = \"b\"\n",
        ),
    );
    let proxy = start(&file);
    let mut c = proxy.connect();
    for (host, want) in [
        ("api.example.com", "a"),
        ("API.Example.COM:8080", "a"),
        ("www.example.com", "b"),
        ("deep.api.example.com", "b"),
        ("example.com", "-404"),
        ("www.example.org", "-404"),
        ("xexample.com", "-404"),
    ] {
        assert_eq!(ask(&mut c, &get_host(host, "/")), want, "Host: {host}");
    }
    assert_eq!((a.hits(), b.hits()), (2, 2));
}

#[test]
fn path_exact_prefix_and_template() {
    let (a, b, t) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("t"),
    );
    let file = temp_file(
        "routing-path",
        &config(
            &[("a", a.addr), ("b", b.addr), ("t", t.addr)],
            "[[routes]]\npath = \"/exact\"\ncluster = \"a\"\n\
             [[routes]]\npath_prefix = \"/static\"\ncluster = \"b\"\n\
             [[routes]]\npath_template = \"/users/{id}/posts\"\ncluster = \"t\"\n",
        ),
    );
    let proxy = start(&file);
    let mut c = proxy.connect();
    for (path, want) in [
        ("/exact", "a"),
        ("/exact?q=1", "a"),
        ("/exact/", "-404"),
        ("/exactly", "-404"),
        ("/static", "b"),
        ("/static/css/site.css", "b"),
        ("/staticx", "-404"),
        ("/users/42/posts", "t"),
        ("/users/abc/posts?page=2", "t"),
        ("/users/42", "-404"),
        ("/users//posts", "-404"),
        ("/users/42/posts/7", "-404"),
        ("/", "-404"),
    ] {
        assert_eq!(ask(&mut c, &get(path)), want, "GET {path}");
    }
}

#[test]
fn method_header_exact_and_header_present() {
    let names = ["post", "canary", "debug", "rest"];
    let bs: Vec<Backend> = names.iter().map(|n| Backend::start(n)).collect();
    let list: Vec<(&str, _)> = names.iter().zip(&bs).map(|(n, b)| (*n, b.addr)).collect();
    let file = temp_file(
        "routing-match",
        &config(
            &list,
            "[[routes]]\nmethods = [\"POST\", \"PUT\"]\ncluster = \"post\"\n\
             [[routes]]\nheaders = { \"X-Env\" = \"canary\" }\ncluster = \"canary\"\n\
             [[routes]]\nheaders_present = [\"x-debug\"]\ncluster = \"debug\"\n\
             [[routes]]\ncluster = \"rest\"\n",
        ),
    );
    let proxy = start(&file);
    let mut c = proxy.connect();
    for (req, want) in [
        (request("GET", "/", &[], b""), "rest"),
        (request("POST", "/", &[], b"x"), "post"),
        (request("PUT", "/", &[], b"x"), "post"),
        (request("DELETE", "/", &[], b""), "rest"),
        (request("GET", "/", &["X-Env: canary"], b""), "canary"),
        (request("GET", "/", &["x-env: canary"], b""), "canary"),
        (request("GET", "/", &["X-Env: Canary"], b""), "rest"),
        (request("GET", "/", &["X-Env: prod"], b""), "rest"),
        (request("GET", "/", &["X-Debug: 1"], b""), "debug"),
        (request("GET", "/", &["X-Debug:"], b""), "debug"),
        (request("GET", "/", &["X-Debugging: 1"], b""), "rest"),
    ] {
        let shown = String::from_utf8_lossy(&req)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        assert_eq!(
            ask(&mut c, &req),
            want,
            "{shown} {:?}",
            String::from_utf8_lossy(&req)
        );
    }
}

/// Two routes that both match `/api/users`: the first written wins, whichever is more specific.
#[test]
fn first_match_in_file_order_wins() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let broad = "[[routes]]\npath_prefix = \"/api\"\ncluster = \"a\"\n";
    let narrow = "[[routes]]\npath = \"/api/users\"\ncluster = \"b\"\n";
    let backends = [("a", a.addr), ("b", b.addr)];

    let file = temp_file(
        "routing-order1",
        &config(&backends, &format!("{broad}{narrow}")),
    );
    let proxy = start(&file);
    assert_eq!(ask(&mut proxy.connect(), &get("/api/users")), "a");
    drop(proxy);

    let file = temp_file(
        "routing-order2",
        &config(&backends, &format!("{narrow}{broad}")),
    );
    let proxy = start(&file);
    let mut c = proxy.connect();
    assert_eq!(ask(&mut c, &get("/api/users")), "b");
    assert_eq!(ask(&mut c, &get("/api/orders")), "a");
}

#[test]
fn no_match_is_404_keeping_a_bodiless_connection_and_closing_one_with_a_body() {
    let a = Backend::start("a");
    let file = temp_file(
        "routing-404",
        &config(
            &[("a", a.addr)],
            "[[routes]]\npath = \"/only\"\ncluster = \"a\"\n",
        ),
    );
    let proxy = start(&file);
    let mut c = proxy.connect();
    for _ in 0..3 {
        assert_eq!(ask(&mut c, &get("/nothing")), "-404");
        assert_eq!(ask(&mut c, &get("/only")), "a");
    }
    // HEAD: no body, still kept.
    c.send(&request("HEAD", "/nothing", &[], b"")).unwrap();
    let r = c.read_response_to("HEAD").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(ask(&mut c, &get("/only")), "a");
    // A body the proxy does not read: the connection cannot carry another request.
    let r = c.exchange(&request("POST", "/nothing", &[], b"unread body"));
    assert_eq!(r.status, 404);
    assert!(
        r.head.has_token("connection", "close"),
        "{:?}",
        r.head.headers
    );
    c.expect_closed(Duration::from_secs(3)).unwrap();
    assert_eq!(a.hits(), 4, "404s never reach the upstream");
}

#[test]
fn rewrite_prefix_keeps_the_rest_and_the_query() {
    let up = Upstream::echo();
    let file = temp_file(
        "routing-rewrite",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n\
             [[routes]]\npath_prefix = \"/api/\"\nrewrite_prefix = \"/\"\n\
             [[routes]]\npath_prefix = \"/old\"\nrewrite_prefix = \"/new/v2\"\n\
             [[routes]]\npath_prefix = \"/keep\"\n",
            up.addr
        ),
    );
    let proxy = start(&file);
    let mut c = proxy.connect();
    for (sent, seen) in [
        ("/api/users?x=1&y=2", "/users?x=1&y=2"),
        ("/api/", "/"),
        ("/api/a/b/c", "/a/b/c"),
        ("/old/a/b?q=%20", "/new/v2/a/b?q=%20"),
        ("/old", "/new/v2"),
        ("/old?only=query", "/new/v2?only=query"),
        ("/keep/me?x", "/keep/me?x"),
    ] {
        let r = c.exchange(&get(sent));
        assert_eq!(r.status, 200, "{sent}");
        assert_eq!(r.header("x-seen-target"), Some(seen), "GET {sent}");
    }
}

#[test]
fn request_headers_added_and_removed_reach_the_upstream() {
    let up = Upstream::echo();
    let file = temp_file(
        "routing-reqhdr",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n\
             [[routes]]\npath_prefix = \"/edit\"\n\
             request_headers_add = {{ \"x-route\" = \"users\", \"x-tenant\" = \"blue\" }}\n\
             request_headers_remove = [\"cookie\", \"X-Secret\"]\n\
             [[routes]]\n",
            up.addr
        ),
    );
    let proxy = start(&file);
    let mut c = proxy.connect();
    let sent = [
        "Cookie: session=1",
        "X-Secret: hunter2",
        "X-Route: spoofed",
        "X-Keep: yes",
    ];
    assert_eq!(c.exchange(&request("GET", "/edit", &sent, b"")).status, 200);
    assert_eq!(
        c.exchange(&request("GET", "/plain", &sent, b"")).status,
        200
    );
    let seen = up.seen();
    let (edited, plain) = (&seen.requests[0], &seen.requests[1]);
    assert_eq!(
        edited.head.all("x-route"),
        ["users"],
        "added, replacing the client's"
    );
    assert_eq!(edited.head.all("x-tenant"), ["blue"]);
    assert!(
        !edited.head.has("cookie") && !edited.head.has("x-secret"),
        "{:?}",
        edited.head.headers
    );
    assert_eq!(edited.header("x-keep"), Some("yes"));
    // The other route edits nothing.
    assert_eq!(plain.header("cookie"), Some("session=1"));
    assert_eq!(plain.header("x-secret"), Some("hunter2"));
    assert_eq!(plain.head.all("x-route"), ["spoofed"]);
    assert!(!plain.head.has("x-tenant"));
}

#[test]
fn response_headers_added_and_removed_reach_the_client() {
    let up = Upstream::start(|p| {
        p.serve(|_| {
            response(
                200,
                &[
                    ("Server", "upstream/1.0"),
                    ("X-Internal", "secret"),
                    ("X-Keep", "1"),
                    ("X-Served-By", "upstream"),
                ],
                b"ok",
            )
        })
    });
    let file = temp_file(
        "routing-resphdr",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n\
             [[routes]]\npath = \"/edit\"\n\
             response_headers_add = {{ \"x-served-by\" = \"shardgate\" }}\n\
             response_headers_remove = [\"Server\", \"x-internal\"]\n\
             [[routes]]\n",
            up.addr
        ),
    );
    let proxy = start(&file);
    let mut c = proxy.connect();
    let r = c.exchange(&get("/edit"));
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert!(
        !r.head.has("server") && !r.head.has("x-internal"),
        "{:?}",
        r.head.headers
    );
    assert_eq!(
        r.head.all("x-served-by"),
        ["shardgate"],
        "{:?}",
        r.head.headers
    );
    assert_eq!(r.header("x-keep"), Some("1"));
    let r = c.exchange(&get("/other"));
    assert_eq!(r.header("server"), Some("upstream/1.0"));
    assert_eq!(r.header("x-internal"), Some("secret"));
    assert_eq!(r.head.all("x-served-by"), ["upstream"]);
}

#[test]
fn route_upstream_timeout_applies_to_its_route_only() {
    let slow = Backend::start("slow");
    slow.set_delay(Duration::from_millis(1200));
    let file = temp_file(
        "routing-timeout",
        &config(
            &[("slow", slow.addr)],
            "[[routes]]\npath = \"/strict\"\ntimeouts = { upstream = \"200ms\" }\n\
             [[routes]]\n",
        ),
    );
    let proxy = start(&file);
    let (r, took) = timed(|| {
        let mut c = proxy.connect();
        c.send(&get("/strict")).unwrap();
        expect_canned_then_close(&mut c, 504, "route timeout")
    });
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(1000),
        "504 after the route's 200ms, not the upstream's 1.2s: {took:?}"
    );
    let (r, took) = timed(|| proxy.connect().exchange(&get("/lax")));
    assert_eq!((r.status, who(&r).as_str()), (200, "slow"));
    assert!(took >= Duration::from_millis(1200), "{took:?}");
}

#[test]
fn max_body_refuses_larger_bodies_with_413() {
    let up = Upstream::echo();
    let file = temp_file(
        "routing-maxbody",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n\
             [[routes]]\npath = \"/small\"\nmax_body = 100\n\
             [[routes]]\n",
            up.addr
        ),
    );
    let proxy = start(&file);
    let body = vec![b'x'; 101];

    // Content-Length above the limit: refused before anything reaches the upstream.
    let mut c = proxy.connect();
    c.send(&request("POST", "/small", &[], &body)).unwrap();
    expect_canned_then_close(&mut c, 413, "Content-Length 101 > max_body 100");
    assert_eq!(up.accepted(), 0, "the upstream saw nothing");

    // At the limit it passes, and another route has no limit.
    let r = proxy
        .connect()
        .exchange(&request("POST", "/small", &[], &body[..100]));
    assert_eq!((r.status, r.body.len()), (200, 100));
    let r = proxy
        .connect()
        .exchange(&request("POST", "/big", &[], &body));
    assert_eq!((r.status, r.body.len()), (200, 101));

    // Chunked above the limit: 413, and the upstream never receives a complete request.
    let before = up.request_count();
    let mut c = proxy.connect();
    let mut req =
        b"POST /small HTTP/1.1\r\nHost: shardgate.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    req.extend_from_slice(&chunked(&[&body[..60], &body[60..]], &[]));
    c.send(&req).unwrap();
    expect_canned_then_close(&mut c, 413, "chunked body of 101 > max_body 100");
    assert!(
        !up.holds_within(Duration::from_millis(200), |s| s.requests.len() > before),
        "the upstream got the over-limit chunked request whole: {:?}",
        up.seen().requests.last().map(|r| r.body_len)
    );
    // A chunked body within the limit passes.
    let mut c = proxy.connect();
    let mut req =
        b"POST /small HTTP/1.1\r\nHost: shardgate.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    req.extend_from_slice(&chunked(&[&body[..50], &body[50..100]], &[]));
    let r = c.exchange(&req);
    assert_eq!((r.status, r.body.len()), (200, 100));
}

#[test]
fn direct_response_answers_without_an_upstream() {
    let a = Backend::start("a");
    let file = temp_file(
        "routing-direct",
        &config(
            &[("a", a.addr)],
            "[[routes]]\npath = \"/healthz\"\ndirect = { status = 200, body = \"ok\\n\" }\n\
             [[routes]]\npath_prefix = \"/down\"\n\
             direct = { status = 503, body = \"<h1>maintenance</h1>\", content_type = \"text/html\" }\n\
             [[routes]]\ncluster = \"a\"\n",
        ),
    );
    let proxy = start(&file);
    let mut c = proxy.connect();
    let started = Instant::now();
    let r = c.exchange(&get("/healthz"));
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let r = c.exchange(&get("/down/anything"));
    assert_eq!((r.status, r.text().as_str()), (503, "<h1>maintenance</h1>"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert!(
        !r.head.has_token("connection", "close"),
        "a direct answer keeps the connection"
    );
    assert_eq!(
        ask(&mut c, &get("/app")),
        "a",
        "same connection, next route"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(a.hits(), 1, "only /app reached an upstream");
    assert_eq!(a.upstream().accepted(), 1);
}
