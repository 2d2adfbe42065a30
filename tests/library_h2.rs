//! Library mode against HTTP/2 upstreams (`protocol = "h2c"` and `"h2"` over TLS), public API
//! only, real servers on 127.0.0.1: the scripted upstream on the Python `h2` package
//! (tests/h2_upstream/upstream.py, h2c and TLS) for bodies of several MiB both ways (END_STREAM on
//! the last DATA frame), Host → `:authority` and connection-specific fields, a slow reader held to
//! the stream window, streams shared on few connections under the upstream's stream limit and the
//! pool cap (then `PoolFull`), REFUSED_STREAM and GOAWAY resent, a dead endpoint ejected, timeouts
//! and cut connections, HTTP/2 health checks, a reload closing a removed endpoint's connection,
//! the builder's `protocol`; nginx as an h2c and TLS h2 origin; the grpcio server
//! (tests/grpc/server.py) for trailers. Both drivers (`MONOIO_FORCE_LEGACY_DRIVER=1`).
//! scripts/test.sh installs nginx, Python `h2` and grpcio.

#[path = "h2_upstream/harness.rs"]
mod harness;
mod support;

use std::time::{Duration, Instant};

use harness::PyUp;
use serde_json::Value;
use shardgate::embed::{Body, Client, Error};
use support::certs::Certs;
use support::embed::*;
use support::*;

/// A client for one cluster `svc` of `endpoints` spoken to as `protocol` (with `extra` TOML for
/// the cluster) and one catch-all route (with `route` TOML).
fn client(tag: &str, endpoints: &[String], cluster: &str, route: &str) -> (Client, TempFile) {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[[routes]]\nname = \"all\"\npath_prefix = \"/\"\n\
         cluster = \"svc\"\n{route}\n[[clusters]]\nname = \"svc\"\nendpoints = [{}]\n{cluster}\n",
        eps.join(", "),
    );
    client_from_toml(tag, &text)
}

/// Sends a POST of `size` bytes (a pattern, in 64 KiB chunks from a `BodySender`, with the
/// length declared or not) to `path`; the response's status, body checksum and length.
async fn post_streamed(
    c: &Client,
    path: &str,
    size: usize,
    declared: bool,
) -> Result<(u16, Checksum, usize), Error> {
    let (mut tx, body) = Body::channel(declared.then_some(size as u64));
    monoio::spawn(async move {
        let mut pattern = Pattern::new(size as u64);
        let mut left = size;
        while left > 0 {
            let mut chunk = vec![0u8; left.min(64 << 10)];
            pattern.fill(&mut chunk);
            left -= chunk.len();
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        tx.finish();
    });
    let req = http::Request::post(format!("http://svc.test{path}"))
        .body(body)
        .unwrap();
    let resp = c.send(req).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let (mut sum, mut n) = (Checksum::default(), 0);
    while let Some(piece) = body.chunk().await? {
        sum.update(piece);
        n += piece.len();
    }
    Ok((status, sum, n))
}

/// The checksum of what `post_streamed` sends.
fn sent_checksum(size: usize) -> Checksum {
    let mut all = vec![0u8; size];
    let mut pattern = Pattern::new(size as u64);
    for part in all.chunks_mut(64 << 10) {
        pattern.fill(part);
    }
    Checksum::of(&all)
}

/// GET `/info`: what the upstream saw of the request (its headers as pairs).
async fn info(c: &Client) -> Value {
    let req = http::Request::get("http://svc.test/info?x=1")
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .header("x-app", "yes")
        .body(Body::empty())
        .unwrap();
    let resp = c.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    serde_json::from_slice(&resp.into_body().bytes().await.unwrap()).unwrap()
}

fn header<'v>(info: &'v Value, name: &str) -> Option<&'v str> {
    info["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
}

/// GET and POST through `c` (an h2c or TLS h2 cluster in front of `up`): the head as HTTP/2
/// carries it, 5 MiB streamed up and echoed back (declared length and not), each ending with its
/// last DATA frame.
async fn get_and_post(c: &Client, scheme: &str) {
    let seen = info(c).await;
    assert_eq!(header(&seen, ":authority"), Some("svc.test"), "{seen}");
    assert_eq!(header(&seen, ":scheme"), Some(scheme), "{seen}");
    assert_eq!(header(&seen, ":path"), Some("/info?x=1"), "{seen}");
    assert_eq!(header(&seen, "x-app"), Some("yes"), "{seen}");
    for gone in ["host", "connection", "keep-alive", "transfer-encoding"] {
        assert_eq!(header(&seen, gone), None, "{gone} stripped: {seen}");
    }
    const SIZE: usize = 5 << 20;
    for declared in [false, true] {
        let (status, sum, n) = post_streamed(c, "/echo", SIZE, declared).await.unwrap();
        assert_eq!((status, n), (200, SIZE), "declared length: {declared}");
        assert!(
            sum == sent_checksum(SIZE),
            "echoed intact (declared {declared})"
        );
    }
}

