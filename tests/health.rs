//! Active health checks: an endpoint whose `http:/hc` probe fails stops getting traffic within one
//! interval plus the failing probe, and comes back after `rise` good probes; a killed upstream
//! (`tcp` check) loses its traffic to the others while clients keep being served; and each
//! endpoint is probed by exactly one shard.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::policy::*;
use support::*;

const INTERVAL: Duration = Duration::from_millis(200);

fn config(endpoints: &[SocketAddr], check: &str, retry: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n[[routes]]\n{retry}\n\n[[clusters]]\nname = \"web\"\n\
         endpoints = [{}]\n[clusters.breaker]\nfailures = 1000\n\
         [clusters.health_check]\ncheck = \"{check}\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n\
         fall = 1\nrise = 2\n",
        list.join(", ")
    )
}

/// A GET on a new connection (spread over the shards) every 5 ms until `until`.
fn traffic_until(proxy: &Proxy, until: impl Fn() -> bool, within: Duration) {
    let deadline = Instant::now() + within;
    let mut i = 0;
    while !until() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within {within:?}"
        );
        let r = fetch(proxy.addr, &get(&format!("/{i}")));
        assert_eq!(r.status, 200, "{}", r.text());
        i += 1;
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn failing_http_check_takes_an_endpoint_out_and_rise_good_probes_bring_it_back() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let file = temp_file("health-http", &config(&[a.addr, b.addr], "http:/hc", ""));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "2"]);
    traffic_until(
        &proxy,
        || a.hits() > 2 && b.hits() > 2 && b.probes() > 0,
        Duration::from_secs(3),
    );
    let probes = b.probes();
    assert!(
        b.events().iter().all(|e| !e.probe || e.target == "/hc"),
        "probes ask for /hc"
    );

    // Down: the first failing probe comes within one interval, and from then on nothing.
    let t0 = Instant::now();
    b.set_health(500);
    let failing_probe = || b.events().into_iter().find(|e| e.probe && e.status == 500);
    traffic_until(
        &proxy,
        || failing_probe().is_some_and(|e| e.at.elapsed() > Duration::from_millis(500)),
        Duration::from_secs(3),
    );
    let failed = failing_probe().unwrap().at;
    assert!(
        failed - t0 <= INTERVAL + Duration::from_millis(100),
        "first probe after the change came {:?} later (interval {INTERVAL:?})",
        failed - t0
    );
    let late: Vec<Duration> = b
        .events()
        .iter()
        .filter(|e| !e.probe && e.at > failed + Duration::from_millis(50))
        .map(|e| e.at - failed)
        .collect();
    assert!(
        late.is_empty(),
        "requests reached b after its failed probe: {late:?}"
    );
    assert!(b.probes() > probes + 1, "still probed while down");
    let hc = scrape(&proxy).one(
        "shardgate_upstream_healthy",
        &[("endpoint", &b.addr.to_string())],
    );
    assert_eq!(hc, 0.0);

    // Back: only after `rise` = 2 good probes.
    let t1 = Instant::now();
    b.set_health(200);
    let hits = b.hits();
    traffic_until(&proxy, || b.hits() > hits, Duration::from_secs(3));
    let first_hit = b.events().iter().filter(|e| !e.probe).nth(hits).unwrap().at;
    let good_probes = b
        .events()
        .iter()
        .filter(|e| e.probe && e.status == 200 && e.at > t1 && e.at < first_hit)
        .count();
    assert!(
        good_probes >= 2,
        "b got traffic after {good_probes} good probe(s), rise is 2"
    );
    assert!(
        first_hit - t1 < 3 * INTERVAL + Duration::from_millis(300),
        "{:?}",
        first_hit - t1
    );
}

