//! The admin listener (coordinator/admin.rs answered by coordinator/admin/answer.rs): `/healthz` and
//! `/readyz` (503 once a drain starts), `/metrics` in the Prometheus text format with every
//! family the stats catalogue declares and counters that follow real traffic, `/config` as TOML
//! with secrets redacted, `/shards` as JSON with each shard's core, driver and load, `POST /drain`
//! and `POST /reload`, 404/405 for anything else, and no admin socket at all with `--admin off`.

mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use support::*;

/// The stats catalogue and the renderer, read at compile time: the families the scrape must show.
const FAMILIES_RS: &str = include_str!("../src/stats/families.rs");
const RENDER_RS: &str = include_str!("../src/stats/render.rs");
/// Families with a sample only once a TLS listener served (tests/tls.rs checks those samples).
const LISTENER_TLS_RS: &str = include_str!("../src/stats/listener_tls.rs");

/// Holds upstream answers until opened (bounded, so a failing test never hangs a thread forever).
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    fn close(&self) {
        *self.0 .0.lock().unwrap() = false;
    }

    fn wait(&self) {
        let g = self.0 .0.lock().unwrap();
        let _ = self
            .0
             .1
            .wait_timeout_while(g, Duration::from_secs(10), |open| !*open)
            .unwrap();
    }
}

/// An upstream that answers `200 released` once `gate` opens.
fn gated(gate: &Gate) -> Upstream {
    let g = gate.clone();
    Upstream::start(move |p| {
        p.serve(|_| {
            g.wait();
            response(200, &[], b"released")
        })
    })
}

/// A free port on 127.0.0.1 (bound, then released) for a config that names its listener.
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A request on a fresh connection; its response.
fn fetch(proxy: &Proxy, path: &str) -> Response {
    proxy.connect().exchange(&get(path))
}

/// Waits until a new connection to `addr` is refused (the listener closed), bounded.
fn refused_within(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr, ms(300)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
            _ => std::thread::sleep(ms(20)),
        }
    }
    false
}

#[test]
fn healthz_and_readyz_answer_503_from_the_moment_a_drain_starts() {
    let gate = Gate::default();
    let up = gated(&gate);
    let mut proxy = Proxy::to(&[up.addr], &["--shards", "2"]);
    let h = admin(&proxy, "GET", "/healthz");
    assert_eq!(h.status, 200, "healthy before the drain: {}", h.text());
    assert_eq!(admin(&proxy, "GET", "/readyz").status, 200);

    let mut held = proxy.connect();
    held.send(&get("/held")).unwrap();
    up.wait_for("the request in flight", ms(3000), |s| s.requests.len() == 1);
    proxy.sigterm();
    let h = admin_until(&proxy, "/healthz", ms(2000), "503 during the drain", |r| {
        r.status == 503
    });
    assert!(!h.body.is_empty(), "the 503 says why");
    assert!(
        proxy.wait_exit(ms(0)).is_none(),
        "the proxy must still be draining (a request is held), yet it exited"
    );
    let r = admin(&proxy, "GET", "/readyz");
    assert_eq!(r.status, 503, "/readyz while draining: {}", r.text());
    let again = admin(&proxy, "GET", "/healthz");
    assert_eq!(again.status, 503, "/healthz stays 503 for the whole drain");

    gate.open();
    let r = held.read_response().expect("the held request completes");
    assert_eq!((r.status, r.text().as_str()), (200, "released"));
    let st = proxy.wait_exit(ms(5000)).expect("exit once drained");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn readyz_is_200_once_ready_and_head_gets_headers_only() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--shards", "2"]);
    // `Proxy::start` returned after `ready: 2 shards`.
    let r = admin(&proxy, "GET", "/readyz");
    assert_eq!(r.status, 200, "/readyz after `ready:`: {}", r.text());
    assert!(r.head.has_token("connection", "close"));
    for path in ["/readyz", "/healthz", "/metrics"] {
        let head = admin(&proxy, "HEAD", path);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} sent a body");
        let len: usize = head
            .header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("HEAD {path}: no Content-Length"));
        assert!(len > 0, "HEAD {path}: the Content-Length of the GET body");
    }
}

