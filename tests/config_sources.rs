//! Errors name where the bad value came from (issue 10, items 11–13): a flag (`--shards: …`) or
//! the file's `F:LINE:COL: KEY: …` with one key-path style (`routes[1].nmae`, `listen[1]`);
//! `--check` (and start, and reload, through the same checks) catches what is known without
//! binding: the same or an overlapping listen address twice, the admin address on a listen
//! address, an access log that cannot be created, a privileged port without
//! CAP_NET_BIND_SERVICE; a bind that fails at start or reload names the flag or key that asked.

mod support;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The outcome of a shardgate run expected to exit by itself.
struct Exit {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `prefix` (a capability-dropping wrapper, or nothing) + shardgate + exactly `args`, to
/// completion (killed and a failure after 10 s). No `--admin` is added.
fn run_as_is(prefix: &[String], args: &[&str]) -> Exit {
    let mut argv: Vec<String> = prefix.to_vec();
    argv.push(support::proxy::bin());
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardgate");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{argv:?} did not exit within 10 s");
        }
        std::thread::sleep(ms(5));
    }
    let out = child.wait_with_output().unwrap();
    Exit {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The single `error: …` line of a run that must exit 2 without saying ok or ready.
fn error_line(out: &Exit, context: &str) -> String {
    assert_eq!(
        out.code,
        Some(2),
        "{context}: exit {:?}, want 2; stderr {:?}",
        out.code,
        out.stderr
    );
    assert!(
        !out.stdout.contains(": ok") && !out.stdout.contains("ready:"),
        "{context}: stdout {:?}",
        out.stdout
    );
    out.stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{context}: no `error:` line in {:?}", out.stderr))
        .to_string()
}

/// A port some socket of this test holds (no SO_REUSEPORT), so that nobody else can bind it.
fn held_port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// `setpriv` dropping `caps` from the bounding set (root only: a non-root test lacks them
/// already); scripts/test.sh installs util-linux.
fn without_caps(caps: &[&str]) -> Vec<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Vec::new();
    }
    assert!(
        Command::new("setpriv").arg("--version").output().is_ok(),
        "setpriv (util-linux) is needed; scripts/test.sh installs it"
    );
    let drop: Vec<String> = caps.iter().map(|c| format!("-{c}")).collect();
    vec![
        "setpriv".into(),
        "--inh-caps=-all".into(),
        format!("--bounding-set={}", drop.join(",")),
    ]
}

#[test]
fn flag_errors_name_the_flag_even_over_a_file() {
    let file = temp_file(
        "flag-over-file",
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[shards]\ncount = 2\n",
    );
    let cases: &[(&[&str], &str)] = &[
        (&["--shards", "0"], "error: --shards: 0 is out of range"),
        (
            &["--buffer-size", "10"],
            "error: --buffer-size: 10 is out of range",
        ),
        (
            &["--connect-timeout", "0s"],
            "error: --connect-timeout: must be greater than 0",
        ),
        (
            &["--upstream-queue-timeout", "0s"],
            "error: --upstream-queue-timeout: must be",
        ),
    ];
    for (flags, want) in cases {
        for with_file in [false, true] {
            let mut args = vec!["--admin", "127.0.0.1:0", "--check"];
            if with_file {
                args.extend(["--config", file.path()]);
            } else {
                args.extend(["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9"]);
            }
            args.extend(flags.iter());
            let err = error_line(&run_as_is(&[], &args), &format!("{args:?}"));
            assert!(err.starts_with(want), "{args:?}: {err:?}, want {want:?}");
        }
    }
}

#[test]
fn a_default_broken_by_a_flag_is_named_by_its_flag() {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--buffer-size",
        "2048",
        "--admin",
        "off",
        "--check",
    ];
    let err = error_line(&run_as_is(&[], &args), "--buffer-size 2048");
    assert!(
        err.starts_with(
            "error: --max-request-line (default): 8192 must be between 64 and buffer_size (2048)"
        ),
        "{err:?}"
    );
}

#[test]
fn unknown_keys_and_bad_values_share_one_key_path_style() {
    let base =
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:9\"]\n\
                [[routes]]\ncluster = \"a\"\npath = \"/a\"\n[[routes]]\ncluster = \"a\"\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "nmae = \"x\"\n",
            "10:1: routes[1].nmae: unknown field",
            "unknown key",
        ),
        ("path = \"x\"\n", "10:8: routes[1].path: ", "invalid value"),
        (
            "max_body = \"big\"\n",
            "10:12: routes[1].max_body: invalid type",
            "wrong type",
        ),
        (
            "rate_limit = { rate = \"1/s\", burt = 2 }\n",
            "10:30: routes[1].rate_limit.burt: unknown field",
            "inline table",
        ),
    ];
    for (tail, want, what) in cases {
        let file = temp_file("key-path", &format!("{base}{tail}"));
        let out = run_as_is(&[], &["--config", file.path(), "--admin", "off", "--check"]);
        let err = error_line(&out, what);
        let want = format!("error: {}:{want}", file.path());
        assert!(err.starts_with(&want), "{what}: {err:?}, want {want:?}");
    }
}

