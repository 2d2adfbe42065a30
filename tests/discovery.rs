//! DNS discovery against a real DNS server the test starts (dnsmasq on 127.0.0.1, a free port):
//! `dns:` endpoints use every A record (load spread over backends on 127.0.0.x), a record
//! added and one removed under a bounded load loop fail no request and keep the staying
//! endpoint's connections, a stopped server leaves the last-known set serving (and `max_stale`
//! fails `/readyz`), `srv:` weights are honoured, records are asked again at their TTL clamped
//! to `[min_ttl, resolve_interval]`, and a reload keeps the set of unchanged names. SRV records
//! changed while shardgate runs (nsupdate against BIND) are in tests/discovery_srv.rs.

mod support;

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use support::discovery::{ask, backends_on_one_port, count, Load};
use support::dns::Dnsmasq;
use support::policy::{poll, Backend};
use support::{admin, scrape, temp_file, Proxy, TempFile};

fn hosts(ips: &[u8]) -> String {
    ips.iter()
        .map(|ip| format!("127.0.0.{ip} api.test\n"))
        .collect()
}

/// A proxy whose one cluster `api` has `endpoints`, asking `dns`; `extra` goes into the cluster.
fn proxy(dns: &Dnsmasq, endpoints: &[String], extra: &str) -> (Proxy, TempFile) {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\nresolvers = [\"{}\"]\n\n[[clusters]]\nname = \"api\"\nendpoints = [{}]\n{extra}\n",
        dns.addr,
        eps.join(", ")
    );
    let file = temp_file("discovery", &text);
    let p = Proxy::start(&["--config", file.path()]);
    (p, file)
}

fn refreshes(p: &Proxy) -> f64 {
    let m = scrape(p);
    ["ok", "changed"]
        .iter()
        .map(|r| {
            m.sum(
                "shardgate_discovery_refreshes_total",
                &[("cluster", "api"), ("result", r)],
            )
        })
        .sum()
}

#[test]
fn every_a_record_is_an_endpoint_and_load_spreads_over_them() {
    let (bs, port) = backends_on_one_port(&[11, 12, 13]);
    let dns = Dnsmasq::start(&hosts(&[11, 12, 13]), 30, &[]);
    let (p, _f) = proxy(&dns, &[format!("dns:api.test:{port}")], "");
    let got = count(&ask(&p, 90));
    for b in &bs {
        let n = got.get(b.name()).copied().unwrap_or(0);
        assert!(n >= 20, "{} got {n} of 90: {got:?}", b.name());
    }
    let m = scrape(&p);
    assert_eq!(
        m.one("shardgate_discovery_endpoints", &[("cluster", "api")]),
        3.0
    );
    // Each address is an endpoint of its own, named HOST:PORT@IP.
    for ip in [11, 12, 13] {
        let ep = format!("api.test:{port}@127.0.0.{ip}");
        assert!(
            !m.select("shardgate_upstream_healthy", &[("endpoint", &ep)])
                .is_empty(),
            "no endpoint {ep} in /metrics"
        );
    }
}

#[test]
fn a_record_added_and_one_removed_under_load_fail_no_request() {
    let (bs, port) = backends_on_one_port(&[21, 22, 23]);
    let dns = Dnsmasq::start(&hosts(&[21, 22]), 1, &[]);
    let (p, _f) = proxy(
        &dns,
        &[format!("dns:api.test:{port}")],
        "min_ttl = \"500ms\"\nresolve_interval = \"2s\"",
    );
    let load = Load::start(p.addr);
    poll(
        Duration::from_secs(10),
        "load on both first backends",
        || (bs[0].hits() > 20 && bs[1].hits() > 20).then_some(()),
    );
    // The endpoint that stays keeps its pooled connections across the change.
    let stayer_conns = bs[1].upstream().accepted();
    dns.set_hosts(&hosts(&[22, 23]));
    poll(
        Duration::from_secs(10),
        "the added record taking load",
        || (bs[2].hits() > 20).then_some(()),
    );
    let removed_at = bs[0].hits();
    let before = load.done.load(Ordering::SeqCst);
    poll(
        Duration::from_secs(10),
        "more load after the change",
        || (load.done.load(Ordering::SeqCst) > before + 100).then_some(()),
    );
    let (ok, failed) = load.finish();
    println!(
        "record change under load: {} requests, {} failed, by backend {:?}",
        ok.len() + failed.len(),
        failed.len(),
        count(&ok)
    );
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.len() > 200, "the loop ran: {} requests", ok.len());
    assert_eq!(
        bs[0].hits(),
        removed_at,
        "the removed record's backend got requests after it left"
    );
    assert_eq!(
        bs[1].upstream().accepted(),
        stayer_conns,
        "the staying endpoint's pool was rebuilt (new upstream connections)"
    );
    assert!(p
        .stderr
        .all()
        .iter()
        .any(|l| l.contains("discovery: cluster api") && l.contains("removed")));
}