/// (family name, TYPE) for every family the stats catalogue and the renderer declare.
fn declared_families() -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (call, kind) in [
        ("counter(", "counter"),
        ("gauge(", "gauge"),
        ("histogram(", "histogram"),
        ("quantiles(", "gauge"),
    ] {
        for (at, _) in FAMILIES_RS.match_indices(call) {
            let rest = FAMILIES_RS[at + call.len()..].trim_start();
            if let Some(name) = rest.strip_prefix("\"shardgate_") {
                let end = name.find('"').unwrap();
                out.push((format!("shardgate_{}", &name[..end]), kind));
            }
        }
    }
    for (at, _) in RENDER_RS.match_indices("w.family(\"") {
        let rest = &RENDER_RS[at + "w.family(\"".len()..];
        let name = &rest[..rest.find('"').unwrap()];
        let kind = rest[name.len()..].split('"').nth(2).unwrap();
        let kind = ["counter", "gauge", "histogram"]
            .into_iter()
            .find(|k| *k == kind)
            .unwrap();
        out.push((name.to_string(), kind));
    }
    out
}

/// A family declared `Value::Sparse` in families.rs: samples only for label values counted.
fn sparse(name: &str) -> bool {
    let Some(at) = FAMILIES_RS.find(&format!("\"{name}\"")) else {
        return false;
    };
    let rest = &FAMILIES_RS[at..];
    let end = rest.find("\n        ),").unwrap_or(rest.len());
    rest[..end].contains("Value::Sparse(")
}

/// The TLS listener families: `(name, kind)` as `src/stats/listener_tls.rs` declares them.
fn declared_tls_families() -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (call, kind) in [("counter(", "counter"), ("histograms(", "histogram")] {
        for (at, _) in LISTENER_TLS_RS.match_indices(call) {
            let rest = LISTENER_TLS_RS[at + call.len()..].trim_start();
            if let Some(name) = rest.strip_prefix("\"shardgate_") {
                let end = name.find('"').unwrap();
                out.push((format!("shardgate_{}", &name[..end]), kind));
            }
        }
    }
    out
}

#[test]
fn metrics_are_prometheus_text_with_every_declared_family() {
    let declared = declared_families();
    assert!(
        declared.len() >= 25,
        "reading the catalogue found only {declared:?}"
    );
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--shards", "2"]);
    assert_eq!(fetch(&proxy, "/one").status, 200);

    let r = admin(&proxy, "GET", "/metrics");
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("text/plain; version=0.0.4"),
        "Content-Type {ct:?}"
    );
    let m = Metrics::parse(&r.text())
        .unwrap_or_else(|e| panic!("not valid Prometheus 0.0.4 text: {e}\n{}", r.text()));
    let mut missing = Vec::new();
    for (name, kind) in &declared {
        match m.families.get(name) {
            None => missing.push(format!("{name}: no HELP/TYPE")),
            Some((help, got)) => {
                if got != kind {
                    missing.push(format!("{name}: TYPE {got}, declared {kind}"));
                }
                if help.trim().is_empty() {
                    missing.push(format!("{name}: empty HELP"));
                }
                let suffixes: &[&str] = if *kind == "histogram" {
                    &["_bucket", "_sum", "_count"]
                } else if sparse(name) {
                    // Samples only for the label values counted (grpc_status): none yet.
                    &[]
                } else {
                    &[""]
                };
                for s in suffixes {
                    if m.select(&format!("{name}{s}"), &[]).is_empty() {
                        missing.push(format!("{name}{s}: no sample after traffic"));
                    }
                }
            }
        }
    }
    let tls = declared_tls_families();
    assert_eq!(tls.len(), 3, "reading listener_tls.rs found {tls:?}");
    for (name, kind) in &tls {
        match m.families.get(name) {
            None => missing.push(format!("{name}: no HELP/TYPE")),
            Some((_, got)) if got != kind => {
                missing.push(format!("{name}: TYPE {got}, declared {kind}"))
            }
            Some(_) => {}
        }
    }
    assert!(missing.is_empty(), "families:\n{}", missing.join("\n"));
    let undeclared: Vec<&String> = m
        .families
        .keys()
        .filter(|f| !declared.iter().chain(&tls).any(|(d, _)| d == *f))
        .collect();
    assert!(
        undeclared.is_empty(),
        "families published but not in the catalogue: {undeclared:?}"
    );

    // Histograms: cumulative buckets, +Inf equal to _count, one series per route/endpoint.
    for (name, _) in declared.iter().filter(|(_, k)| *k == "histogram") {
        let counts = m.select(&format!("{name}_count"), &[]);
        for count in counts {
            let mut series: Vec<(&str, f64)> = m
                .select(&format!("{name}_bucket"), &[])
                .into_iter()
                .filter(|b| count.labels.iter().all(|(k, v)| b.labels.get(k) == Some(v)))
                .map(|b| (b.labels["le"].as_str(), b.value))
                .collect();
            assert!(
                !series.is_empty(),
                "{name}: no buckets for {:?}",
                count.labels
            );
            let inf = series.pop().unwrap();
            assert_eq!(inf.0, "+Inf", "{name}: the last bucket is +Inf");
            assert_eq!(inf.1, count.value, "{name}: +Inf bucket = _count");
            let mut prev = (0.0f64, 0.0f64);
            for (le, v) in series {
                let le: f64 = le.parse().unwrap();
                assert!(le > prev.0 && v >= prev.1, "{name}: buckets not cumulative");
                assert!(v <= inf.1, "{name}: a bucket above +Inf");
                prev = (le, v);
            }
        }
    }
}

