//! Hot reload (SIGHUP): a valid file is applied to new requests at once, an invalid one is
//! rejected with its error while the old config serves on, listeners a reload adds or removes are
//! opened or closed, upstream pools of unchanged endpoints stay warm, and a reload under wrk load
//! fails no request. What is derived from the config (the Host sent for HTTP/1.0 requests without
//! one, the pool sweep's pace) follows a reload.

mod support;

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::admin::{temp_path, wait_log_lines};
use support::*;

fn config(listen: &[&str], upstream: &str, route_header: &str) -> String {
    let listen: Vec<String> = listen.iter().map(|l| format!("\"{l}\"")).collect();
    format!(
        "listen = [{}]\nupstreams = [\"{upstream}\"]\n\n[[routes]]\nname = \"all\"\n\
         response_headers_add = {{ \"x-version\" = \"{route_header}\" }}\n",
        listen.join(", ")
    )
}

fn hup(proxy: &Proxy) {
    support::sys::signal(proxy.pid(), libc::SIGHUP);
}

fn version(proxy: &Proxy) -> Option<String> {
    let mut c = proxy.connect();
    let r = c.exchange(&get("/"));
    assert_eq!(r.status, 200);
    r.header("x-version").map(str::to_string)
}

#[test]
fn valid_reload_applies_to_new_requests_and_keeps_pools_warm() {
    let up = Upstream::fixed("ok");
    let file = temp_file(
        "reload",
        &config(&["127.0.0.1:0"], &up.addr.to_string(), "one"),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    assert_eq!(version(&proxy).as_deref(), Some("one"));
    let before = up.accepted();

    std::fs::write(
        &file.0,
        config(&["127.0.0.1:0"], &up.addr.to_string(), "two"),
    )
    .unwrap();
    hup(&proxy);
    proxy
        .wait_stderr(Duration::from_secs(5), "reloaded ")
        .expect("a `reloaded` line on stderr");
    assert_eq!(version(&proxy).as_deref(), Some("two"));
    assert_eq!(
        up.accepted(),
        before,
        "the unchanged endpoint's pooled connection is reused after the reload"
    );
}

#[test]
fn invalid_reload_is_rejected_and_the_old_config_serves() {
    let up = Upstream::fixed("ok");
    let file = temp_file(
        "reload-bad",
        &config(&["127.0.0.1:0"], &up.addr.to_string(), "one"),
    );
    let proxy = Proxy::start(&["--config", file.path()]);
    std::fs::write(
        &file.0,
        "listen = [\"127.0.0.1:0\"]\n[timeouts]\nconnect = \"soon\"\n",
    )
    .unwrap();
    hup(&proxy);
    let line = proxy
        .wait_stderr(Duration::from_secs(5), "reload failed")
        .expect("a `reload failed` line on stderr");
    assert!(
        line.contains(&format!("{}:3:", file.path())) && line.contains("timeouts.connect"),
        "the error names file, line and field: {line}"
    );
    assert_eq!(version(&proxy).as_deref(), Some("one"));
}

#[test]
fn reload_opens_added_and_closes_removed_listeners() {
    let up = Upstream::fixed("ok");
    let first = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let second = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (a, b) = (first.to_string(), second.to_string());
    let file = temp_file("reload-listen", &config(&[&a], &up.addr.to_string(), "one"));
    let proxy = Proxy::start(&["--config", file.path()]);
    assert_eq!(proxy.addr, first);

    std::fs::write(&file.0, config(&[&a, &b], &up.addr.to_string(), "one")).unwrap();
    hup(&proxy);
    proxy
        .stdout
        .wait(Duration::from_secs(5), |l| l == format!("listening on {b}"))
        .expect("`listening on` for the added listener");
    let mut c = Conn::connect(second);
    assert_eq!(c.exchange(&get("/")).status, 200);

    std::fs::write(&file.0, config(&[&b], &up.addr.to_string(), "one")).unwrap();
    hup(&proxy);
    proxy
        .stdout
        .wait(Duration::from_secs(5), |l| {
            l == format!("closed listener {a}")
        })
        .expect("`closed listener` for the removed one");
    let refused = (0..50).any(|_| {
        let gone = TcpStream::connect(first).is_err();
        if !gone {
            std::thread::sleep(Duration::from_millis(20));
        }
        gone
    });
    assert!(refused, "{a} still accepts connections after its removal");
    let mut c = Conn::connect(second);
    assert_eq!(c.exchange(&get("/")).status, 200);
}

/// wrk's summary: (requests, non-2xx, socket errors).
fn wrk_summary(out: &str) -> (u64, u64, u64) {
    let num = |line: &str| -> u64 {
        line.split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().unwrap())
            .sum()
    };
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let non2xx = out
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx"))
        .map_or(0, num);
    let socket = out
        .lines()
        .find(|l| l.contains("Socket errors"))
        .map_or(0, num);
    (requests, non2xx, socket)
}