/// Whether the upstream saw an empty DATA frame (END_STREAM on its own) or `path` `n` times.
fn check_stats(up: &PyUp, path: &str, n: u64) -> Value {
    let s = up.stats();
    assert_eq!(
        s["empty_data"], 0,
        "END_STREAM rode on the last DATA frame: {s}"
    );
    assert_eq!(s["paths"][path], n, "{s}");
    s
}

#[test]
fn get_and_post_stream_mibs_both_ways_over_h2c() {
    let up = PyUp::start(&[]);
    block_on(async {
        let (c, _f) = client("lib-h2c", &[up.addr.to_string()], "protocol = \"h2c\"", "");
        get_and_post(&c, "http").await;
    });
    let s = check_stats(&up, "/echo", 2);
    assert_eq!(
        s["connections"],
        1 + 1,
        "one connection (+ the stats one): {s}"
    );
}

#[test]
fn get_and_post_stream_mibs_both_ways_over_tls_h2() {
    let certs = Certs::new("lib-h2-tls");
    let leaf = certs.leaf("upstream", &["localhost"]);
    let up = PyUp::start(&["--tls", leaf.cert(), leaf.key()]);
    block_on(async {
        let cluster = format!("protocol = \"h2\"\ntls = {{ ca = {:?} }}", certs.ca());
        let ep = format!("localhost:{}", up.addr.port());
        let (c, _f) = client("lib-h2-tls", &[ep], &cluster, "");
        get_and_post(&c, "https").await;
        // The upstream's counters, asked through the client (it speaks TLS only).
        let (status, stats) = fetch(&c, "/stats").await.unwrap();
        assert_eq!(status, 200);
        let s: Value = serde_json::from_slice(&stats).unwrap();
        assert_eq!(
            s["empty_data"], 0,
            "END_STREAM rode on the last DATA frame: {s}"
        );
        assert_eq!(s["connections"], 1, "one connection for all requests: {s}");
        let stats = c.stats();
        let e = stats.endpoints.values().next().unwrap();
        assert_eq!(e.tls_handshakes, 1, "one TLS handshake");
    });
}

/// A response body read slowly holds the upstream to the stream's flow-control window: while
/// the caller sits on its first chunk of 8 MiB, the upstream has sent a few hundred KiB at most;
/// read on, the whole body arrives intact.
#[test]
fn a_slow_reader_holds_the_upstream_to_the_window() {
    const SIZE: usize = 8 << 20;
    let up = PyUp::start(&[]);
    let (early, n, sum) = block_on(async {
        let (c, _f) = client(
            "lib-h2-slow",
            &[up.addr.to_string()],
            "protocol = \"h2c\"",
            "",
        );
        let resp = c.send(get_request(&format!("/big/{SIZE}"))).await.unwrap();
        let mut body = resp.into_body();
        let mut sum = Checksum::default();
        let first = body.chunk().await.unwrap().expect("a first chunk");
        sum.update(first);
        let mut n = first.len();
        monoio::time::sleep(Duration::from_millis(500)).await;
        let early = up.stats()["data_sent"].as_u64().unwrap();
        while let Some(piece) = body.chunk().await.unwrap() {
            sum.update(piece);
            n += piece.len();
        }
        (early, n, sum)
    });
    assert!(
        early <= 512 << 10,
        "sent {early} bytes to a caller that read one chunk"
    );
    assert_eq!(n, SIZE);
    let expected: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 251) as u8).collect();
    assert!(sum == Checksum::of(&expected), "the body arrived intact");
}