#[test]
fn metrics_counters_follow_the_traffic() {
    // One route over three endpoints, one of which answers 404: both status classes flow
    // through the route, and each endpoint's counters can be held against what it received.
    let (ok1, ok2) = (Upstream::fixed("page"), Upstream::fixed("page"));
    let nf = Upstream::start(|p| p.serve(|_| response(404, &[], b"no such page")));
    let ups = [("2xx", &ok1), ("2xx", &ok2), ("4xx", &nf)];
    let file = temp_file(
        "metrics",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n\n\
             [[clusters]]\nname = \"web\"\nendpoints = [\"{}\", \"{}\", \"{}\"]\n\n\
             [[routes]]\nname = \"pages\"\ncluster = \"web\"\n",
            ok1.addr, ok2.addr, nf.addr
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "2"]);
    let before = scrape(&proxy);

    // Three keep-alive clients, one after the other, 4 requests each.
    let mut statuses = Vec::new();
    for c in 0..3 {
        let mut conn = proxy.connect();
        for i in 0..4 {
            statuses.push(conn.exchange(&get(&format!("/pages/{c}-{i}"))).status);
        }
    }
    let sent = |status: u16| statuses.iter().filter(|s| **s == status).count() as f64;
    assert_eq!(sent(200) + sent(404), 12.0, "statuses {statuses:?}");

    let delta = |after: &Metrics, name: &str, labels: &[(&str, &str)]| {
        after.sum(name, labels) - before.sum(name, labels)
    };
    let after = scrape_until(
        &proxy,
        ms(3000),
        "12 counted requests",
        "shardgate_route_requests_total",
        |m| delta(m, "shardgate_route_requests_total", &[]) >= 12.0,
    );
    let route = |class: &str| {
        delta(
            &after,
            "shardgate_route_requests_total",
            &[("route", "pages"), ("class", class)],
        )
    };
    assert_eq!(route("2xx"), sent(200), "route pages, class 2xx");
    assert_eq!(route("4xx"), sent(404), "route pages, class 4xx");
    for class in ["1xx", "3xx", "5xx"] {
        assert_eq!(route(class), 0.0, "route pages, class {class}");
    }

    // Per endpoint: what each upstream really received.
    let (mut connects_total, mut reuses_total) = (0.0, 0.0);
    for (class, up) in ups {
        let e = up.addr.to_string();
        let ep = [("cluster", "web"), ("endpoint", e.as_str())];
        let (received, accepted) = (up.request_count() as f64, up.accepted() as f64);
        let by_class = [ep[0], ep[1], ("class", class)];
        assert_eq!(
            delta(&after, "shardgate_upstream_requests_total", &by_class),
            received,
            "{e} {class}: counted vs received"
        );
        assert_eq!(
            delta(&after, "shardgate_upstream_requests_total", &ep),
            received,
            "{e}: no response counted in another class"
        );
        let connects = delta(&after, "shardgate_upstream_connects_total", &ep);
        let reuses = delta(&after, "shardgate_upstream_reuses_total", &ep);
        assert_eq!(
            connects, accepted,
            "{e}: connects vs connections it accepted"
        );
        assert_eq!(
            reuses,
            received - accepted,
            "{e}: reuses = requests on an already open connection"
        );
        assert_eq!(
            delta(&after, "shardgate_upstream_duration_seconds_count", &ep),
            received,
            "{e}: upstream latency count"
        );
        connects_total += connects;
        reuses_total += reuses;
    }
    // 4 sequential requests over 3 endpoints on one shard reuse at least one connection.
    assert!(
        reuses_total >= 1.0 && connects_total >= 3.0,
        "{connects_total} connects, {reuses_total} reuses"
    );

    // The route's latency histogram.
    let hist = |suffix: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("route", "pages")];
        labels.extend_from_slice(extra);
        delta(
            &after,
            &format!("shardgate_request_duration_seconds{suffix}"),
            &labels,
        )
    };
    assert_eq!(hist("_count", &[]), 12.0, "request latency count");
    assert_eq!(
        hist("_bucket", &[("le", "+Inf")]),
        12.0,
        "request latency +Inf bucket"
    );
    assert!(hist("_sum", &[]) > 0.0, "request latency sum");

    // Per shard: accepted connections and CPU time.
    assert_eq!(
        delta(&after, "shardgate_downstream_accepted_total", &[]),
        3.0,
        "3 client connections were accepted"
    );
    assert_eq!(
        after
            .select("shardgate_downstream_accepted_total", &[])
            .len(),
        2,
        "one accepted counter per shard"
    );
    let cpu = delta(&after, "shardgate_shard_cpu_seconds_total", &[]);
    assert!(
        cpu > 0.0 && cpu < 60.0,
        "shard CPU seconds grew by {cpu} over 12 requests"
    );
}

