//! Library mode (`shardgate::embed`) through its public API only, against scripted upstreams on
//! 127.0.0.1: balancing, a dead endpoint ejected and its request retried elsewhere, the
//! connection cap's queue then the pool-full error, a reload keeping pools, bodies streamed both
//! ways. Each test runs its client on a monoio runtime of its own (io_uring, or epoll with
//! `MONOIO_FORCE_LEGACY_DRIVER=1`).

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardgate::embed::{Body, Client, Error};
use support::*;

/// Runs `f` to its end on a fresh monoio runtime with the timer on.
fn run<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("a monoio runtime")
        .block_on(f)
}

fn get(path: &str) -> shardgate::Request {
    http::Request::get(format!("http://svc.test{path}"))
        .body(Body::empty())
        .unwrap()
}

/// Polls `cond` every few milliseconds on the client's runtime until it holds (10 s at most).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Requests of `client` waiting for a connection to `endpoint` of cluster `svc`, so far.
fn pool_waits(client: &Client, endpoint: &str) -> u64 {
    let stats = client.stats();
    stats.endpoints[&("svc".to_string(), endpoint.to_string())].pool_waits
}

/// Sends a GET and reads its body to the end.
async fn fetch(client: &Client, path: &str) -> Result<(u16, Vec<u8>), Error> {
    let resp = client.send(get(path)).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().bytes().await?))
}

#[test]
fn requests_are_balanced_over_keep_alive_connections() {
    let a = Upstream::fixed("a");
    let b = Upstream::fixed("b");
    let (na, nb) = (a.addr.to_string(), b.addr.to_string());
    let bodies = run(async {
        let client = Client::builder()
            .cluster("svc", &[&na, &nb])
            .route_prefix("/", "svc")
            .build()
            .unwrap();
        let mut bodies = Vec::new();
        for _ in 0..10 {
            bodies.push(fetch(&client, "/x").await.unwrap().1);
        }
        let text = shardgate::embed::render_metrics(&[client.stats()]);
        let line = format!(
            "shardgate_upstream_requests_total{{cluster=\"svc\",endpoint=\"{na}\",class=\"2xx\"}} 5"
        );
        assert!(text.contains(&line), "{line} in\n{text}");
        bodies
    });
    let from_a = bodies.iter().filter(|b| b.as_slice() == b"a").count();
    assert_eq!((from_a, bodies.len() - from_a), (5, 5), "round-robin");
    assert_eq!(a.request_count(), 5);
    assert_eq!(b.request_count(), 5);
    // Each body was read to its end, so each connection went back to its pool.
    assert_eq!((a.accepted(), b.accepted()), (1, 1), "connections reused");
}

#[test]
fn a_dead_endpoint_is_ejected_and_its_request_retried_elsewhere() {
    let dead = refused_addr().to_string();
    let live = Upstream::fixed("ok");
    let live_addr = live.addr.to_string();
    let stats = run(async {
        let client = Client::builder()
            .cluster("svc", &[&dead, &live_addr])
            .route_prefix("/", "svc")
            .retries(1, &["connect"])
            .breaker(1, Duration::from_secs(30))
            .build()
            .unwrap();
        for _ in 0..6 {
            let (status, body) = fetch(&client, "/").await.expect("retried elsewhere");
            assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
        }
        client.stats()
    });
    assert_eq!(
        live.request_count(),
        6,
        "every request answered by the live endpoint"
    );
    let dead_stats = &stats.endpoints[&("svc".to_string(), dead.clone())];
    assert_eq!(dead_stats.connects, 1, "tried once, then ejected");
    assert_eq!(
        dead_stats.breaker_state(),
        1,
        "its breaker is open (1: open)"
    );
    let route = stats.routes.values().next().expect("the route's counters");
    assert_eq!(route.retries, 1, "one retry spent");
}

