//! Retries: an idempotent GET whose connect is refused, or that got a status the route retries,
//! is sent once more to another endpoint; a POST with a body that reached an upstream is never
//! sent twice; and the retry budget (ratio of requests plus a small reserve) caps retries during an
//! outage so they never multiply it, visible on the admin `/metrics`.

mod support;

use std::net::SocketAddr;

use support::admin::{temp_path, wait_log_lines};
use support::policy::*;
use support::*;

fn config(endpoints: &[SocketAddr], cluster: &str, route: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n[[routes]]\nname = \"r\"\n{route}\n\n[[clusters]]\n\
         name = \"web\"\nendpoints = [{}]\n{cluster}\n",
        list.join(", ")
    )
}

fn route_counter(m: &Metrics, name: &str) -> f64 {
    m.sum(name, &[("route", "r")])
}

#[test]
fn get_with_a_refused_connect_is_retried_on_another_endpoint() {
    let good = Backend::start("good");
    let refused = refused_addr();
    let file = temp_file("retry-connect", &config(&[refused, good.addr], "", ""));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    for i in 0..10 {
        let r = fetch(proxy.addr, &get(&format!("/{i}")));
        assert_eq!((r.status, who(&r).as_str()), (200, "good"), "request {i}");
    }
    let m = scrape_until(
        &proxy,
        ms(2000),
        "retries counted",
        "shardgate_route_retries_total",
        |m| route_counter(m, "shardgate_route_retries_total") >= 1.0,
    );
    let connects = m.sum(
        "shardgate_upstream_connects_total",
        &[("endpoint", &refused.to_string())],
    );
    assert_eq!(
        route_counter(&m, "shardgate_route_retries_total"),
        connects,
        "every refused connect was retried"
    );
    assert_eq!(good.hits(), 10);

    // The same without retries: the refused endpoint's share fails.
    let file = temp_file(
        "retry-none",
        &config(&[refused, good.addr], "", "retry = { attempts = 0 }"),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    c.send(&get("/")).unwrap();
    expect_canned_then_close(
        &mut c,
        502,
        "attempts = 0: a refused connect is the client's 502",
    );
}

#[test]
fn a_503_is_retried_on_another_endpoint_when_the_route_says_so() {
    let bad = Backend::with_status("bad", 503);
    let good = Backend::start("good");
    let eps = [bad.addr, good.addr];
    let file = temp_file("retry-503", &config(&eps, "", "retry = { on = [\"503\"] }"));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    for i in 0..6 {
        let r = c.exchange(&get(&format!("/{i}")));
        assert_eq!((r.status, who(&r).as_str()), (200, "good"), "request {i}");
    }
    assert!(bad.hits() >= 1, "the 503 endpoint was tried");
    assert_eq!(good.hits(), 6);

    // Without `on = ["503"]`, the 503 reaches the client.
    let file = temp_file("retry-503-off", &config(&eps, "", ""));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    let got: Vec<String> = (0..4).map(|_| who(&c.exchange(&get("/")))).collect();
    assert_eq!(got, ["bad", "good", "bad", "good"]);
}

/// When the retry also gets a status the route retries and no attempt is left, the client gets
/// that upstream answer (its status, headers and body), not an answer the proxy makes up.
#[test]
fn with_no_attempt_left_the_last_upstream_answer_is_relayed() {
    let a = Backend::with_status("a", 503);
    let b = Backend::with_status("b", 503);
    let file = temp_file(
        "retry-last",
        &config(
            &[a.addr, b.addr],
            "failure_statuses = [502]",
            "retry = { on = [\"503\"] }",
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    let r = c.exchange(&get("/"));
    assert_eq!(r.status, 503);
    assert!(
        r.header(ENDPOINT).is_some(),
        "the client got {:?} instead of the second endpoint's own 503",
        r.text()
    );
    assert_eq!((a.hits(), b.hits()), (1, 1), "tried once on each");
}

/// An upstream that reads a request and resets the connection.
fn resetter() -> Upstream {
    Upstream::start(|p| {
        if p.next_request().is_some() {
            p.reset_on_close();
        }
    })
}

#[test]
fn post_with_a_body_is_not_retried_but_get_is() {
    let good = Backend::start("good");
    let bad = resetter();
    // Round-robin starts at the first endpoint: the first request goes to the resetter.
    let proxy = Proxy::to(&[bad.addr, good.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    c.send(&request("POST", "/order", &[], b"pay 10 euros"))
        .unwrap();
    expect_canned_then_close(&mut c, 502, "a POST whose upstream reset");
    let seen = bad.wait_for("the POST", ms(2000), |s| !s.requests.is_empty());
    assert_eq!(seen.requests[0].body, b"pay 10 euros");
    assert_eq!(good.hits(), 0, "the POST was sent a second time");

    let bad = resetter();
    let proxy = Proxy::to(&[bad.addr, good.addr], &["--shards", "1"]);
    let r = fetch(proxy.addr, &get("/read"));
    assert_eq!(
        (r.status, who(&r).as_str()),
        (200, "good"),
        "a GET is retried after a reset"
    );
    assert_eq!(bad.request_count(), 1);
}

/// Every request fails on both endpoints and wants a retry; the budget allows
/// `budget_ratio` × requests + `budget_min_per_sec` × 10 s of them, and refuses the rest.
#[test]
fn the_retry_budget_caps_retries_in_an_outage() {
    let a = Backend::with_status("a", 503);
    let b = Backend::with_status("b", 503);
    let file = temp_file(
        "retry-budget",
        &config(
            &[a.addr, b.addr],
            "failure_statuses = [502]",
            "retry = { on = [\"503\"], budget_ratio = 0.2, budget_min_per_sec = 1 }",
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    const N: usize = 150;
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..N {
        let r = fetch(proxy.addr, &get(&format!("/{i}")));
        *statuses.entry(who(&r)).or_insert(0) += 1;
    }
    assert_eq!(
        statuses.values().sum::<usize>(),
        statuses.get("a").unwrap_or(&0) + statuses.get("b").unwrap_or(&0),
        "every client got an upstream's own 503, retried or not: {statuses:?}"
    );
    let hits = a.hits() + b.hits();
    let retries = hits - N;
    let cap = 0.2 * N as f64 + 1.0 * 10.0;
    println!("{N} requests, {hits} upstream hits: {retries} retries (cap {cap})");
    assert!(
        retries as f64 <= cap && retries as f64 >= cap - 2.0,
        "{retries} retries for {N} failing requests, want the budget's {cap}"
    );
    let m = scrape_until(
        &proxy,
        ms(2000),
        "retry counters",
        "shardgate_route_r",
        |m| {
            route_counter(m, "shardgate_route_retries_total")
                + route_counter(m, "shardgate_route_retry_budget_exhausted_total")
                >= N as f64
        },
    );
    assert_eq!(
        route_counter(&m, "shardgate_route_retries_total"),
        retries as f64
    );
    assert_eq!(
        route_counter(&m, "shardgate_route_retry_budget_exhausted_total"),
        (N - retries) as f64,
        "every request wanted a retry: the rest were refused by the budget"
    );
}

/// A GET whose upstream answers too late is retried on another endpoint when the route retries
/// on `timeout` (the attempt that timed out must leave the connection's buffers usable).
#[test]
fn a_response_timeout_is_retried_on_another_endpoint_when_the_route_says_so() {
    let slow = Backend::start("slow");
    slow.set_delay(ms(1500));
    let good = Backend::start("good");
    let route = "retry = { on = [\"timeout\"] }\ntimeouts = { upstream = \"200ms\" }";
    let file = temp_file("retry-timeout", &config(&[slow.addr, good.addr], "", route));
    // Both response-head reads: the plain one, and the short one that leaves bodies to splice.
    for splice in ["0", "16384"] {
        let args = [
            "--config",
            file.path(),
            "--shards",
            "1",
            "--splice-threshold",
            splice,
        ];
        let proxy = Proxy::start(&args);
        let mut c = proxy.connect();
        for i in 0..4 {
            let r = c.exchange(&get(&format!("/{i}")));
            assert_eq!(
                (r.status, who(&r).as_str()),
                (200, "good"),
                "{splice}: request {i}"
            );
        }
    }
    assert!(slow.hits() >= 2, "the slow endpoint was tried");
}

/// The budget has one retry left and two requests may want it: `/late`, whose retryable answer is
/// held by its upstream, and `/b`, which spends the last retry meanwhile. `/late` is then not
/// retried, and its client gets the upstream's own answer (status, headers, body), not one the
/// proxy makes up for a status it held back (502 "upstream failed", 503 "no healthy upstream",
/// 504 "upstream timed out").
#[test]
fn a_retry_the_budget_spent_meanwhile_relays_the_upstreams_own_answer() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    for status in [502, 503, 504] {
        let tries = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let gate = Arc::new(Gate::default());
        let up = {
            let (tries, gate) = (tries.clone(), gate.clone());
            Upstream::start(move |p| {
                p.serve(|r| {
                    let mut t = tries.lock().unwrap_or_else(|e| e.into_inner());
                    let n = t.entry(r.target.clone()).or_insert(0);
                    *n += 1;
                    let first = *n == 1;
                    drop(t);
                    if r.target == "/late" {
                        gate.wait(ms(10_000));
                        return response(status, &[("X-Own", "late")], b"the upstream's own\n");
                    }
                    if first {
                        response(status, &[], b"first try\n")
                    } else {
                        response(200, &[], b"retried\n")
                    }
                })
            })
        };
        // No earned share: the reserve, 1/s over the 10 s window, allows 10 retries.
        let route = format!(
            "retry = {{ on = [\"{status}\"], budget_ratio = 0.0, budget_min_per_sec = 1 }}"
        );
        let file = temp_file(
            "retry-budget-race",
            &config(&[up.addr], "failure_statuses = [500]", &route),
        );
        let log = temp_path("retry-budget-race", "log");
        let args = [
            "--config",
            file.path(),
            "--shards",
            "1",
            "--access-log",
            log.path(),
        ];
        let proxy = Proxy::start(&args);
        for i in 0..9 {
            let r = fetch(proxy.addr, &get(&format!("/warm{i}")));
            assert_eq!(
                (r.status, r.text()),
                (200, "retried\n".into()),
                "{status}: warm-up {i}"
            );
        }
        // One retry left: `/late` reaches its upstream while the budget still allows it...
        let mut late = proxy.connect();
        late.send(&get("/late")).unwrap();
        up.wait_for("/late", ms(5000), |s| {
            s.requests.iter().any(|r| r.target == "/late")
        });
        // ...and `/b` spends it before `/late`'s answer arrives.
        let r = fetch(proxy.addr, &get("/b"));
        assert_eq!(
            (r.status, r.text()),
            (200, "retried\n".into()),
            "{status}: /b"
        );
        gate.open();
        let r = late.read_response().unwrap();
        assert_eq!(
            (r.status, r.header("X-Own"), r.text()),
            (status, Some("late"), "the upstream's own\n".into()),
            "{status}: the client of /late got a made-up answer"
        );
        let m = scrape_until(
            &proxy,
            ms(2000),
            "retry counters",
            "shardgate_route_r",
            |m| route_counter(m, "shardgate_route_retry_budget_exhausted_total") >= 1.0,
        );
        assert_eq!(route_counter(&m, "shardgate_route_retries_total"), 10.0);
        assert_eq!(
            route_counter(&m, "shardgate_route_retry_budget_exhausted_total"),
            1.0
        );
        let t = tries.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(t.get("/late"), Some(&1), "{status}: /late was sent once");
        assert_eq!(t.get("/b"), Some(&2), "{status}: /b was retried");
        let lines = wait_log_lines(log.path().as_ref(), 11, ms(5000));
        let line = lines
            .iter()
            .find(|l| l["path"] == "/late")
            .expect("a line for /late");
        assert_eq!(
            line["status"], status,
            "{status}: the access log of /late: {line}"
        );
    }
}
