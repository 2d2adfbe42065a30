//! Cluster limits per shard: `max_connections` across the cluster's endpoints and `max_pending`
//! requests waiting for a connection, each answered by a 503 that says which; and `--proxy-protocol`
//! listeners: a PROXY v1 or v2 header sets the client address (X-Forwarded-For at the upstream,
//! the rate-limit key), a missing or garbage one gets 400 and the connection closed.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::policy::*;
use support::*;

fn cluster_config(endpoints: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n[[clusters]]\nname = \"web\"\nendpoints = [{}]\n{extra}\n",
        list.join(", ")
    )
}

/// Sends a GET on a new connection and waits until `b` holds it.
fn held_request(proxy: &Proxy, b: &Backend, path: &str) -> Conn {
    let before = b.hits();
    let mut c = proxy.connect();
    c.send(&get(path)).unwrap();
    poll(
        Duration::from_secs(3),
        "the request held at the backend",
        || (b.hits() > before).then_some(()),
    );
    c
}

#[test]
fn cluster_max_connections_counts_every_endpoint_of_the_cluster() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    a.hold();
    b.hold();
    let file = temp_file(
        "limits-conns",
        &cluster_config(&[a.addr, b.addr], "max_connections = 2"),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    // Round-robin: one held request on each endpoint, one connection each.
    let mut first = held_request(&proxy, &a, "/1");
    let mut second = held_request(&proxy, &b, "/2");
    let mut third = proxy.connect();
    third.send(&get("/3")).unwrap();
    let r = expect_canned_then_close(&mut third, 503, "cluster at max_connections");
    assert_eq!(r.text(), "upstream connection limit reached\n");
    assert_eq!(
        a.hits() + b.hits(),
        2,
        "the third request reached no upstream"
    );
    a.release();
    b.release();
    assert_eq!(who(&first.read_response().unwrap()), "a");
    assert_eq!(who(&second.read_response().unwrap()), "b");
    // Released connections are pooled: within the limit again.
    let r = fetch(proxy.addr, &get("/4"));
    assert_eq!(r.status, 200);
    assert_eq!(a.upstream().accepted() + b.upstream().accepted(), 2);
}

#[test]
fn cluster_max_pending_refuses_beyond_the_waiting_requests() {
    let a = Backend::start("a");
    a.hold();
    let file = temp_file(
        "limits-pending",
        &cluster_config(&[a.addr], "max_pending = 1"),
    );
    let proxy = Proxy::start(&[
        "--config",
        file.path(),
        "--shards",
        "1",
        "--max-upstream-connections",
        "1",
    ]);
    let mut first = held_request(&proxy, &a, "/1");
    // The second waits for the endpoint's only connection: one pending request.
    let mut second = proxy.connect();
    second.send(&get("/2")).unwrap();
    scrape_until(
        &proxy,
        Duration::from_secs(3),
        "the second request waiting for a connection",
        "shardgate_upstream_pool_waits_total",
        |m| m.sum("shardgate_upstream_pool_waits_total", &[]) >= 1.0,
    );
    let mut third = proxy.connect();
    third.send(&get("/3")).unwrap();
    let r = expect_canned_then_close(&mut third, 503, "cluster at max_pending");
    assert_eq!(r.text(), "too many pending upstream requests\n");
    a.release();
    assert_eq!(first.read_response().unwrap().status, 200);
    assert_eq!(
        second.read_response().unwrap().status,
        200,
        "the pending one is served"
    );
    assert_eq!(a.hits(), 2);
}

// === PROXY protocol ===

fn v2_header(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // TCP over IPv4
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h
}

/// Opens a connection, sends `header` then two GETs; returns the X-Forwarded-For the upstream saw.
fn forwarded_for(proxy: &Proxy, up: &Upstream, header: &[u8]) -> Vec<String> {
    let before = up.request_count();
    let mut c = proxy.connect();
    c.send(header).unwrap();
    for path in ["/one", "/two"] {
        let r = c.exchange(&get(path));
        assert_eq!(r.status, 200);
    }
    up.seen().requests[before..]
        .iter()
        .map(|r| r.header("x-forwarded-for").unwrap_or("").to_string())
        .collect()
}

#[test]
fn proxy_protocol_v1_and_v2_set_the_client_address() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--proxy-protocol", "--shards", "1"]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "v1 TCP4",
            b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n".to_vec(),
            "203.0.113.9",
        ),
        (
            "v1 TCP6",
            b"PROXY TCP6 2001:db8::7 ::1 1234 80\r\n".to_vec(),
            "2001:db8::7",
        ),
        (
            "v2 TCP4",
            v2_header([198, 51, 100, 4], 4444, [127, 0, 0, 1], 80),
            "198.51.100.4",
        ),
        ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n".to_vec(), "127.0.0.1"),
    ];
    for (what, header, want) in cases {
        let seen = forwarded_for(&proxy, &up, &header);
        assert_eq!(
            seen,
            [want, want],
            "{what}: X-Forwarded-For at the upstream"
        );
    }
}

#[test]
fn proxy_protocol_client_is_the_rate_limit_key() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--proxy-protocol",
            "--shards",
            "1",
            "--rate-limit",
            "5/m",
            "--rate-burst",
            "2",
        ],
    );
    let statuses = |src: &str| -> Vec<u16> {
        let mut c = proxy.connect();
        c.send(format!("PROXY TCP4 {src} 127.0.0.1 40000 80\r\n").as_bytes())
            .unwrap();
        (0..3).map(|_| c.exchange(&get("/")).status).collect()
    };
    assert_eq!(statuses("192.0.2.1"), [200, 200, 429]);
    assert_eq!(
        statuses("192.0.2.2"),
        [200, 200, 429],
        "another PROXY client, its own bucket"
    );
    assert_eq!(
        statuses("192.0.2.1"),
        [429, 429, 429],
        "a new connection, same client"
    );
}

#[test]
fn missing_or_garbage_proxy_header_gets_400_and_close() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--proxy-protocol", "--shards", "1"]);
    let mut bad_v2 = v2_header([1, 2, 3, 4], 1, [5, 6, 7, 8], 2);
    bad_v2[12] = 0x31; // version 3
    for (what, bytes) in [
        ("no PROXY header", get("/")),
        (
            "garbage v1",
            b"PROXY GARBAGE here\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            "v1 bad address",
            b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n".to_vec(),
        ),
        ("v2 bad version", bad_v2),
    ] {
        let mut c = proxy.connect();
        c.send(&bytes).unwrap();
        expect_canned_then_close(&mut c, 400, what);
    }
    assert_eq!(up.accepted(), 0, "nothing reached the upstream");
}

#[test]
fn proxy_header_from_an_untrusted_peer_is_refused() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--proxy-protocol",
            "--shards",
            "1",
            "--trusted-proxy",
            "10.0.0.0/8",
        ],
    );
    let mut c = proxy.connect();
    c.send(b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n")
        .unwrap();
    let _ = c.send(&get("/"));
    let (bytes, closed) = c.read_for(Duration::from_secs(2));
    assert!(
        closed,
        "connection from 127.0.0.1 (not in 10.0.0.0/8) left open"
    );
    assert!(
        bytes.is_empty() || bytes.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(up.accepted(), 0);
    // A trusted peer's header is believed.
    drop(proxy);
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--proxy-protocol",
            "--shards",
            "1",
            "--trusted-proxy",
            "127.0.0.1",
        ],
    );
    let up2 = &up;
    assert_eq!(
        forwarded_for(&proxy, up2, b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n"),
        ["203.0.113.9", "203.0.113.9"]
    );
}
