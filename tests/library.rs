//! Library mode (`shardgate::embed`) through its public API only, against scripted upstreams on
//! 127.0.0.1: balancing, a dead endpoint ejected and its request retried elsewhere, the
//! connection cap's queue then the pool-full error, the bounded wait, active health checks, a
//! pooled connection the upstream closed, the retry budget, failures by side. Each test runs its
//! client on a monoio runtime of its own (io_uring, or epoll with `MONOIO_FORCE_LEGACY_DRIVER=1`).

mod support;

use std::time::{Duration, Instant};

use shardgate::embed::{Body, Client, Error};
use support::embed::*;
use support::*;

#[test]
fn requests_are_balanced_over_keep_alive_connections() {
    let a = Upstream::fixed("a");
    let b = Upstream::fixed("b");
    let (na, nb) = (a.addr.to_string(), b.addr.to_string());
    let bodies = block_on(async {
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
    let stats = block_on(async {
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
    let (first, second, third, third_took) = block_on(async {
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
    let (first, second) = block_on(async {
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
    block_on(async {
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
fn a_pooled_connection_the_upstream_closed_is_replaced_transparently() {
    let up = Upstream::close_after_response("x");
    let addr = up.addr.to_string();
    block_on(async {
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
    let stats = block_on(async {
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
fn failures_say_which_side_failed() {
    let hang = Upstream::hang();
    let addr = hang.addr.to_string();
    block_on(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/api", "svc")
            .timeouts(Duration::from_secs(1), Duration::from_millis(100))
            .retries(0, &[])
            .build()
            .unwrap();
        assert_eq!(fetch(&client, "/other").await, Err(Error::NoRoute));
        let err = client.send_to("nope", get_request("/")).await.unwrap_err();
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