/// A background client keeps sending while one of three upstreams dies (listener closed,
/// connections shut). Retries are off and the breaker would need 1000 failures, so only the
/// `tcp` health check can take it out: requests fail only in the moment before the check
/// notices, and afterwards every request is served by the other two.
#[test]
fn killed_upstream_under_load_loses_its_traffic_to_the_others() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let mut c = Backend::start("c");
    let file = temp_file(
        "health-kill",
        &config(&[a.addr, b.addr, c.addr], "tcp", "retry = { attempts = 0 }"),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "2"]);
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let addr = proxy.addr;
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, log) = (stop.clone(), log.clone());
            thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let what = match fetch_from(lo(1), addr, &get(&format!("/{i}"))) {
                        Ok(r) => who(&r),
                        Err(e) => format!("error: {e}"),
                    };
                    log.lock().unwrap().push((Instant::now(), what));
                    i += 1;
                    thread::sleep(Duration::from_millis(4));
                }
            })
        })
        .collect();
    poll(Duration::from_secs(3), "traffic on all three", || {
        (a.hits() > 3 && b.hits() > 3 && c.hits() > 3).then_some(())
    });
    let t0 = Instant::now();
    c.kill();
    poll(Duration::from_secs(3), "traffic after the kill", || {
        (t0.elapsed() > Duration::from_millis(1200)).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    for t in clients {
        t.join().unwrap();
    }
    let log = log.lock().unwrap();
    let after: Vec<&(Instant, String)> = log.iter().filter(|(t, _)| *t > t0).collect();
    let failed: Vec<Duration> = after
        .iter()
        .filter(|(_, w)| w != "a" && w != "b")
        .map(|(t, _)| *t - t0)
        .collect();
    let settle = INTERVAL + Duration::from_millis(100) + Duration::from_millis(200);
    let late: Vec<&Duration> = failed.iter().filter(|d| **d > settle).collect();
    println!(
        "{} requests after the kill, {} failed, the last {:?} after it",
        after.len(),
        failed.len(),
        failed.last()
    );
    assert!(
        late.is_empty(),
        "requests still failing after the health check: {failed:?}"
    );
    let served_late = after.iter().filter(|(t, _)| *t > t0 + settle).count();
    assert!(served_late > 50, "the load kept going: {served_late}");
    let hc = scrape(&proxy).one(
        "shardgate_upstream_healthy",
        &[("endpoint", &c.addr.to_string())],
    );
    assert_eq!(hc, 0.0);
}

/// Gaps between consecutive probes of one endpoint: one prober gives about one interval each;
/// two shards probing on their own would give gaps far shorter than the interval.
#[test]
fn each_endpoint_is_probed_by_exactly_one_shard() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = Proxy::to(
        &[a.addr, b.addr],
        &[
            "--shards",
            "2",
            "--health-check",
            "http:/hc",
            "--health-interval",
            "200ms",
        ],
    );
    poll(Duration::from_secs(5), "8 probes of each", || {
        (a.probes() >= 8 && b.probes() >= 8).then_some(())
    });
    for be in [&a, &b] {
        let at: Vec<Instant> = be
            .events()
            .iter()
            .filter(|e| e.probe)
            .map(|e| e.at)
            .collect();
        let gaps: Vec<u128> = at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
        assert!(
            gaps.iter().all(|&g| (140..=400).contains(&g)),
            "{}: probe gaps (ms) with a 200 ms interval: {gaps:?}",
            be.name()
        );
        let span = at.last().unwrap().duration_since(at[0]);
        let per_interval = (at.len() - 1) as f64 / (span.as_secs_f64() / 0.2);
        assert!(
            (0.8..=1.2).contains(&per_interval),
            "{}: {per_interval:.2} probes per interval",
            be.name()
        );
    }
    drop(proxy);
}

#[test]
fn a_reload_that_rebuilds_endpoints_keeps_their_health_verdict() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    b.set_health(500);
    let text = config(&[a.addr, b.addr], "http:/hc", "");
    let file = temp_file("health-reload", &text);
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    // Down: b's first probe fails (fall = 1), after which it gets no traffic.
    poll(Duration::from_secs(3), "b probed down", || {
        (b.probes() > 0).then_some(())
    });
    let after_down = |label: &str| {
        let before = b.hits();
        for i in 0..10 {
            assert_eq!(fetch(proxy.addr, &get(&format!("/{label}{i}"))).status, 200);
        }
        assert_eq!(b.hits(), before, "{label}: the down endpoint got traffic");
    };
    // The verdict lands once the probe's answer is read: wait until a round misses b.
    let mut round = 0;
    poll(Duration::from_secs(3), "b out of rotation", || {
        round += 1;
        let before = b.hits();
        for i in 0..4 {
            let r = fetch(proxy.addr, &get(&format!("/settle{round}-{i}")));
            assert_eq!(r.status, 200);
        }
        (b.hits() == before).then_some(())
    });
    after_down("before");
    // A new [pool] setting rebuilds every endpoint (new pools); b must stay out.
    std::fs::write(&file.0, format!("{text}\n[pool]\nmax_idle = 7\n")).unwrap();
    support::sys::signal(proxy.pid(), libc::SIGHUP);
    proxy
        .wait_stderr(Duration::from_secs(5), "reloaded ")
        .expect("reloaded");
    after_down("after");
}