#[test]
fn the_same_listen_address_twice_is_a_duplicate_not_in_use() {
    // Held by this test too: were the duplicate not caught first, start would say "in use".
    let (_held, p) = held_port();
    let text =
        format!("listen = [\"127.0.0.1:{p}\", \"0.0.0.0:{p}\"]\nupstreams = [\"127.0.0.1:9\"]\n");
    let file = temp_file("dup-listen", &text);
    let want = format!(
        "error: {f}:1:{col}: listen[1]: 0.0.0.0:{p} overlaps 127.0.0.1:{p} (also listen[0] at {f}:1:11)",
        f = file.path(),
        col = 25 + p.to_string().len()
    );
    for extra in [&["--check"][..], &[]] {
        let mut args = vec!["--config", file.path(), "--admin", "off"];
        args.extend(extra);
        let err = error_line(&run_as_is(&[], &args), &format!("{args:?}"));
        assert_eq!(err, want, "{args:?}");
    }
    let same = format!("127.0.0.1:{p}");
    let args = [
        "--listen",
        &same,
        "--listen",
        &same,
        "--upstream",
        "127.0.0.1:9",
        "--admin",
        "off",
    ];
    let err = error_line(&run_as_is(&[], &args), "two equal --listen");
    assert!(
        err.starts_with(&format!("error: --listen: 127.0.0.1:{p} is listed twice")),
        "{err:?}"
    );
}

#[test]
fn the_admin_address_on_a_listen_address_is_refused() {
    let (_held, p) = held_port();
    let text = format!(
        "listen = [\"127.0.0.1:{p}\"]\nupstreams = [\"127.0.0.1:9\"]\nadmin = \"0.0.0.0:{p}\"\n"
    );
    let file = temp_file("admin-clash", &text);
    let err = error_line(
        &run_as_is(&[], &["--config", file.path(), "--check"]),
        "file admin",
    );
    let want = format!(
        "error: {}:3:9: admin: 0.0.0.0:{p} is also a listen address (127.0.0.1:{p}, listen[0] at",
        file.path()
    );
    assert!(err.starts_with(&want), "{err:?}, want {want:?}");

    let listen = format!("127.0.0.1:{p}");
    let args = [
        "--listen",
        &listen,
        "--upstream",
        "127.0.0.1:9",
        "--admin",
        &listen,
    ];
    let err = error_line(&run_as_is(&[], &args), "flag admin");
    assert!(
        err.starts_with(&format!(
            "error: --admin: {listen} is also a listen address ({listen}, --listen)"
        )),
        "{err:?}"
    );
}

/// `access_log` is parsed when the config is built: an empty value is refused by the flag and
/// by the file (at its line), before anything starts, with or without `--check`.
#[test]
fn an_empty_access_log_is_refused_by_flag_and_by_file() {
    let file = temp_file(
        "empty-log",
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\naccess_log = \"\"\n",
    );
    for extra in [&["--check"][..], &[]] {
        let mut args = vec!["--config", file.path(), "--admin", "off"];
        args.extend(extra);
        let err = error_line(&run_as_is(&[], &args), &format!("{args:?}"));
        let want = format!(
            "error: {}:3:14: access_log: use stdout, off or a file path",
            file.path()
        );
        assert_eq!(err, want, "{args:?}");
    }
    for extra in [&["--check"][..], &[]] {
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--admin",
            "off",
            "--access-log",
            "",
        ];
        args.extend(extra);
        let err = error_line(&run_as_is(&[], &args), &format!("{args:?}"));
        assert_eq!(err, "error: --access-log: use stdout, off or a file path");
    }
    // The flag overrides a bad file value only by being good itself.
    let args = [
        "--config",
        file.path(),
        "--admin",
        "off",
        "--access-log",
        "off",
        "--check",
    ];
    let out = run_as_is(&[], &args);
    assert_eq!(
        out.code,
        Some(2),
        "the file is parsed before flags: {:?}",
        out.stderr
    );
}