#[test]
fn a_stopped_dns_server_leaves_the_last_known_set_serving() {
    let (bs, port) = backends_on_one_port(&[31, 32]);
    let dns = Dnsmasq::start(&hosts(&[31, 32]), 1, &[]);
    let (p, _f) = proxy(
        &dns,
        &[format!("dns:api.test:{port}")],
        "min_ttl = \"200ms\"\nresolve_interval = \"1s\"\nmax_stale = \"3s\"",
    );
    assert_eq!(admin(&p, "GET", "/readyz").status, 200);
    // Stopped: every question goes unanswered (a timeout each).
    dns.pause();
    poll(Duration::from_secs(10), "a failed lookup counted", || {
        let m = scrape(&p);
        let failed = m.sum(
            "shardgate_discovery_refreshes_total",
            &[("cluster", "api"), ("result", "timeout")],
        );
        (failed >= 2.0).then_some(())
    });
    let got = count(&ask(&p, 40));
    assert_eq!(
        got.get(bs[0].name()).copied().unwrap_or(0) + got.get(bs[1].name()).copied().unwrap_or(0),
        40,
        "{got:?}"
    );
    // Logged once when the failure began, not per lookup.
    let lines = p.stderr.all();
    let failed: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("lookup failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("keeping the last-known 2 endpoints"),
        "{failed:?}"
    );
    // Older than max_stale: /readyz says so, loudly; requests still flow.
    let r = poll(
        Duration::from_secs(10),
        "/readyz failing on a stale set",
        || {
            let r = admin(&p, "GET", "/readyz");
            (r.status == 503).then_some(r)
        },
    );
    assert!(r.text().contains("discovery: cluster api"), "{}", r.text());
    assert!(scrape(&p).one("shardgate_discovery_set_age_seconds", &[("cluster", "api")]) > 3.0);
    assert!(ask(&p, 10).iter().all(|w| w.starts_with('b')));
    // The server back: the set is fresh again.
    dns.resume();
    poll(Duration::from_secs(10), "/readyz ready again", || {
        (admin(&p, "GET", "/readyz").status == 200).then_some(())
    });
}