/// Requests started at once share the connections: SETTINGS_MAX_CONCURRENT_STREAMS = 4 and two
/// connections at most: eight requests take exactly two, never five streams on one.
#[test]
fn concurrent_requests_share_few_connections() {
    let up = PyUp::start(&["--max-streams", "4"]);
    let got = block_on(async {
        let pool = "[pool]\nmax_connections = 2\nqueue = 16\n";
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\n{pool}[[clusters]]\nname = \"svc\"\n\
             endpoints = [\"{}\"]\nprotocol = \"h2c\"\n",
            up.addr
        );
        let (c, _f) = client_from_toml("lib-h2-share", &text);
        // The first connection's SETTINGS known before the burst.
        assert_eq!(fetch(&c, "/sleep/1").await.unwrap().0, 200);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                monoio::spawn(async move { fetch(&c, "/sleep/400").await })
            })
            .collect();
        let mut got = vec![];
        for t in tasks {
            got.push(t.await);
        }
        got
    });
    for r in &got {
        assert_eq!(r.as_ref().unwrap(), &(200, b"slept".to_vec()));
    }
    let s = up.stats();
    assert_eq!(
        s["connections"],
        2 + 1,
        "two connections (+ the stats one): {s}"
    );
    assert_eq!(
        s["max_open"], 4,
        "four streams on a connection, never more: {s}"
    );
}

/// One connection of one stream: a second request at once waits in the queue, or with no queue
/// gets `PoolFull`.
#[test]
fn a_full_connection_queues_then_refuses_with_pool_full() {
    for (queue, expect_full) in [(0, true), (4, false)] {
        let up = PyUp::start(&["--max-streams", "1"]);
        let got = block_on(async {
            let text = format!(
                "listen = [\"127.0.0.1:0\"]\n[pool]\nmax_connections = 1\nqueue = {queue}\n\
                 [[clusters]]\nname = \"svc\"\nendpoints = [\"{}\"]\nprotocol = \"h2c\"\n",
                up.addr
            );
            let (c, _f) = client_from_toml("lib-h2-full", &text);
            assert_eq!(fetch(&c, "/sleep/1").await.unwrap().0, 200);
            let first = {
                let c = c.clone();
                monoio::spawn(async move { fetch(&c, "/sleep/500").await.map(|r| r.0) })
            };
            monoio::time::sleep(Duration::from_millis(100)).await;
            let second = fetch(&c, "/sleep/1").await.map(|r| r.0);
            (first.await, second)
        });
        let s = up.stats();
        assert_eq!(got.0, Ok(200), "queue {queue}");
        if expect_full {
            assert_eq!(got.1, Err(Error::PoolFull), "no queue: refused at once");
        } else {
            assert_eq!(got.1, Ok(200), "queued for the stream");
        }
        assert_eq!(s["connections"], 1 + 1, "never a second connection: {s}");
    }
}

/// A stream the upstream did not process is sent again, even a POST with no retries: reset with
/// REFUSED_STREAM, and above a GOAWAY's last stream id (then on a new connection).
#[test]
fn refused_streams_and_goaway_are_resent() {
    let up = PyUp::start(&[]);
    block_on(async {
        let (c, _f) = client(
            "lib-h2-refused",
            &[up.addr.to_string()],
            "protocol = \"h2c\"",
            "",
        );
        for path in ["/refuse-once/a", "/goaway-refuse/b"] {
            let req = http::Request::post(format!("http://svc.test{path}"))
                .body(Body::from("hello"))
                .unwrap();
            let resp = c.send(req).await.expect("resent");
            assert_eq!(resp.status(), 200, "{path}");
            assert_eq!(resp.into_body().bytes().await.unwrap(), b"5", "{path}");
        }
        let stats = c.stats();
        let e = stats.endpoints.values().next().unwrap();
        assert_eq!(
            e.failures, 0,
            "a refused stream is not the endpoint's failure"
        );
    });
    let s = up.stats();
    assert_eq!(s["paths"]["/refuse-once/a"], 2, "{s}");
    assert_eq!(s["paths"]["/goaway-refuse/b"], 2, "{s}");
    assert_eq!(
        s["connections"],
        2 + 1,
        "a new connection after the GOAWAY: {s}"
    );
}

/// Built in code (`Builder::protocol("h2c")`): a dead endpoint is tried once, ejected by its
/// breaker, and its request retried on the live one.
#[test]
fn a_dead_endpoint_is_ejected_and_its_request_retried_elsewhere() {
    let dead = refused_addr().to_string();
    let up = PyUp::start(&[]);
    let live = up.addr.to_string();
    let stats = block_on(async {
        let c = Client::builder()
            .cluster("svc", &[&dead, &live])
            .route_prefix("/", "svc")
            .protocol("h2c")
            .retries(1, &["connect"])
            .breaker(1, Duration::from_secs(30))
            .build()
            .unwrap();
        for _ in 0..6 {
            let (status, _) = fetch(&c, "/info").await.expect("retried elsewhere");
            assert_eq!(status, 200);
        }
        c.stats()
    });
    let dead_stats = &stats.endpoints[&("svc".to_string(), dead.clone())];
    assert_eq!(dead_stats.connects, 1, "tried once, then ejected");
    assert_eq!(
        dead_stats.breaker_state(),
        1,
        "its breaker is open (1: open)"
    );
    let route = stats.routes.values().next().expect("the route's counters");
    assert_eq!(route.retries, 1, "one retry spent");
    let s = up.stats();
    assert_eq!(s["paths"]["/info"], 6, "all answered by the live one: {s}");
}