#[test]
fn the_connection_cap_queues_then_refuses_with_pool_full() {
    let up = Upstream::slow(Duration::from_millis(300), "slow");
    let addr = up.addr.to_string();
    let (first, second, third, third_took) = run(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .max_connections(1)
            .queue(1, Duration::from_secs(5))
            .build()
            .unwrap();
        let c1 = client.clone();
        let one = monoio::spawn(async move { fetch(&c1, "/1").await });
        until("the first request upstream", || up.request_count() == 1).await;
        let c2 = client.clone();
        let two = monoio::spawn(async move { fetch(&c2, "/2").await });
        until("the second request queued", || {
            pool_waits(&client, &addr) == 1
        })
        .await;
        let t = Instant::now();
        let three = fetch(&client, "/3").await;
        let took = t.elapsed();
        (one.await, two.await, three, took)
    });
    assert_eq!(first.unwrap().1, b"slow");
    assert_eq!(
        second.unwrap().1,
        b"slow",
        "the queued request got the connection"
    );
    assert_eq!(third, Err(Error::PoolFull), "the queue holds one");
    assert!(
        third_took < Duration::from_millis(200),
        "refused at once: {third_took:?}"
    );
    assert_eq!(up.accepted(), 1, "never more than the cap");
}

#[test]
fn the_wait_for_a_connection_is_bounded() {
    let up = Upstream::slow(Duration::from_millis(600), "slow");
    let addr = up.addr.to_string();
    let (first, second) = run(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .max_connections(1)
            .queue(4, Duration::from_millis(100))
            .build()
            .unwrap();
        let c1 = client.clone();
        let one = monoio::spawn(async move { fetch(&c1, "/1").await });
        until("the first request upstream", || up.request_count() == 1).await;
        let second = fetch(&client, "/2").await;
        (one.await, second)
    });
    assert!(first.is_ok());
    assert_eq!(second, Err(Error::PoolFull), "queue timeout");
}

#[test]
fn a_reload_keeps_the_pools_of_unchanged_endpoints() {
    let up = Upstream::fixed("same");
    let other = Upstream::fixed("other");
    let file = |extra: &str| {
        format!(
            "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{}\"]\n{extra}\
             [[routes]]\nname = \"all\"\npath_prefix = \"/\"\ncluster = \"svc\"\n",
            up.addr
        )
    };
    let first = temp_file("library-reload-1", &file(""));
    let second = temp_file(
        "library-reload-2",
        &file(&format!(
            "[[clusters]]\nname = \"new\"\nendpoints = [\"{}\"]\n",
            other.addr
        )),
    );
    let first_path = first.path().to_string();
    let second_path = second.path().to_string();
    run(async move {
        let client = Client::from_file(&first_path).unwrap();
        assert_eq!(fetch(&client, "/a").await.unwrap().1, b"same");
        let next = shardgate::embed::Config::from_file(&second_path).unwrap();
        client.reload(next).unwrap();
        assert_eq!(fetch(&client, "/b").await.unwrap().1, b"same");
        let to_new = client.send_to("new", get("/c")).await.unwrap();
        assert_eq!(to_new.into_body().bytes().await.unwrap(), b"other");
    });
    assert_eq!(up.request_count(), 2);
    assert_eq!(
        up.accepted(),
        1,
        "the same connection served both sides of the reload"
    );
}

#[test]
fn bodies_larger_than_the_buffer_stream_both_ways() {
    const SIZE: usize = 3 << 20; // 3 MiB, the buffer is 16 KiB
    let up = Upstream::echo();
    let addr = up.addr.to_string();
    let (received, chunks) = run(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .build()
            .unwrap();
        let (mut tx, body) = Body::channel(None);
        monoio::spawn(async move {
            let mut pattern = Pattern::new(7);
            for _ in 0..SIZE / (64 << 10) {
                let mut chunk = vec![0u8; 64 << 10];
                pattern.fill(&mut chunk);
                tx.send(chunk).await.unwrap();
            }
            tx.finish();
        });
        let req = http::Request::post("http://svc.test/upload")
            .body(body)
            .unwrap();
        let mut body = client.send(req).await.unwrap().into_body();
        let (mut sum, mut n, mut chunks) = (Checksum::default(), 0, 0);
        while let Some(piece) = body.chunk().await.unwrap() {
            sum.update(piece);
            n += piece.len();
            chunks += 1;
        }
        assert_eq!(n, SIZE);
        (sum, chunks)
    });
    let mut expected = vec![0u8; SIZE];
    let mut pattern = Pattern::new(7);
    for part in expected.chunks_mut(64 << 10) {
        pattern.fill(part);
    }
    assert_eq!(
        received,
        Checksum::of(&expected),
        "the echoed body is the one sent"
    );
    assert!(chunks > 10, "read in pieces, not at once ({chunks})");
    let seen = up.seen();
    assert_eq!(seen.requests[0].body_len, SIZE);
    assert_eq!(
        seen.requests[0].header("transfer-encoding"),
        Some("chunked")
    );
}