#[test]
fn srv_weights_are_honoured() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let mut dns = Dnsmasq::start(
        "",
        1,
        &[
            &format!(
                "--srv-host=_http._tcp.svc.test,a.test,{},0,10",
                a.addr.port()
            ),
            &format!(
                "--srv-host=_http._tcp.svc.test,b.test,{},0,30",
                b.addr.port()
            ),
            // A higher priority class number: used only when the lowest is gone (RFC 2782).
            &format!(
                "--srv-host=_http._tcp.svc.test,c.test,{},1,100",
                a.addr.port()
            ),
            "--host-record=a.test,127.0.0.1",
            "--host-record=b.test,127.0.0.1",
            "--host-record=c.test,127.0.0.2",
        ],
    );
    let (p, _f) = proxy(
        &dns,
        &["srv:_http._tcp.svc.test".into()],
        "lb = \"weighted\"\nresolve_interval = \"1s\"",
    );
    let got = count(&ask(&p, 400));
    let (na, nb) = (
        got.get("a").copied().unwrap_or(0),
        got.get("b").copied().unwrap_or(0),
    );
    assert_eq!(na + nb, 400, "{got:?}");
    let ratio = nb as f64 / na as f64;
    assert!((2.5..=3.5).contains(&ratio), "weights 10:30 gave {na}:{nb}");
    assert_eq!(
        scrape(&p).one("shardgate_discovery_endpoints", &[("cluster", "api")]),
        2.0
    );
    // SRV records change (dnsmasq reads --srv-host only at start: restarted on its port).
    dns.restart(&[
        &format!(
            "--srv-host=_http._tcp.svc.test,b.test,{},0,30",
            b.addr.port()
        ),
        "--host-record=b.test,127.0.0.1",
    ]);
    poll(Duration::from_secs(10), "the SRV change served", || {
        ask(&p, 10).iter().all(|w| w == "b").then_some(())
    });
}

#[test]
fn records_are_asked_again_at_their_ttl_clamped_to_min_ttl() {
    let (bs, port) = backends_on_one_port(&[41, 42]);
    // TTL 2s, min_ttl 1s: asked every 2 s, and a changed record is seen within about 2 s.
    let dns = Dnsmasq::start(&hosts(&[41]), 2, &[]);
    let (p, _f) = proxy(
        &dns,
        &[format!("dns:api.test:{port}")],
        "min_ttl = \"1s\"\nresolve_interval = \"30s\"",
    );
    let r0 = refreshes(&p);
    thread::sleep(Duration::from_millis(4500)); // a measured window, not a wait for a condition
    let asked = refreshes(&p) - r0;
    assert!(
        (2.0..=3.0).contains(&asked),
        "TTL 2s: {asked} lookups in 4.5 s"
    );
    dns.set_hosts(&hosts(&[42]));
    let t = Instant::now();
    poll(Duration::from_secs(10), "the changed record served", || {
        (ask(&p, 1)[0] == bs[1].name()).then_some(())
    });
    assert!(
        t.elapsed() < Duration::from_millis(3000),
        "picked up after {:?} (TTL 2s)",
        t.elapsed()
    );

    // TTL 0 (dnsmasq's default for its own records): never asked more often than min_ttl.
    let dns0 = Dnsmasq::start(&hosts(&[41]), 0, &[]);
    let (p0, _f0) = proxy(
        &dns0,
        &[format!("dns:api.test:{port}")],
        "min_ttl = \"1s\"\nresolve_interval = \"30s\"",
    );
    let r0 = refreshes(&p0);
    thread::sleep(Duration::from_millis(3500)); // a measured window
    let asked = refreshes(&p0) - r0;
    assert!(
        (2.0..=4.0).contains(&asked),
        "TTL 0, min_ttl 1s: {asked} lookups in 3.5 s"
    );
}

#[test]
fn a_reload_keeps_the_set_of_unchanged_names_and_their_pools() {
    let (bs, port) = backends_on_one_port(&[51, 52]);
    let dns = Dnsmasq::start(&hosts(&[51, 52]), 30, &[]);
    let (p, f) = proxy(&dns, &[format!("dns:api.test:{port}")], "");
    assert_eq!(count(&ask(&p, 20)).len(), 2);
    let conns: Vec<usize> = bs.iter().map(|b| b.upstream().accepted()).collect();
    let asked = refreshes(&p);
    // Another setting changes; the DNS name does not.
    let text = std::fs::read_to_string(f.path()).unwrap()
        + "max_pending = 500
";
    std::fs::write(f.path(), text).unwrap();
    let r = admin(&p, "POST", "/reload");
    assert_eq!(r.status, 200, "{}", r.text());
    // At once, without a new lookup: both endpoints, on the connections they had.
    let got = count(&ask(&p, 20));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        refreshes(&p),
        asked,
        "a reload of an unchanged name asked DNS again"
    );
    let after: Vec<usize> = bs.iter().map(|b| b.upstream().accepted()).collect();
    assert_eq!(after, conns, "the reload rebuilt the pools");
    // The running config shows the name as written.
    let cfg = admin(&p, "GET", "/config").text();
    assert!(cfg.contains(&format!("\"dns:api.test:{port}\"")), "{cfg}");
}