/// A gRPC call's trailers (`grpc-status`, its trailing metadata) reach the caller after the
/// body, from a real gRPC server.
#[test]
fn grpc_trailers_reach_the_caller() {
    let server = support::grpc_server::start(None);
    let (status, message, trailers) = block_on(async {
        let (c, _f) = client(
            "lib-h2-grpc",
            &[server.addr.to_string()],
            "protocol = \"h2c\"",
            "",
        );
        let mut frame = vec![0u8, 0, 0, 0, 5];
        frame.extend_from_slice(b"hello");
        let req = http::Request::post("http://svc.test/test.Echo/Unary")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Body::from(frame))
            .unwrap();
        let resp = c.send(req).await.unwrap();
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        assert!(body.trailers().is_none(), "none before the body ended");
        let mut message = vec![];
        while let Some(piece) = body.chunk().await.unwrap() {
            message.extend_from_slice(piece);
        }
        (status, message, body.trailers().cloned())
    });
    assert_eq!(status, 200);
    assert_eq!(&message[5..], b"hello", "the message echoed");
    let t = trailers.expect("trailers after the body");
    assert_eq!(
        t.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..]),
        "{t:?}"
    );
    assert_eq!(
        t.get("x-trailer").map(|v| v.as_bytes()),
        Some(&b"t"[..]),
        "{t:?}"
    );
}

/// The cluster's health check speaks HTTP/2: the endpoint answering 503 is marked down, the
/// one answering 200 stays up (an HTTP/1.1 probe would fail both), and requests go to it.
#[test]
fn the_h2_health_check_marks_a_down_endpoint() {
    let sick = PyUp::start(&["--status", "503"]);
    let well = PyUp::start(&[]);
    let (s, w) = (sick.addr.to_string(), well.addr.to_string());
    block_on(async {
        let cluster = "protocol = \"h2c\"\n[clusters.health_check]\ncheck = \"http:/status\"\n\
                       interval = \"50ms\"\ntimeout = \"1s\"\nrise = 1\nfall = 1";
        let (c, _f) = client("lib-h2-health", &[s.clone(), w.clone()], cluster, "");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = c.stats();
            let healthy = |e: &String| stats.endpoints[&("svc".to_string(), e.clone())].healthy();
            if !healthy(&s) {
                assert!(healthy(&w), "the well one stays up");
                break;
            }
            assert!(Instant::now() < deadline, "the probe never took it out");
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..4 {
            let (status, _) = fetch(&c, "/info").await.unwrap();
            assert_eq!(status, 200);
        }
    });
    assert!(
        well.stats()["paths"]["/status"].as_u64().unwrap_or(0) >= 1,
        "probed over HTTP/2"
    );
    assert_eq!(
        well.stats()["paths"]["/info"],
        4,
        "requests went to the well one"
    );
    assert!(
        sick.stats()["paths"]["/info"].is_null(),
        "none to the sick one"
    );
}

/// The route's upstream timeout bounds the wait for an HTTP/2 response head (not retried: the
/// policy retries resets only), and a connection the upstream cuts is retried once on a new one,
/// then fails the request on the upstream's side: each counts as the endpoint's failure, and the
/// next request gets a new connection.
#[test]
fn a_timeout_and_a_cut_connection_fail_on_the_upstream_side() {
    let up = PyUp::start(&[]);
    block_on(async {
        let route =
            "timeouts = { upstream = \"200ms\" }\nretry = { attempts = 1, on = [\"reset\"] }";
        let (c, _f) = client(
            "lib-h2-fail",
            &[up.addr.to_string()],
            "protocol = \"h2c\"",
            route,
        );
        let started = Instant::now();
        assert_eq!(fetch(&c, "/sleep/3000").await, Err(Error::UpstreamTimeout));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bounded by the route"
        );
        let cut = fetch(&c, "/die").await.unwrap_err();
        assert_eq!(cut, Error::UpstreamClosed);
        assert_eq!(cut.side(), shardgate::embed::Side::Upstream);
        assert_eq!(fetch(&c, "/info").await.unwrap().0, 200, "a new connection");
        let stats = c.stats();
        let e = stats.endpoints.values().next().unwrap();
        assert_eq!(e.failures, 3, "the timeout and the two cuts");
    });
    let s = up.stats();
    assert_eq!(
        s["paths"]["/sleep/3000"], 1,
        "a timeout is not retried here: {s}"
    );
    assert_eq!(s["paths"]["/die"], 2, "a reset is, once: {s}");
    assert_eq!(
        s["connections"],
        3 + 1,
        "two cut, one new (+ the stats one): {s}"
    );
}