/// Every listener address in a parsed config: `listen = [...]` and `[[listeners]] addr`.
fn config_listeners(t: &toml::Table) -> Vec<String> {
    let mut out: Vec<String> = t
        .get("listen")
        .and_then(|l| l.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(ls) = t.get("listeners").and_then(|l| l.as_array()) {
        out.extend(
            ls.iter()
                .filter_map(|l| l.get("addr").and_then(|a| a.as_str()).map(str::to_string)),
        );
    }
    out
}

fn array_of_tables<'t>(t: &'t toml::Table, key: &str) -> Vec<&'t toml::Table> {
    t.get(key)
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_table()).collect())
        .unwrap_or_default()
}

#[test]
fn config_is_toml_with_the_running_listeners_and_clusters_and_no_secrets() {
    const SECRET: &str = "s3cr3t-T0ken-4f9a";
    let up = Upstream::echo_head();
    let addr = free_addr();
    let file = temp_file(
        "config",
        &format!(
            "listen = [\"{addr}\"]\n\n[[clusters]]\nname = \"api\"\nendpoints = [\"{}\"]\n\n\
             [[routes]]\nname = \"with-secret\"\ncluster = \"api\"\n\
             request_headers_add = {{ \"authorization\" = \"Bearer {SECRET}\", \"x-team\" = \"blue\" }}\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&["--config", file.path()]);
    assert_eq!(proxy.addr, addr);
    let r = fetch(&proxy, "/x");
    assert_eq!(r.status, 200);
    let seen = up.seen();
    assert_eq!(
        seen.requests[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str()),
        "the configured header is in use (only its display is redacted)"
    );

    let c = admin(&proxy, "GET", "/config");
    assert_eq!(c.status, 200);
    let text = c.text();
    assert!(
        !text.contains(SECRET),
        "/config shows the authorization value:\n{text}"
    );
    let t: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("/config is not TOML: {e}\n{text}"));
    let listeners = config_listeners(&t);
    assert!(
        listeners.contains(&addr.to_string()),
        "running listener {addr} not in {listeners:?}"
    );
    let clusters = array_of_tables(&t, "clusters");
    let api = clusters
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some("api"))
        .unwrap_or_else(|| panic!("no cluster `api` in:\n{text}"));
    let eps: Vec<&str> = api["endpoints"]
        .as_array()
        .expect("endpoints array")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    let up_addr = up.addr.to_string();
    assert!(
        eps.len() == 1 && eps[0].split_whitespace().next() == Some(up_addr.as_str()),
        "cluster api endpoints {eps:?}, want {up_addr}"
    );
    let routes = array_of_tables(&t, "routes");
    let route = routes
        .iter()
        .find(|r| r.get("name").and_then(|n| n.as_str()) == Some("with-secret"))
        .unwrap_or_else(|| panic!("no route `with-secret` in:\n{text}"));
    let add = route
        .get("request_headers_add")
        .and_then(|a| a.as_table())
        .unwrap_or_else(|| panic!("route without request_headers_add:\n{text}"));
    assert_eq!(
        add.get("x-team").and_then(|v| v.as_str()),
        Some("blue"),
        "an ordinary added header is shown as configured"
    );
    let auth = add
        .get("authorization")
        .and_then(|v| v.as_str())
        .expect("the authorization header is listed, with its value redacted");
    assert!(!auth.contains(SECRET), "authorization shown as {auth:?}");
}