#[test]
fn a_response_is_read_while_the_upstream_still_sends_it() {
    let go = Arc::new(AtomicBool::new(false));
    let gate = go.clone();
    let up = Upstream::start(move |p| {
        if p.next_request().is_none() {
            return;
        }
        p.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gate.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        p.write(b"-last");
        p.wait_close();
    });
    let addr = up.addr.to_string();
    run(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .build()
            .unwrap();
        let mut body = client.send(get("/")).await.unwrap().into_body();
        let first = body.chunk().await.unwrap().unwrap().to_vec();
        assert_eq!(
            first, b"first",
            "the first bytes came before the upstream sent the rest"
        );
        go.store(true, Ordering::SeqCst);
        assert_eq!(body.chunk().await.unwrap(), Some(&b"-last"[..]));
        assert_eq!(body.chunk().await.unwrap(), None);
    });
}

#[test]
fn failures_say_which_side_failed() {
    let hang = Upstream::hang();
    let addr = hang.addr.to_string();
    run(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/api", "svc")
            .timeouts(Duration::from_secs(1), Duration::from_millis(100))
            .retries(0, &[])
            .build()
            .unwrap();
        assert_eq!(fetch(&client, "/other").await, Err(Error::NoRoute));
        let err = client.send_to("nope", get("/")).await.unwrap_err();
        assert_eq!(err, Error::UnknownCluster);
        let err = fetch(&client, "/api/x").await.unwrap_err();
        assert_eq!(err, Error::UpstreamTimeout);
        assert_eq!(err.side(), shardgate::embed::Side::Upstream);
        let (mut tx, body) = Body::channel(Some(10));
        let req = http::Request::post("http://svc.test/api/y")
            .body(body)
            .unwrap();
        monoio::spawn(async move {
            let _ = tx.send(&b"short"[..]).await;
            // Dropped without `finish`: five bytes of ten.
        });
        assert_eq!(client.send(req).await.unwrap_err(), Error::RequestBody);
    });
}

#[test]
fn active_health_checks_take_a_failing_endpoint_out() {
    // `sick` serves requests but fails its health check.
    let sick = Upstream::start(|p| {
        p.serve(|r| {
            let status = if r.target == "/health" { 503 } else { 200 };
            support::compose::response(status, &[], b"sick")
        })
    });
    let well = Upstream::fixed("well");
    let (s, w) = (sick.addr.to_string(), well.addr.to_string());
    run(async {
        let client = Client::builder()
            .cluster("svc", &[&s, &w])
            .route_prefix("/", "svc")
            .health_check("http:/health", Duration::from_millis(20))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = client.stats();
            if !stats.endpoints[&("svc".to_string(), s.clone())].healthy() {
                break;
            }
            assert!(Instant::now() < deadline, "the probe never took it out");
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        for _ in 0..6 {
            assert_eq!(fetch(&client, "/").await.unwrap().1, b"well");
        }
    });
}