#[test]
fn an_access_log_that_cannot_be_created_is_refused_before_start() {
    let dir = std::env::temp_dir().join(format!("shardgate-test-{}-nolog", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = dir.join("access.log");
    let log = log.to_str().unwrap();
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\naccess_log = \"{log}\"\n"
    );
    let file = temp_file("no-log-dir", &text);
    for extra in [&["--check"][..], &[]] {
        let mut args = vec!["--config", file.path(), "--admin", "off"];
        args.extend(extra);
        let err = error_line(&run_as_is(&[], &args), &format!("{args:?}"));
        let want = format!(
            "error: {}:3:14: access_log: directory {} does not exist",
            file.path(),
            dir.display()
        );
        assert!(err.starts_with(&want), "{err:?}, want {want:?}");
    }
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--admin",
        "off",
        "--access-log",
        log,
        "--check",
    ];
    let err = error_line(&run_as_is(&[], &args), "--access-log");
    assert!(
        err.starts_with("error: --access-log: directory "),
        "{err:?}"
    );

    // A directory this process may not write to (mode 0555; root loses CAP_DAC_OVERRIDE).
    std::fs::create_dir(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let caps = without_caps(&["dac_override", "dac_read_search"]);
    let err = error_line(
        &run_as_is(
            &caps,
            &["--config", file.path(), "--admin", "off", "--check"],
        ),
        "0555 dir",
    );
    let want = format!(
        "error: {}:3:14: access_log: cannot create access.log in {}: Permission denied",
        file.path(),
        dir.display()
    );
    assert!(err.starts_with(&want), "{err:?}, want {want:?}");
    // With the right to write, the same file passes.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run_as_is(
        &caps,
        &["--config", file.path(), "--admin", "off", "--check"],
    );
    assert_eq!(out.code, Some(0), "writable directory: {:?}", out.stderr);
    assert!(
        !std::path::Path::new(log).exists(),
        "--check creates nothing"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_privileged_port_without_cap_net_bind_service_is_refused() {
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if start <= 1 {
        eprintln!("ip_unprivileged_port_start = {start}: every port is unprivileged here");
        return;
    }
    let port = start - 1;
    let text =
        format!("upstreams = [\"127.0.0.1:9\"]\n[[listeners]]\naddr = \"127.0.0.1:{port}\"\n");
    let file = temp_file("privileged", &text);
    let caps = without_caps(&["net_bind_service"]);
    let out = run_as_is(
        &caps,
        &["--config", file.path(), "--admin", "off", "--check"],
    );
    let err = error_line(&out, "privileged listen port");
    let want = format!(
        "error: {}:3:8: listeners[0].addr: port {port} is below {start}",
        file.path()
    );
    assert!(
        err.starts_with(&want) && err.contains("CAP_NET_BIND_SERVICE"),
        "{err:?}, want {want:?}"
    );

    let admin = format!("127.0.0.1:{port}");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--admin",
        &admin,
        "--check",
    ];
    let err = error_line(&run_as_is(&caps, &args), "privileged admin port");
    assert!(
        err.starts_with(&format!("error: --admin: port {port} is below {start}")),
        "{err:?}"
    );

    if caps.is_empty() {
        return; // not root: this test process may not bind it either
    }
    let out = run_as_is(&[], &["--config", file.path(), "--admin", "off", "--check"]);
    assert_eq!(
        out.code,
        Some(0),
        "with CAP_NET_BIND_SERVICE the port is fine: {:?}",
        out.stderr
    );
}

#[test]
fn a_port_in_use_at_start_names_the_flag_or_the_key() {
    let (_held, p) = held_port();
    let addr = format!("127.0.0.1:{p}");
    let text = format!("upstreams = [\"127.0.0.1:9\"]\n[[listeners]]\naddr = \"{addr}\"\n");
    let file = temp_file("in-use", &text);
    let out = run_as_is(&[], &["--config", file.path(), "--admin", "off", "--check"]);
    assert_eq!(out.code, Some(0), "only binding can tell: {:?}", out.stderr);
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--config", file.path(), "--admin", "off"],
            format!(
                "error: {}:3:8: listeners[0].addr: cannot listen on {addr}: ",
                file.path()
            ),
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--listen",
                &addr,
                "--upstream",
                "127.0.0.1:9",
                "--admin",
                "off",
            ],
            format!("error: --listen: cannot listen on {addr}: "),
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:9",
                "--admin",
                &addr,
            ],
            format!("error: --admin: cannot listen on admin address {addr}: "),
        ),
    ];
    for (args, want) in cases {
        let err = error_line(&run_as_is(&[], &args), &format!("{args:?}"));
        assert!(
            err.starts_with(&want) && err.contains("Address already in use"),
            "{args:?}: {err:?}, want {want:?}…Address already in use"
        );
    }
}

#[test]
fn a_port_in_use_at_reload_names_the_key_and_the_old_config_serves() {
    let up = Upstream::fixed("ok");
    let first = format!(
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n",
        up.addr
    );
    let file = temp_file("reload-in-use", &first);
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let (_held, p) = held_port();
    for (tail, want) in [
        (
            format!("[[listeners]]\naddr = \"127.0.0.1:{p}\"\n"),
            format!("{}:4:8: listeners[0].addr: cannot listen on 127.0.0.1:{p}: Address already in use (os error 98)", file.path()),
        ),
        (
            format!("[[listeners]]\naddr = \"127.0.0.1:{p}\"\n[[listeners]]\naddr = \"127.0.0.1:{p}\"\n"),
            format!("{}:6:8: listeners[1].addr: 127.0.0.1:{p} is listed twice (also listeners[0].addr at {}:4:8)", file.path(), file.path()),
        ),
    ] {
        std::fs::write(&file.0, format!("{first}{tail}")).unwrap();
        support::sys::signal(proxy.pid(), libc::SIGHUP);
        let want = format!("reload failed, still serving the previous config: {want}");
        assert!(
            proxy.stderr.wait(Duration::from_secs(5), |l| l == want).is_some(),
            "want {want:?} on stderr, got {:?}",
            proxy.stderr_lines()
        );
        let r = proxy.connect().exchange(&get("/"));
        assert_eq!((r.status, r.text()), (200, "ok".to_string()), "the old listener serves on");
    }
}