/// (id, core, driver) from the `shard N: core C, driver D` lines on stderr.
fn printed_shards(proxy: &Proxy) -> Vec<(u64, String, String)> {
    proxy
        .stderr_lines()
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("shard ")?;
            let (id, rest) = rest.split_once(": core ")?;
            let (core, driver) = rest.split_once(", driver ")?;
            // `io_uring (defer-taskrun)`: the driver, then the ring's setup mode.
            let driver = driver.split(' ').next()?;
            Some((id.parse().ok()?, core.to_string(), driver.to_string()))
        })
        .collect()
}

fn shards_json(proxy: &Proxy) -> Vec<serde_json::Value> {
    let r = admin(proxy, "GET", "/shards");
    assert_eq!(r.status, 200, "/shards: {}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("/shards is not JSON ({e}): {}", r.text()));
    v.as_array()
        .unwrap_or_else(|| panic!("/shards is not a JSON array: {v}"))
        .clone()
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v.get(key)
        .and_then(|n| n.as_u64())
        .unwrap_or_else(|| panic!("/shards entry without a number `{key}`: {v}"))
}

/// Checks `/shards` against the shards the proxy printed at start; returns the entries.
fn check_shards(proxy: &Proxy, count: usize, want_driver: Option<&str>) -> Vec<serde_json::Value> {
    let shards = shards_json(proxy);
    // stderr is read by its own thread: `ready:` on stdout does not mean these lines are in yet.
    for id in 0..count {
        let line = format!("shard {id}: core ");
        let _ = proxy.stderr.wait(ms(2000), |l| l.starts_with(&line));
    }
    let printed = printed_shards(proxy);
    assert_eq!(shards.len(), count, "/shards: {shards:?}");
    assert_eq!(printed.len(), count, "stderr: {:?}", proxy.stderr_lines());
    let ids: BTreeSet<u64> = shards.iter().map(|s| num(s, "id")).collect();
    assert_eq!(ids, (0..count as u64).collect(), "shard ids");
    for s in &shards {
        let id = num(s, "id");
        let (_, core, driver) = printed.iter().find(|p| p.0 == id).unwrap();
        let json_core = match &s["core"] {
            serde_json::Value::Null => "none".to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            other => panic!("shard {id}: core {other}"),
        };
        assert_eq!(&json_core, core, "shard {id}: core in /shards vs stderr");
        let d = s["driver"].as_str().unwrap_or("");
        assert!(d == "io_uring" || d == "epoll", "shard {id}: driver {d:?}");
        assert_eq!(d, driver, "shard {id}: driver in /shards vs stderr");
        if let Some(want) = want_driver {
            assert_eq!(d, want, "shard {id}: driver");
        }
        num(s, "connections");
        num(s, "requests_in_flight");
    }
    shards
}

/// The driver the environment forces, if it does.
fn forced_driver() -> Option<&'static str> {
    std::env::var("MONOIO_FORCE_LEGACY_DRIVER")
        .ok()
        .filter(|v| !v.is_empty() && v != "0")
        .map(|_| "epoll")
}

