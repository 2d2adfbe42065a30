//! The admin listener's status surface (coordinator/admin/stats_json.rs and the page beside it):
//! `GET /stats.json` carries every documented field (process, shards, clusters → endpoints,
//! routes) and its numbers follow real traffic, reloads and breakers.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::policy::*;
use support::*;

fn config(good: SocketAddr, bad: SocketAddr) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n\
         [[clusters]]\nname = \"web\"\nendpoints = [\"{good}\"]\n\n\
         [[clusters]]\nname = \"flaky\"\nendpoints = [\"{bad}\"]\nfailure_statuses = [503]\n\
         [clusters.breaker]\nfailures = 2\nopen_timeout = \"60s\"\n\n\
         [[routes]]\nname = \"limited\"\npath_prefix = \"/limited\"\ncluster = \"web\"\n\
         rate_limit = {{ rate = \"1/m\", burst = 1 }}\n\n\
         [[routes]]\nname = \"flaky\"\npath_prefix = \"/flaky\"\ncluster = \"flaky\"\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/\"\ncluster = \"web\"\n"
    )
}

fn stats(proxy: &Proxy) -> Value {
    let r = admin(proxy, "GET", "/stats.json");
    assert_eq!(r.status, 200, "/stats.json: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_str(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// Asserts `v` is an object with exactly `keys` (so a field added here must be documented too).
fn keys(v: &Value, keys: &[&str], what: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"));
    let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut want = keys.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{what}: {v}");
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    let items = list.as_array().expect("a list");
    let found = items.iter().find(|x| x["name"] == name);
    found.unwrap_or_else(|| panic!("no {name:?} in {list}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Every field of the documented shape, with the right type.
fn check_shape(v: &Value) {
    keys(
        v,
        &["schema", "process", "shards", "clusters", "routes"],
        "document",
    );
    assert_eq!(v["schema"], 1);
    let p = &v["process"];
    let pk = [
        "version",
        "uptime_seconds",
        "config_version",
        "last_reload",
        "draining",
        "shards",
        "shards_ready",
    ];
    keys(p, &pk, "process");
    assert_eq!(p["version"], env!("CARGO_PKG_VERSION"));
    assert!(p["uptime_seconds"].as_f64().is_some());
    let shard_keys = [
        "id",
        "core",
        "driver",
        "ready",
        "reported",
        "draining",
        "connections",
        "accepted",
        "requests_in_flight",
        "requests_total",
        "cpu_seconds",
        "log_dropped",
    ];
    for s in v["shards"].as_array().unwrap() {
        keys(s, &shard_keys, "shard");
        let conn_keys = ["open", "active", "idle", "asleep", "tunnel"];
        keys(&s["connections"], &conn_keys, "shard connections");
        assert_eq!(s["reported"], true, "{s}");
        assert!(s["cpu_seconds"].as_f64().is_some(), "{s}");
        let driver = s["driver"].as_str().unwrap();
        assert!(driver == "io_uring" || driver == "epoll", "{s}");
    }
    for c in v["clusters"].as_array().unwrap() {
        keys(c, &["name", "endpoints"], "cluster");
        for e in c["endpoints"].as_array().unwrap() {
            let ek = [
                "name",
                "healthy",
                "healthy_shards",
                "shards",
                "breaker",
                "breaker_shards",
                "requests",
                "requests_total",
                "failures",
                "latency_ms",
                "pool",
                "connects",
                "reuses",
            ];
            keys(e, &ek, "endpoint");
            keys(
                &e["breaker_shards"],
                &["closed", "open", "half_open"],
                "breaker_shards",
            );
            keys(&e["requests"], &CLASSES, "endpoint requests");
            keys(&e["latency_ms"], &["p50", "p99"], "endpoint latency");
            keys(&e["pool"], &["busy", "idle", "waits", "overflows"], "pool");
        }
    }
    for r in v["routes"].as_array().unwrap() {
        let rk = [
            "name",
            "requests",
            "requests_total",
            "rate_limited",
            "retries",
            "retry_budget_exhausted",
            "latency_ms",
        ];
        keys(r, &rk, "route");
        keys(&r["requests"], &CLASSES, "route requests");
        keys(&r["latency_ms"], &["p50", "p90", "p99"], "route latency");
    }
}

#[test]
fn stats_json_has_every_field_and_its_numbers_follow_traffic() {
    let good = Backend::start("good");
    let bad = Backend::with_status("bad", 503);
    let file = temp_file("status-page", &config(good.addr, bad.addr));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "2"]);

    let before = stats(&proxy);
    check_shape(&before);
    let p = &before["process"];
    assert_eq!(
        (p["config_version"].clone(), p["draining"].clone()),
        (1.into(), false.into())
    );
    assert!(p["last_reload"].is_null());
    assert_eq!((n(&p["shards"]), n(&p["shards_ready"])), (2, 2));
    assert_eq!(before["shards"].as_array().unwrap().len(), 2);
    let api = named(&before["routes"], "api");
    assert_eq!(n(&api["requests_total"]), 0);
    assert!(
        api["latency_ms"]["p99"].is_null(),
        "no latency before traffic"
    );
    let web = named(
        &named(&before["clusters"], "web")["endpoints"],
        &good.addr.to_string(),
    );
    assert_eq!(
        (web["healthy"].clone(), web["breaker"].clone()),
        (true.into(), "closed".into())
    );

    // Traffic: 6 proxied 200s, 2 failures that open the breaker (then fast 503s), 3 requests on
    // a route allowing 1 (2 rate-limited).
    for i in 0..6 {
        let r = proxy.connect().exchange(&get(&format!("/a/{i}")));
        assert_eq!(r.status, 200);
    }
    let mut flaky = proxy.connect(); // one connection: one shard, whose breaker counts both
    for _ in 0..3 {
        assert_eq!(flaky.exchange(&get("/flaky")).status, 503);
    }
    let mut c = proxy.connect(); // limits are per shard: one connection, one shard
    let limited: Vec<u16> = (0..3)
        .map(|_| c.exchange(&get("/limited")).status)
        .collect();
    assert_eq!(
        limited.iter().filter(|&&s| s == 429).count(),
        2,
        "{limited:?}"
    );
    assert_eq!(
        good.hits(),
        7,
        "6 api requests and 1 limited one reached the upstream"
    );

    let after = stats(&proxy);
    check_shape(&after);
    let api = named(&after["routes"], "api");
    assert_eq!(n(&api["requests_total"]), 6);
    assert_eq!(n(&api["requests"]["2xx"]), 6);
    for q in ["p50", "p90", "p99"] {
        assert!(api["latency_ms"][q].as_f64().unwrap() > 0.0, "{api}");
    }
    let flaky = named(&after["routes"], "flaky");
    assert_eq!(n(&flaky["requests"]["5xx"]), 3);
    let lim = named(&after["routes"], "limited");
    assert_eq!(
        (n(&lim["rate_limited"]), n(&lim["requests"]["4xx"])),
        (2, 2)
    );

    let shard_total: u64 = (after["shards"].as_array().unwrap().iter())
        .map(|s| n(&s["requests_total"]))
        .sum();
    assert_eq!(shard_total, 12, "every response counted on one shard");
    let accepted: u64 = (after["shards"].as_array().unwrap().iter())
        .map(|s| n(&s["accepted"]))
        .sum();
    assert_eq!(
        accepted, 8,
        "6 api, 1 flaky and 1 limited connections accepted"
    );

    let web = named(
        &named(&after["clusters"], "web")["endpoints"],
        &good.addr.to_string(),
    );
    assert_eq!(n(&web["requests"]["2xx"]), 7);
    assert!(n(&web["connects"]) >= 1);
    assert!(web["latency_ms"]["p99"].as_f64().unwrap() > 0.0, "{web}");
    let b = named(
        &named(&after["clusters"], "flaky")["endpoints"],
        &bad.addr.to_string(),
    );
    assert_eq!(b["breaker"], "open", "{b}");
    assert!(n(&b["breaker_shards"]["open"]) >= 1, "{b}");
    assert_eq!(
        n(&b["requests"]["5xx"]),
        2,
        "the third request never reached it: {b}"
    );
    assert_eq!(bad.hits(), 2);
    let up = |v: &Value| v["process"]["uptime_seconds"].as_f64().unwrap();
    assert!(up(&after) > up(&before));
}

#[test]
fn stats_json_reports_config_versions_and_the_last_reload_error() {
    let good = Backend::start("good");
    let bad = Backend::start("other");
    let text = config(good.addr, bad.addr);
    let file = temp_file("status-reload", &text);
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    assert_eq!(admin(&proxy, "POST", "/reload").status, 200);
    let v = stats(&proxy);
    assert_eq!(v["process"]["config_version"], 2);
    let last = &v["process"]["last_reload"];
    assert_eq!(
        (last["ok"].clone(), last["error"].clone()),
        (true.into(), Value::Null)
    );
    let at = last["at_unix"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - at).abs() < 60.0, "reload time {at}, now {now}");

    std::fs::write(file.path(), format!("{text}\nbogus_key = 1\n")).unwrap();
    let r = admin(&proxy, "POST", "/reload");
    assert_eq!(r.status, 400, "{}", r.text());
    let v = stats(&proxy);
    assert_eq!(
        v["process"]["config_version"], 2,
        "a failed reload keeps the version"
    );
    let last = &v["process"]["last_reload"];
    assert_eq!(last["ok"], false);
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("bogus_key"), "{error}");
    assert!(
        r.text().contains(error),
        "the same error as the reload's answer: {}",
        r.text()
    );

    // SIGHUP reloads are noted too.
    std::fs::write(file.path(), &text).unwrap();
    support::sys::signal(proxy.pid(), libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = stats(&proxy);
        if v["process"]["config_version"] == 3 {
            assert_eq!(v["process"]["last_reload"]["ok"], true);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP reload not seen: {v}"
        );
        std::thread::sleep(ms(20));
    }
}

#[test]
fn the_status_page_is_self_contained_html_polling_stats_json() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let r = admin(&proxy, "GET", "/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(
        page.contains("\"/stats.json\""),
        "the page polls /stats.json"
    );
    for external in ["http://", "https://"] {
        assert!(
            !page.contains(external),
            "the page refers to an {external} URL"
        );
    }
    assert!(page.contains("admin API unreachable"));
    assert_eq!(
        up.request_count(),
        0,
        "the page is the admin listener's, not proxied"
    );
}

