//! Shards: each one reports its core and driver on stderr and serves from its own SO_REUSEPORT
//! listener; `--no-pin`, `--cpus`; the epoll fallback (`MONOIO_FORCE_LEGACY_DRIVER=1`).

mod support;

use support::*;

const FORCE_LEGACY: &str = "MONOIO_FORCE_LEGACY_DRIVER";

/// Waits for the `shard N:` line of each of `n` shards.
fn shard_lines(proxy: &Proxy, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            proxy
                .wait_stderr(ms(2000), &format!("shard {i}: "))
                .unwrap_or_else(|| {
                    panic!("no `shard {i}:` line on stderr: {:?}", proxy.stderr_lines())
                })
        })
        .collect()
}

/// Many connections at once: with SO_REUSEPORT the kernel spreads them over both shards, so a
/// shard that does not serve would leave about half of them unanswered.
#[test]
fn two_shards_both_serve() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--shards", "2"]);
    let lines = shard_lines(&proxy, 2);
    assert!(
        proxy.wait_stderr(ms(10), "shard 2: ").is_none(),
        "a third shard: {:?}",
        proxy.stderr_lines()
    );
    let ready = proxy
        .stdout
        .wait(ms(10), |l| l.starts_with("ready:"))
        .unwrap();
    assert_eq!(ready, "ready: 2 shards");
    let mut conns: Vec<Conn> = (0..24).map(|_| proxy.connect()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(&get(&format!("/{i}"))).unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("connection {i} of 24 unanswered: {e}; shards {lines:?}"));
        assert_eq!(r.header("x-seen-target"), Some(format!("/{i}").as_str()));
    }
}

#[test]
fn no_pin_reports_core_none_and_serves() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--shards", "2", "--no-pin"]);
    for line in shard_lines(&proxy, 2) {
        assert!(line.contains("core none"), "--no-pin: {line:?}");
    }
    for _ in 0..4 {
        assert_eq!(proxy.connect().exchange(&get("/")).text(), "ok");
    }
}

#[test]
fn cpus_flag_pins_to_the_given_core() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let core = if cores > 1 { 1 } else { 0 };
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--shards", "1", "--cpus", &core.to_string()]);
    let line = &shard_lines(&proxy, 1)[0];
    assert!(
        line.starts_with(&format!("shard 0: core {core}, driver ")),
        "--cpus {core}: {line:?}"
    );
    assert_eq!(proxy.connect().exchange(&get("/")).text(), "ok");
}

fn uring_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").map_or(true, |v| v.trim() == "0")
}

/// The driver line follows the environment the suite runs in (run it both ways).
#[test]
fn driver_line_follows_environment() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let line = &shard_lines(&proxy, 1)[0];
    if std::env::var(FORCE_LEGACY).is_ok_and(|v| v == "1") {
        assert!(line.ends_with("driver epoll"), "{FORCE_LEGACY}=1: {line:?}");
    } else if uring_enabled() {
        assert!(
            line.ends_with("driver io_uring (defer-taskrun)"),
            "io_uring is enabled here: {line:?}"
        );
    } else {
        assert!(
            line.ends_with("driver epoll"),
            "io_uring is disabled here: {line:?}"
        );
    }
    assert_eq!(proxy.connect().exchange(&get("/")).text(), "ok");
}

/// Both drivers explicitly, whatever the suite's environment.
#[test]
fn each_driver_serves_keepalive_requests() {
    let up = Upstream::echo();
    let mut variants = vec![(Some("1"), "driver epoll")];
    if uring_enabled() {
        variants.push((None, "driver io_uring (defer-taskrun)"));
    }
    for (env, want) in variants {
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.addr.to_string(),
            "--shards",
            "2",
        ];
        let proxy = Proxy::start_with_env(&args, &[(FORCE_LEGACY, env)]);
        for line in shard_lines(&proxy, 2) {
            assert!(line.ends_with(want), "{FORCE_LEGACY}={env:?}: {line:?}");
        }
        let mut c = proxy.connect();
        for i in 0..3 {
            let body = format!("{want} {i}");
            let r = c.exchange(&request("POST", "/", &[], body.as_bytes()));
            assert_eq!(r.text(), body);
        }
    }
}

/// Every `--uring-setup` mode gets the ring it names (this kernel has them all) and serves
/// keep-alive requests, pipelined requests and bodies on it.
#[test]
fn each_uring_setup_serves_requests() {
    if !uring_enabled() || std::env::var(FORCE_LEGACY).is_ok_and(|v| v == "1") {
        return; // the epoll driver has no ring to set up; `driver_line_follows_environment` covers it
    }
    let up = Upstream::echo();
    for mode in ["defer-taskrun", "coop-taskrun", "plain", "sqpoll:50"] {
        let addr = up.addr.to_string();
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &addr,
            "--shards",
            "1",
            "--uring-setup",
            mode,
        ];
        let proxy = Proxy::start_with_env(&args, &[]);
        let line = &shard_lines(&proxy, 1)[0];
        assert!(
            line.ends_with(&format!("driver io_uring ({mode})")),
            "{mode}: {line:?}"
        );
        let mut c = proxy.connect();
        for i in 0..3 {
            let body = format!("{mode} {i}");
            let r = c.exchange(&request("POST", "/", &[], body.as_bytes()));
            assert_eq!(r.text(), body, "{mode}");
        }
        c.send(&[get("/a"), get("/b")].concat()).unwrap();
        for _ in 0..2 {
            assert_eq!(c.read_response().unwrap().status, 200, "{mode}: pipelined");
        }
    }
}

/// A mode that is not one of the four is refused with the flag's name, exit code 2.
#[test]
fn bad_uring_setup_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardgate"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--uring-setup",
            "turbo",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--uring-setup: \"turbo\""), "{err}");
}