fn load(proxy: &Proxy) -> (u64, u64) {
    let s = shards_json(proxy);
    (
        s.iter().map(|s| num(s, "connections")).sum(),
        s.iter().map(|s| num(s, "requests_in_flight")).sum(),
    )
}

fn load_until(proxy: &Proxy, want: (u64, u64), what: &str) {
    let deadline = Instant::now() + ms(3000);
    loop {
        let got = load(proxy);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/shards {what}: (connections, requests_in_flight) = {got:?}, want {want:?}"
        );
        std::thread::sleep(ms(20));
    }
}

#[test]
fn shards_lists_each_shard_with_core_driver_and_load() {
    let gate = Gate::default();
    let up = gated(&gate);
    let proxy = Proxy::to(&[up.addr], &["--shards", "2"]);
    check_shards(&proxy, 2, forced_driver());
    load_until(&proxy, (0, 0), "at rest");

    gate.open();
    let mut idle = proxy.connect();
    assert_eq!(idle.exchange(&get("/first")).status, 200);
    gate.close(); // for the request held in flight
    let mut busy = proxy.connect();
    busy.send(&get("/held")).unwrap();
    up.wait_for("the held request", ms(3000), |s| s.requests.len() == 2);
    load_until(&proxy, (2, 1), "with one idle and one busy connection");
    let m = scrape(&proxy);
    assert_eq!(
        m.sum("shardgate_requests_in_flight", &[]),
        1.0,
        "/metrics agrees on the request in flight"
    );

    gate.open();
    assert_eq!(busy.read_response().expect("released").status, 200);
    load_until(&proxy, (2, 0), "after the response");
    drop((idle, busy));
    load_until(&proxy, (0, 0), "after the clients closed");
}

#[test]
fn shards_report_epoll_and_no_core_when_forced_and_unpinned() {
    let up = Upstream::fixed("ok");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.addr.to_string(),
        "--shards",
        "2",
        "--no-pin",
    ];
    let proxy = Proxy::start_with_env(&args, &[("MONOIO_FORCE_LEGACY_DRIVER", Some("1"))]);
    let shards = check_shards(&proxy, 2, Some("epoll"));
    for s in &shards {
        assert!(s["core"].is_null(), "--no-pin: core {}", s["core"]);
    }
    assert_eq!(fetch(&proxy, "/").status, 200, "the epoll shards serve");
}

#[test]
fn post_drain_drains_like_sigterm() {
    let gate = Gate::default();
    let up = gated(&gate);
    let mut proxy = Proxy::to(&[up.addr], &["--shards", "2"]);
    let mut held = proxy.connect();
    held.send(&get("/held")).unwrap();
    up.wait_for("the request in flight", ms(3000), |s| s.requests.len() == 1);

    let r = admin(&proxy, "POST", "/drain");
    assert!(
        (200..300).contains(&r.status),
        "POST /drain: {} {}",
        r.status,
        r.text()
    );
    assert_eq!(admin(&proxy, "GET", "/healthz").status, 503);
    assert!(
        refused_within(proxy.addr, ms(2000)),
        "new connections are still accepted after POST /drain"
    );
    assert!(
        proxy.wait_exit(ms(0)).is_none(),
        "exited with a request in flight"
    );

    gate.open();
    let resp = held.read_response().expect("the held request completes");
    assert_eq!(resp.status, 200);
    assert!(
        resp.head.has_token("connection", "close"),
        "a response during the drain says Connection: close"
    );
    let st = proxy.wait_exit(ms(5000)).expect("exit once drained");
    assert_eq!(st.code(), Some(0));
    assert!(
        proxy.stderr.wait(ms(1000), |l| l == "drained").is_some(),
        "no `drained` line: {:?}",
        proxy.stderr_lines()
    );
}