#[test]
fn reloads_under_wrk_load_fail_no_request() {
    assert!(
        Command::new("wrk").arg("--version").output().is_ok(),
        "wrk is required (scripts/test.sh installs it)"
    );
    let up = Upstream::fixed("ok");
    let file = temp_file(
        "reload-load",
        &config(&["127.0.0.1:0"], &up.addr.to_string(), "0"),
    );
    let proxy = Proxy::start(&["--config", file.path()]);
    let url = format!("http://{}/", proxy.addr);
    let wrk = std::thread::spawn(move || {
        Command::new("wrk")
            .args(["-t2", "-c16", "-d3s", &url])
            .output()
            .expect("run wrk")
    });
    // Ten reloads spread over wrk's 3 s. Each waits for the previous one's line: SIGHUPs that
    // arrive while one is pending merge into one (signal(7)), and the file is replaced by a
    // rename, so a reload never reads it half-written.
    let staged = format!("{}.next", file.path());
    for i in 1..=10 {
        std::thread::sleep(Duration::from_millis(200));
        std::fs::write(
            &staged,
            config(&["127.0.0.1:0"], &up.addr.to_string(), &i.to_string()),
        )
        .unwrap();
        std::fs::rename(&staged, &file.0).unwrap();
        hup(&proxy);
        assert!(
            proxy
                .stderr
                .wait_n(Duration::from_secs(5), i, |l| l.starts_with("reload")),
            "reload {i} not reported: {:?}",
            proxy.stderr_lines()
        );
    }
    let out = wrk.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (requests, non2xx, socket) = wrk_summary(&text);
    let reloads = proxy
        .stderr_lines()
        .iter()
        .filter(|l| l.starts_with("reloaded "))
        .count();
    assert_eq!(
        reloads,
        10,
        "every SIGHUP reloaded: {:?}",
        proxy.stderr_lines()
    );
    assert!(requests > 100, "wrk ran: {text}");
    assert_eq!(
        (non2xx, socket),
        (0, 0),
        "no failed request during reloads: {text}"
    );
    assert_eq!(version(&proxy).as_deref(), Some("10"));
}

#[test]
fn a_reload_that_leaves_a_cluster_alone_keeps_its_balancer() {
    let (a, b) = (Upstream::fixed("A"), Upstream::fixed("B"));
    let conf = |tag: &str| {
        format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\", \"{}\"]\n[shards]\ncount = 1\n\n\
             [[routes]]\nname = \"all\"\nresponse_headers_add = {{ \"x-version\" = \"{tag}\" }}\n",
            a.addr, b.addr
        )
    };
    let file = temp_file("reload-rr", &conf("one"));
    let proxy = Proxy::start(&["--config", file.path()]);
    let body = || proxy.connect().exchange(&get("/")).text();
    let first = body();
    std::fs::write(&file.0, conf("two")).unwrap();
    hup(&proxy);
    proxy
        .wait_stderr(Duration::from_secs(5), "reloaded ")
        .expect("reloaded");
    let second = body();
    assert_ne!(
        first, second,
        "round-robin goes on to the other endpoint across a reload that left the cluster alone"
    );
}

