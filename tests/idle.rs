//! An idle shardgate uses no CPU: no thread spins on a channel or a timer, with the admin
//! listener on or off (a disconnected admin channel once made the coordinator loop spin).

mod support;

use std::time::{Duration, Instant};

use support::*;

/// utime + stime of the process so far, in clock ticks (from /proc/PID/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn assert_idle(proxy: &Proxy, what: &str) {
    let window = Duration::from_secs(1);
    let before = cpu_ticks(proxy.pid());
    let start = Instant::now();
    while start.elapsed() < window {
        std::thread::park_timeout(window - start.elapsed());
    }
    let used = cpu_ticks(proxy.pid()) - before;
    // 100 ticks a second: a spinning thread burns ~100 in this window, an idle process ~0.
    assert!(used < 20, "{what}: {used} ticks of CPU in 1 s while idle");
}

#[test]
fn idle_with_admin_off_uses_no_cpu() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--admin", "off"]);
    assert_eq!(proxy.connect().exchange(&get("/")).status, 200);
    assert_idle(&proxy, "--admin off");
}

#[test]
fn idle_with_admin_on_uses_no_cpu() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &["--health-check", "tcp", "--health-interval", "100ms"],
    );
    assert_eq!(proxy.connect().exchange(&get("/")).status, 200);
    assert_idle(&proxy, "admin on, health checks every 100ms");
}