fn versioned(upstream: SocketAddr, version: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{upstream}\"]\n\n[[routes]]\nname = \"all\"\n\
         response_headers_add = {{ \"x-version\" = \"{version}\" }}\n"
    )
}

fn version(proxy: &Proxy) -> Option<String> {
    let r = fetch(proxy, "/");
    assert_eq!(r.status, 200);
    r.header("x-version").map(str::to_string)
}

#[test]
fn post_reload_applies_a_changed_file() {
    let up = Upstream::fixed("ok");
    let file = temp_file("admin-reload", &versioned(up.addr, "one"));
    let proxy = Proxy::start(&["--config", file.path()]);
    assert_eq!(version(&proxy).as_deref(), Some("one"));

    std::fs::write(&file.0, versioned(up.addr, "two")).unwrap();
    let r = admin(&proxy, "POST", "/reload");
    assert_eq!(r.status, 200, "POST /reload: {}", r.text());
    assert_eq!(
        version(&proxy).as_deref(),
        Some("two"),
        "a request after the 200 uses the new config"
    );
    let line = proxy
        .wait_stderr(ms(2000), "reloaded ")
        .expect("a `reloaded` line on stderr");
    assert!(
        line.starts_with(&format!("reloaded {}: 1 routes, 1 clusters", file.path())),
        "{line}"
    );
    let c = admin(&proxy, "GET", "/config").text();
    assert!(
        c.contains("\"two\"") && !c.contains("\"one\""),
        "/config shows the reloaded file:\n{c}"
    );
}

#[test]
fn post_reload_of_a_bad_file_is_400_with_its_location_and_the_old_config_serves() {
    let up = Upstream::fixed("ok");
    let file = temp_file("admin-reload-bad", &versioned(up.addr, "one"));
    let proxy = Proxy::start(&["--config", file.path()]);
    std::fs::write(
        &file.0,
        "listen = [\"127.0.0.1:0\"]\n[timeouts]\nconnect = \"soon\"\n",
    )
    .unwrap();
    let r = admin(&proxy, "POST", "/reload");
    assert_eq!(r.status, 400, "POST /reload of a bad file: {}", r.text());
    let body = r.text();
    assert!(
        body.contains(&format!("{}:3:", file.path())) && body.contains("timeouts.connect"),
        "the 400 names file:line and field: {body:?}"
    );
    let line = proxy
        .wait_stderr(
            ms(2000),
            "reload failed, still serving the previous config: ",
        )
        .expect("a `reload failed` line on stderr");
    assert!(line.contains(&format!("{}:3:", file.path())), "{line}");
    assert_eq!(version(&proxy).as_deref(), Some("one"));
    assert!(admin(&proxy, "GET", "/config").text().contains("\"one\""));
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let up = Upstream::fixed("ok");
    let file = temp_file("admin-405", &versioned(up.addr, "one"));
    let mut proxy = Proxy::start(&["--config", file.path()]);
    // `/` is the status page (tests/status_page.rs).
    for path in [
        "/index.html",
        "/nope",
        "/metrics/extra",
        "/healthz/",
        "/HEALTHZ",
    ] {
        let r = admin(&proxy, "GET", path);
        assert_eq!(r.status, 404, "GET {path}: {}", r.text());
    }
    // A changed file that a GET /reload must not apply.
    std::fs::write(&file.0, versioned(up.addr, "two")).unwrap();
    for (method, path, allow) in [
        ("POST", "/healthz", "GET"),
        ("DELETE", "/readyz", "GET"),
        ("POST", "/metrics", "GET"),
        ("PUT", "/config", "GET"),
        ("POST", "/shards", "GET"),
        ("POST", "/stats.json", "GET"),
        ("POST", "/", "GET"),
        ("GET", "/drain", "POST"),
        ("GET", "/reload", "POST"),
        ("PUT", "/reload", "POST"),
    ] {
        let r = admin(&proxy, method, path);
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        let allowed = r.head.list("allow");
        assert!(
            allowed.iter().any(|a| a == allow) && !allowed.iter().any(|a| a == method),
            "{method} {path}: Allow {allowed:?}, want {allow}"
        );
    }
    assert_eq!(
        admin(&proxy, "GET", "/healthz").status,
        200,
        "GET /drain drained"
    );
    assert_eq!(
        version(&proxy).as_deref(),
        Some("one"),
        "GET /reload reloaded"
    );
    assert!(proxy.wait_exit(ms(0)).is_none());
}