/// A reload keeps the HTTP/2 connection of an endpoint that stays, and closes the one of an
/// endpoint that left well before the pool's idle timeout would.
#[test]
fn a_reload_keeps_a_kept_endpoints_connection_and_closes_a_removed_ones() {
    let (a, b) = (PyUp::start(&[]), PyUp::start(&[]));
    let text = |eps: &[&PyUp]| {
        let eps: Vec<String> = eps.iter().map(|u| format!("\"{}\"", u.addr)).collect();
        format!(
            "listen = [\"127.0.0.1:0\"]\n[pool]\nidle_timeout = \"8s\"\n[[clusters]]\n\
             name = \"svc\"\nendpoints = [{}]\nprotocol = \"h2c\"\nlb = \"round-robin\"\n",
            eps.join(", ")
        )
    };
    let next = temp_file("lib-h2-reload-2", &text(&[&a]));
    block_on(async {
        let (c, _f) = client_from_toml("lib-h2-reload-1", &text(&[&a, &b]));
        for _ in 0..2 {
            assert_eq!(fetch(&c, "/info").await.unwrap().0, 200);
        }
        let config = shardgate::embed::Config::from_file(next.path()).unwrap();
        c.reload(config).unwrap();
        let reloaded = Instant::now();
        for _ in 0..2 {
            assert_eq!(fetch(&c, "/info").await.unwrap().0, 200);
        }
        until("the removed endpoint's connection to close", || {
            b.stats()["closed"]
                .as_array()
                .is_some_and(|c| c.iter().any(|p| p == "/info"))
        })
        .await;
        assert!(
            reloaded.elapsed() < Duration::from_secs(6),
            "closed at the reload, not at the 8 s idle timeout ({:?})",
            reloaded.elapsed()
        );
    });
    let s = a.stats();
    assert_eq!(s["paths"]["/info"], 3, "{s}");
    assert_eq!(
        s["connections"],
        1 + 1,
        "the kept endpoint's connection reused: {s}"
    );
}

#[test]
fn the_builder_refuses_a_protocol_it_cannot_speak() {
    for (protocol, says) in [("h2", "tls"), ("h3", "not a protocol")] {
        let err = block_on(async {
            Client::builder()
                .cluster("svc", &["127.0.0.1:9"])
                .protocol(protocol)
                .build()
                .unwrap_err()
        });
        assert!(err.starts_with("protocol: ") && err.contains(says), "{err}");
    }
}

/// nginx as the HTTP/2 origin, h2c and TLS h2 (ALPN): it sees the request's host as
/// `:authority`, and 1 MiB comes through intact, the requests sharing one connection.
#[test]
fn nginx_answers_over_h2c_and_tls_h2() {
    let certs = Certs::new("lib-h2-nginx");
    let leaf = certs.leaf("upstream", &["localhost"]);
    let plain = harness::Nginx::start("lib-h2c", None);
    let tls = harness::Nginx::start("lib-h2tls", Some((leaf.cert(), leaf.key())));
    let setups = [
        (plain.addr.to_string(), "protocol = \"h2c\"".to_string()),
        (
            format!("localhost:{}", tls.addr.port()),
            format!("protocol = \"h2\"\ntls = {{ ca = {:?} }}", certs.ca()),
        ),
    ];
    for (ep, cluster) in setups {
        block_on(async {
            let (c, _f) = client("lib-h2-nginx", std::slice::from_ref(&ep), &cluster, "");
            let resp = c.send(get_request("/")).await.unwrap();
            assert_eq!(resp.status(), 200, "{cluster}");
            let saw = resp.headers().get("x-saw-host").cloned();
            assert_eq!(saw.as_ref().map(|v| v.as_bytes()), Some(&b"svc.test"[..]));
            assert_eq!(resp.into_body().bytes().await.unwrap(), b"ok");
            let (status, body) = fetch(&c, "/1m").await.unwrap();
            assert_eq!(status, 200);
            assert!(
                body == harness::pattern(1 << 20),
                "1 MiB intact ({cluster})"
            );
            let stats = c.stats();
            let e = stats.endpoints.values().next().unwrap();
            assert_eq!(e.connects, 1, "one connection for both ({cluster})");
        });
    }
}