#[test]
fn a_route_rate_limit_refuses_with_retry_after() {
    let up = Upstream::fixed("ok");
    let file = temp_file(
        "library-ratelimit",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{}\"]\n\
             [[routes]]\nname = \"limited\"\npath_prefix = \"/\"\ncluster = \"svc\"\n\
             rate_limit = {{ rate = \"1/s\", burst = 1 }}\n",
            up.addr
        ),
    );
    let path = file.path().to_string();
    run(async move {
        let client = Client::from_file(&path).unwrap();
        assert_eq!(fetch(&client, "/").await.unwrap().0, 200);
        match fetch(&client, "/").await {
            Err(Error::RateLimited { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
    });
    assert_eq!(up.request_count(), 1, "the refused request never left");
}

/// A client from TOML text (written to a temp file, read by `Client::from_file`).
fn client_from_toml(tag: &str, text: &str) -> (Client, TempFile) {
    let file = temp_file(tag, text);
    let client = Client::from_file(file.path()).unwrap();
    (client, file)
}

#[test]
fn an_https_upstream_is_reached_over_one_reused_tls_connection() {
    let certs = support::certs::Certs::new("lib-up");
    let leaf = certs.leaf("upstream", &["localhost"]);
    let up = support::tls_upstream::TlsUpstream::start(&leaf, None);
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"web\"\n\
         endpoints = [\"localhost:{}\"]\ntls = {{ ca = {:?} }}\n",
        up.addr.port(),
        certs.ca()
    );
    run(async {
        let (client, _file) = client_from_toml("library-tls", &text);
        for i in 0..4 {
            let (status, body) = fetch(&client, &format!("/r{i}")).await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(
                String::from_utf8(body).unwrap(),
                format!("sni=localhost client_cert=no path=/r{i}")
            );
        }
    });
    let seen = up.seen();
    assert_eq!(
        (seen.accepted, seen.handshakes),
        (1, 1),
        "one connection, one handshake"
    );
}

#[test]
fn a_pooled_connection_the_upstream_closed_is_replaced_transparently() {
    let up = Upstream::close_after_response("x");
    let addr = up.addr.to_string();
    run(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .retries(0, &[])
            .build()
            .unwrap();
        for _ in 0..3 {
            assert_eq!(fetch(&client, "/").await.unwrap().1, b"x");
        }
    });
    assert_eq!(up.request_count(), 3);
    assert_eq!(
        up.accepted(),
        3,
        "each request after a close went on a fresh connection"
    );
}

#[test]
fn a_response_body_dropped_unread_closes_its_connection() {
    let up = Upstream::fixed("unread body");
    let addr = up.addr.to_string();
    run(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .build()
            .unwrap();
        let resp = client.send(get("/1")).await.unwrap();
        drop(resp); // its body was never read
        assert_eq!(fetch(&client, "/2").await.unwrap().1, b"unread body");
        assert_eq!(fetch(&client, "/3").await.unwrap().1, b"unread body");
    });
    assert_eq!(
        up.accepted(),
        2,
        "the unread one was closed, the read one reused"
    );
    up.wait_for("the first connection closed", Duration::from_secs(5), |s| {
        s.peer_closed >= 1
    });
}

#[test]
fn routes_rewrite_the_path_edit_headers_and_answer_directly() {
    let up = Upstream::echo_head();
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{}\"]\n\
         [[routes]]\nname = \"health\"\npath = \"/healthz\"\n\
         direct = {{ status = 200, body = \"ok\\n\" }}\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\ncluster = \"svc\"\n\
         rewrite_prefix = \"/v2/\"\nrequest_headers_add = {{ \"x-route\" = \"api\" }}\n\
         request_headers_remove = [\"cookie\"]\n",
        up.addr
    );
    run(async {
        let (client, _file) = client_from_toml("library-routes", &text);
        let (status, body) = fetch(&client, "/healthz").await.unwrap();
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"ok\n"[..]),
            "direct answer"
        );
        let req = http::Request::get("http://svc.test/api/users?id=7")
            .header("cookie", "secret=1")
            .header("x-keep", "yes")
            .body(Body::empty())
            .unwrap();
        let head = client
            .send(req)
            .await
            .unwrap()
            .into_body()
            .bytes()
            .await
            .unwrap();
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /v2/users?id=7 http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nhost: svc.test\r\n"), "{head}");
        assert!(head.contains("\r\nx-route: api\r\n"), "{head}");
        assert!(head.contains("\r\nx-keep: yes\r\n"), "{head}");
        assert!(!head.contains("cookie"), "{head}");
    });
    assert_eq!(
        up.request_count(),
        1,
        "the direct answer never went upstream"
    );
}

#[test]
fn the_health_checks_stop_with_the_client() {
    let up = Upstream::fixed("ok");
    let addr = up.addr.to_string();
    let probes_after_drop = run(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .health_check("tcp", Duration::from_millis(10))
            .build()
            .unwrap();
        until("two probes", || up.accepted() >= 2).await;
        drop(client);
        let at_drop = up.accepted();
        // The probing task naps at most 250 ms between looks at the (now gone) client; watch
        // twice that long on the same runtime, which keeps running its tasks.
        monoio::time::sleep(Duration::from_millis(600)).await;
        up.accepted() - at_drop
    });
    assert!(
        probes_after_drop <= 1,
        "{probes_after_drop} probes after the drop"
    );
}