#[test]
fn admin_off_prints_no_admin_line_and_opens_no_admin_socket() {
    let up = Upstream::fixed("ok");

    // The check's positive control: with an admin listener, /proc shows it.
    let with = Proxy::to(&[up.addr], &["--shards", "1"]);
    let admin_addr = with.admin.expect("`admin listening on` by default");
    let open = sys::listening_addrs(with.pid());
    assert!(
        open.contains(&admin_addr) && open.contains(&with.addr),
        "listening sockets {open:?}, want the admin {admin_addr} and {}",
        with.addr
    );
    drop(with);

    let flag = Proxy::to(&[up.addr], &["--shards", "1", "--admin", "off"]);
    let file = temp_file(
        "admin-off",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\nadmin = \"off\"\n",
            up.addr
        ),
    );
    // No --admin flag at all: the file's setting alone.
    let config = Proxy::start_as_is(&["--config", file.path(), "--shards", "1"]);
    for (how, proxy) in [("--admin off", &flag), ("admin = \"off\"", &config)] {
        assert_eq!(proxy.admin, None, "{how}");
        let lines = proxy.stdout.all();
        assert!(
            !lines.iter().any(|l| l.contains("admin")),
            "{how}: stdout mentions an admin listener: {lines:?}"
        );
        let open = sys::listening_addrs(proxy.pid());
        assert_eq!(open, vec![proxy.addr], "{how}: listening sockets");
        assert_eq!(fetch(proxy, "/").status, 200, "{how}: the proxy serves");
    }
}

#[test]
fn metrics_forget_endpoints_and_routes_a_reload_removed() {
    let (a, b) = (Upstream::fixed("a"), Upstream::fixed("b"));
    let conf = |eps: &[SocketAddr], route: &str| {
        let list: Vec<String> = eps.iter().map(|e| format!("\"{e}\"")).collect();
        format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [{}]\n[shards]\ncount = 1\n\
             [[routes]]\nname = \"{route}\"\n",
            list.join(", ")
        )
    };
    let file = temp_file("admin-forget", &conf(&[a.addr, b.addr], "old"));
    let proxy = Proxy::start(&["--config", file.path()]);
    for _ in 0..4 {
        assert_eq!(proxy.connect().exchange(&get("/")).status, 200);
    }
    let m = scrape(&proxy);
    let b_name = b.addr.to_string();
    assert!(!m
        .select(
            "shardgate_upstream_connects_total",
            &[("endpoint", &b_name)]
        )
        .is_empty());
    assert!(!m
        .select("shardgate_route_requests_total", &[("route", "old")])
        .is_empty());

    std::fs::write(&file.0, conf(&[a.addr], "new")).unwrap();
    assert_eq!(admin(&proxy, "POST", "/reload").status, 200);
    assert_eq!(proxy.connect().exchange(&get("/")).status, 200);
    let m = scrape(&proxy);
    assert!(
        m.select(
            "shardgate_upstream_connects_total",
            &[("endpoint", &b_name)]
        )
        .is_empty(),
        "the removed endpoint is no longer exported"
    );
    assert!(m
        .select("shardgate_route_requests_total", &[("route", "old")])
        .is_empty());
    assert!(!m
        .select("shardgate_route_requests_total", &[("route", "new")])
        .is_empty());
}