/// An HTTP/1.0 request without Host goes upstream with the first cluster's first endpoint as its
/// Host: after a reload that names another endpoint first, the new one, not the start config's.
#[test]
fn a_reload_moves_the_host_sent_for_http10_requests_without_one() {
    let (a, b) = (Upstream::echo_head(), Upstream::echo_head());
    let file = temp_file(
        "reload-fallback-host",
        &config(&["127.0.0.1:0"], &a.addr.to_string(), "one"),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let ask = || {
        let mut c = proxy.connect();
        let r = c.exchange(b"GET /old-client HTTP/1.0\r\n\r\n");
        assert_eq!(r.status, 200);
    };
    ask();
    let first = a.wait_for("the first request", ms(2000), |s| s.requests.len() == 1);
    assert_eq!(
        first.requests[0].head.all("host"),
        [a.addr.to_string()],
        "before the reload: the start config's endpoint"
    );

    std::fs::write(
        &file.0,
        config(&["127.0.0.1:0"], &b.addr.to_string(), "two"),
    )
    .unwrap();
    hup(&proxy);
    proxy
        .wait_stderr(Duration::from_secs(5), "reloaded ")
        .expect("a `reloaded` line on stderr");
    ask();
    let seen = b.wait_for("the request after the reload", ms(2000), |s| {
        s.requests.len() == 1
    });
    assert_eq!(
        seen.requests[0].head.all("host"),
        [b.addr.to_string()],
        "after the reload: the new config's endpoint, not {}",
        a.addr
    );
    assert_eq!(
        a.request_count(),
        1,
        "nothing more went to the removed endpoint"
    );
}

/// After a reload that shortens `pool.idle_timeout`, an idle upstream connection is closed within
/// the new timeout: the sweep follows the current config, not the one the shard started with
/// (whose 60 s timeout sweeps only every 500 ms).
#[test]
fn a_reload_that_shortens_the_pool_idle_timeout_speeds_up_the_sweep() {
    let up = Upstream::fixed("ok");
    let conf = |idle: &str| {
        format!(
            "{}\n[pool]\nidle_timeout = \"{idle}\"\n",
            config(&["127.0.0.1:0"], &up.addr.to_string(), idle)
        )
    };
    let file = temp_file("reload-pool-idle", &conf("60s"));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    assert_eq!(version(&proxy).as_deref(), Some("60s"));

    std::fs::write(&file.0, conf("40ms")).unwrap();
    hup(&proxy);
    proxy
        .wait_stderr(Duration::from_secs(5), "reloaded ")
        .expect("a `reloaded` line on stderr");
    // The pool settings changed, so the reload closed the start config's idle connection.
    up.wait_for(
        "the old pool's idle connection to be closed",
        ms(2000),
        |s| s.peer_closed == 1,
    );
    // The first idle connection may wait out a sweep that was already asleep (up to 500 ms); the
    // ones after it start right after a sweep, so each must close within the new timeout's pace.
    for round in 1..=3 {
        assert_eq!(version(&proxy).as_deref(), Some("40ms"));
        let idle_since = std::time::Instant::now();
        let bound = if round == 1 { ms(2000) } else { ms(300) };
        up.wait_for("the idle pooled connection to be closed", bound, |s| {
            s.peer_closed == round + 1
        });
        let waited = idle_since.elapsed();
        assert!(
            waited >= ms(30),
            "round {round}: closed after {waited:?}, before the 40ms idle timeout"
        );
    }
    assert_eq!(
        up.accepted(),
        4,
        "one connection before the reload, one per round"
    );
}

/// `access_log` needs a restart: a reload that changes it says so, applies the rest of the file,
/// and the lines keep going to the file the process started with; a reload with an empty
/// `access_log` is refused at its line while the old config serves on.
#[test]
fn a_reload_keeps_the_running_access_log_and_refuses_an_empty_one() {
    let up = Upstream::fixed("ok");
    let (first, second) = (
        temp_path("reload-log-a", "log"),
        temp_path("reload-log-b", "log"),
    );
    let conf = |log: &str, version: &str| {
        format!(
            "access_log = \"{log}\"\n{}",
            config(&["127.0.0.1:0"], &up.addr.to_string(), version)
        )
    };
    let file = temp_file("reload-log", &conf(first.path(), "one"));
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    assert_eq!(version(&proxy).as_deref(), Some("one"));

    std::fs::write(&file.0, conf(second.path(), "two")).unwrap();
    hup(&proxy);
    proxy
        .wait_stderr(
            Duration::from_secs(5),
            "reload: access_log needs a restart; the running value is kept",
        )
        .expect("the restart notice on stderr");
    proxy
        .wait_stderr(Duration::from_secs(5), "reloaded ")
        .expect("a `reloaded` line on stderr");
    assert_eq!(version(&proxy).as_deref(), Some("two"));
    let lines = wait_log_lines(&first.0, 2, Duration::from_secs(5));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        !second.0.exists(),
        "the reloaded path is not opened before a restart"
    );

    std::fs::write(&file.0, conf("", "three")).unwrap();
    hup(&proxy);
    let line = proxy
        .wait_stderr(Duration::from_secs(5), "reload failed")
        .expect("a `reload failed` line on stderr");
    assert!(
        line.contains(&format!(
            "{}:1:14: access_log: use stdout, off or a file path",
            file.path()
        )),
        "the error names file, line and field: {line}"
    );
    assert_eq!(version(&proxy).as_deref(), Some("two"));
}