#[test]
fn an_answer_too_big_for_udp_is_asked_again_over_tcp() {
    // 60 A records do not fit a 512-byte UDP answer: dnsmasq sets TC, the full set comes by TCP.
    // An AAAA record is an endpoint too.
    let ips: Vec<u8> = (100..160).collect();
    let dns = Dnsmasq::start(&(hosts(&ips) + "::1 api.test\n"), 30, &[]);
    let (p, _f) = proxy(&dns, &["dns:api.test:9".into()], "");
    let m = scrape(&p);
    assert_eq!(
        m.one("shardgate_discovery_endpoints", &[("cluster", "api")]),
        61.0
    );
    let v6 = m.select(
        "shardgate_upstream_healthy",
        &[("endpoint", "api.test:9@::1")],
    );
    assert_eq!(v6.len(), 1, "no AAAA endpoint in /metrics");
}

#[test]
fn a_silent_dns_server_never_holds_up_the_coordinator() {
    // A resolver that takes every question and answers none: each lookup waits out its timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = Backend::start("fixed");
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\nresolvers = [\"{}\"]\n\n[[clusters]]\nname = \"api\"\nendpoints = [\"dns:api.test:80\", \"{}\"]\nmin_ttl = \"100ms\"\n",
        silent.local_addr().unwrap(),
        b.addr
    );
    let f = temp_file("silent", &text);
    let p = Proxy::start(&["--config", f.path()]);
    let timeouts = |p: &Proxy| {
        scrape(p).sum(
            "shardgate_discovery_refreshes_total",
            &[("cluster", "api"), ("result", "timeout")],
        )
    };
    let seen = timeouts(&p);
    // While the next lookups wait on the silent server, admin calls, reloads and requests
    // are answered at once.
    let t = Instant::now();
    while timeouts(&p) < seen + 1.0 {
        let (r, took) = support::timed(|| admin(&p, "POST", "/reload"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(took < Duration::from_millis(500), "a reload took {took:?}");
        assert_eq!(ask(&p, 1), vec!["fixed".to_string()]);
        assert!(t.elapsed() < Duration::from_secs(15), "no lookup timed out");
    }
    drop(silent);
}

#[test]
fn discovered_endpoints_are_health_checked_and_named_by_their_dns_name() {
    let (bs, port) = backends_on_one_port(&[61, 62]);
    let dns = Dnsmasq::start(&hosts(&[61, 62]), 30, &[]);
    let (p, _f) = proxy(
        &dns,
        &[format!("dns:api.test:{port}")],
        "[clusters.health_check]\ncheck = \"http:/healthz\"\ninterval = \"100ms\"\nrise = 1\nfall = 1",
    );
    // Probes ask for the name as written (Host: api.test:PORT), never the endpoint's IP suffix.
    for b in &bs {
        let seen = poll(Duration::from_secs(10), "a health probe", || {
            let s = b.upstream().seen();
            s.requests
                .iter()
                .any(|r| r.target == "/healthz")
                .then_some(s)
        });
        let probe = seen
            .requests
            .iter()
            .find(|r| r.target == "/healthz")
            .unwrap();
        assert_eq!(
            probe.header("host"),
            Some(format!("api.test:{port}").as_str())
        );
    }
    // A failing probe takes the discovered endpoint out like any other.
    bs[0].set_health(503);
    poll(
        Duration::from_secs(10),
        "the unhealthy endpoint out",
        || {
            let m = scrape(&p);
            let ep = format!("api.test:{port}@127.0.0.61");
            (m.one("shardgate_upstream_healthy", &[("endpoint", &ep)]) == 0.0).then_some(())
        },
    );
    assert!(ask(&p, 20).iter().all(|w| w == bs[1].name()));
}