/// An admin request with `Authorization: <auth>` (or none).
fn admin_with(proxy: &Proxy, method: &str, path: &str, auth: Option<&str>) -> Response {
    let mut c = Conn::connect(proxy.admin.expect("an admin listener"));
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let req = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Connection: close\r\n\r\n");
    c.send(req.as_bytes()).unwrap();
    c.read_response_to(method).unwrap()
}

#[test]
fn admin_token_guards_every_endpoint_but_the_page() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &["--shards", "1", "--admin-token", "s3cr3t-T0k"],
    );
    let paths = [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/config"),
        ("GET", "/shards"),
        ("GET", "/stats.json"),
        ("HEAD", "/stats.json"),
        ("POST", "/reload"),
        ("POST", "/drain"),
        ("GET", "/nope"),
    ];
    for (method, path) in paths {
        for auth in [
            None,
            Some("Bearer s3cr3t-T0"),
            Some("Bearer s3cr3t-T0kk"),
            Some("Basic s3cr3t-T0k"),
        ] {
            let r = admin_with(&proxy, method, path, auth);
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.text());
            let challenge = r.header("www-authenticate").unwrap_or("");
            assert!(
                challenge.starts_with("Bearer"),
                "{method} {path}: {challenge:?}"
            );
        }
    }
    // The refused POST /drain did nothing: the proxy still serves and is not draining.
    assert_eq!(proxy.connect().exchange(&get("/x")).status, 200);
    let ok = Some("Bearer s3cr3t-T0k");
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/config",
        "/shards",
        "/stats.json",
    ] {
        let r = admin_with(&proxy, "GET", path, ok);
        assert_eq!(r.status, 200, "GET {path} with the token: {}", r.text());
    }
    let v: Value =
        serde_json::from_str(&admin_with(&proxy, "GET", "/stats.json", ok).text()).unwrap();
    assert_eq!(v["process"]["draining"], false);
    assert!(
        !admin_with(&proxy, "GET", "/config", ok)
            .text()
            .contains("s3cr3t"),
        "never shown"
    );
    assert_eq!(admin_with(&proxy, "GET", "/nope", ok).status, 404);
    // The page itself needs no token (it holds no data; its script asks for the token).
    let page = admin_with(&proxy, "GET", "/", None);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("sessionStorage"));
    // POST with the token passes (this proxy has no file to reload: 400 from the coordinator).
    let r = admin_with(&proxy, "POST", "/reload", ok);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("no config file"), "{}", r.text());
}

#[test]
fn admin_token_file_is_read_and_a_bad_one_is_refused_at_start() {
    let up = Upstream::fixed("ok");
    let file = temp_file("admin-token", "from-a-file\n");
    let proxy = Proxy::to(
        &[up.addr],
        &["--shards", "1", "--admin-token-file", file.path()],
    );
    let r = admin_with(&proxy, "GET", "/stats.json", Some("Bearer from-a-file"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(admin_with(&proxy, "GET", "/stats.json", None).status, 401);

    let empty = temp_file("admin-token-empty", "\n");
    let addr = up.addr.to_string();
    let cases = [
        (
            vec!["--admin-token-file", empty.path()],
            "--admin-token-file: ",
        ),
        (
            vec!["--admin-token-file", "/nonexistent/token"],
            "--admin-token-file: cannot read /nonexistent/token",
        ),
        (
            vec!["--admin-token", "two words"],
            "--admin-token: the token may hold only visible ASCII",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["--listen", "127.0.0.1:0", "--upstream", &addr];
        args.extend(flags);
        let run = run(&args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}