#[test]
fn the_builder_refuses_bad_settings_with_a_message() {
    run(async {
        let e = Client::builder()
            .cluster("svc", &["nonsense"])
            .build()
            .unwrap_err();
        assert!(e.contains("cluster svc: endpoint \"nonsense\""), "{e}");
        let e = Client::builder()
            .route_prefix("/", "missing")
            .build()
            .unwrap_err();
        assert!(e.contains("no cluster \"missing\""), "{e}");
        let e = Client::builder()
            .cluster("svc", &["127.0.0.1:1"])
            .retries(1, &["sometimes"])
            .build()
            .unwrap_err();
        assert!(e.starts_with("retries: "), "{e}");
        let e = Client::builder()
            .cluster("svc", &["127.0.0.1:1"])
            .breaker(0, Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(e.starts_with("breaker: "), "{e}");
        let e = Client::builder().build().unwrap_err();
        assert!(e.contains("upstream"), "no cluster at all: {e}");
    });
}

#[test]
fn a_streamed_body_beyond_the_route_max_body_is_refused() {
    let up = Upstream::echo();
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{}\"]\n\
         [[routes]]\nname = \"small\"\npath_prefix = \"/\"\ncluster = \"svc\"\nmax_body = 1000\n",
        up.addr
    );
    run(async {
        let (client, _file) = client_from_toml("library-max-body", &text);
        // A declared length over the limit: refused before anything is sent.
        let req = http::Request::post("http://svc.test/")
            .body(Body::from(vec![b'x'; 1001]))
            .unwrap();
        assert_eq!(client.send(req).await.unwrap_err(), Error::TooLarge);
        // A chunked stream: refused when it passes the limit.
        let (mut tx, body) = Body::channel(None);
        monoio::spawn(async move {
            for _ in 0..4 {
                if tx.send(vec![b'y'; 600]).await.is_err() {
                    return;
                }
            }
            tx.finish();
        });
        let req = http::Request::post("http://svc.test/").body(body).unwrap();
        assert_eq!(client.send(req).await.unwrap_err(), Error::TooLarge);
        // Within the limit: sent.
        let req = http::Request::post("http://svc.test/")
            .body(Body::from(vec![b'z'; 1000]))
            .unwrap();
        let echoed = client.send(req).await.unwrap().into_body().bytes().await;
        assert_eq!(echoed.unwrap().len(), 1000);
    });
    assert_eq!(
        up.request_count(),
        1,
        "only the one within the limit arrived whole"
    );
}

#[test]
fn retries_stop_when_the_route_retry_budget_is_spent() {
    let dead = refused_addr().to_string();
    let live = Upstream::fixed("ok");
    // Round-robin from the dead endpoint; no retry budget at all (no ratio, no minimum).
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{dead}\", \"{}\"]\n\
         [[routes]]\nname = \"r\"\npath_prefix = \"/\"\ncluster = \"svc\"\n\
         retry = {{ attempts = 1, on = [\"connect\"], budget_ratio = 0.0, budget_min_per_sec = 0 }}\n",
        live.addr
    );
    let stats = run(async {
        let (client, _file) = client_from_toml("library-budget", &text);
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            outcomes.push(fetch(&client, "/").await.map(|(s, _)| s));
        }
        assert!(outcomes.contains(&Err(Error::Connect)), "{outcomes:?}");
        assert!(outcomes.contains(&Ok(200)), "{outcomes:?}");
        client.stats()
    });
    let route = &stats.routes["r"];
    assert_eq!(
        (route.retries, route.budget_exhausted),
        (0, 1),
        "refused by the budget"
    );
}

#[test]
fn a_config_with_dns_discovery_is_refused_with_its_location() {
    let file = temp_file(
        "library-dns",
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\n\
         endpoints = [\"dns:svc.internal:80\"]\n",
    );
    let path = file.path().to_string();
    let err = run(async move { Client::from_file(&path).unwrap_err() });
    assert!(err.contains("clusters[0].endpoints"), "{err}");
    assert!(err.contains("not in library mode"), "{err}");
}
