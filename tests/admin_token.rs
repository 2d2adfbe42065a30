//! The admin token from a file (`admin_token_file` in the config file, `--admin-token-file`): read
//! at start and again at every reload (SIGHUP, `POST /reload`), so a rotated token takes effect
//! without a restart and a broken file fails the reload and keeps the token in force; its errors
//! name file:line:col and key (exit 2 at start); the token is never printed or shown by
//! `/config`; an admin listener other hosts can reach without a token is warned about on stderr.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;

/// An admin request to `addr` with `Authorization: Bearer <token>` (or none).
fn call(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Response {
    let mut c = Conn::connect(addr);
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Connection: close\r\n\r\n");
    c.send(req.as_bytes()).unwrap();
    c.read_response_to(method).unwrap()
}

/// The status of `GET /stats.json` with `token`.
fn stats_status(addr: SocketAddr, token: Option<&str>) -> u16 {
    call(addr, "GET", "/stats.json", token).status
}

/// Polls until `token` is the one in force (200) or panics after 5 s.
fn until_accepted(addr: SocketAddr, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats_status(addr, Some(token)) != 200 {
        assert!(Instant::now() < deadline, "{token} not accepted within 5s");
        std::thread::sleep(ms(20));
    }
}

/// Neither stdout nor stderr of `proxy` ever showed one of `secrets`.
fn never_printed(proxy: &Proxy, secrets: &[&str]) {
    let all = [proxy.stdout.all(), proxy.stderr.all()].concat();
    for s in secrets {
        assert!(
            !all.iter().any(|l| l.contains(s)),
            "{s} was printed: {all:#?}"
        );
    }
}

fn config(upstream: SocketAddr, extra: &str) -> String {
    format!("listen = [\"127.0.0.1:0\"]\nupstreams = [\"{upstream}\"]\n{extra}")
}

#[test]
fn a_rotated_token_file_takes_effect_on_reload_and_a_broken_one_keeps_the_token() {
    let up = Upstream::fixed("ok");
    let tok = temp_file("admin-token-rotate", "first-T0ken\n");
    let text = config(up.addr, &format!("admin_token_file = {:?}\n", tok.path()));
    let file = temp_file("admin-token-rotate", &text);
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let admin = proxy.admin.unwrap();
    assert_eq!(stats_status(admin, Some("first-T0ken")), 200);
    assert_eq!(stats_status(admin, None), 401);
    let shown = call(admin, "GET", "/config", Some("first-T0ken")).text();
    assert!(
        shown.contains(&format!("admin_token_file = {:?}", tok.path())),
        "{shown}"
    );
    assert!(!shown.contains("first-T0ken"), "{shown}");

    // Rotated, then SIGHUP: the new token is in force, the old one refused.
    std::fs::write(tok.path(), "second-T0ken\n").unwrap();
    support::sys::signal(proxy.pid(), libc::SIGHUP);
    until_accepted(admin, "second-T0ken");
    assert_eq!(stats_status(admin, Some("first-T0ken")), 401);
    let said = format!("admin token read again from {}: changed", tok.path());
    assert!(proxy.wait_stderr(Duration::from_secs(5), &said).is_some());

    // Broken files: the reload fails at the key's place, the token in force stays.
    let dir = std::env::temp_dir();
    let broken = [
        ("\n", format!("{}: the token is empty", tok.path())),
        (
            "third T0ken\n",
            format!("{}: the token may hold only visible ASCII", tok.path()),
        ),
    ];
    for (content, why) in broken {
        std::fs::write(tok.path(), content).unwrap();
        let r = call(admin, "POST", "/reload", Some("second-T0ken"));
        let want = format!("{}:3:20: admin_token_file: {why}", file.path());
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains(&want), "{} lacks {want}", r.text());
        assert_eq!(stats_status(admin, Some("second-T0ken")), 200, "kept");
        assert_eq!(stats_status(admin, Some("third")), 401);
    }
    // A file that cannot be read (here a directory) fails the same way.
    let text = config(
        up.addr,
        &format!("admin_token_file = {:?}\n", dir.display()),
    );
    std::fs::write(file.path(), text).unwrap();
    let r = call(admin, "POST", "/reload", Some("second-T0ken"));
    assert_eq!(r.status, 400, "{}", r.text());
    let want = format!("admin_token_file: cannot read {}: ", dir.display());
    assert!(r.text().contains(&want), "{}", r.text());
    assert_eq!(stats_status(admin, Some("second-T0ken")), 200, "kept");
    never_printed(&proxy, &["first-T0ken", "second-T0ken", "third T0ken"]);
}

#[test]
fn without_a_config_file_a_reload_reads_the_token_file_again() {
    let up = Upstream::fixed("ok");
    let tok = temp_file("admin-token-flags", "old-T0ken\n");
    let proxy = Proxy::to(
        &[up.addr],
        &["--shards", "1", "--admin-token-file", tok.path()],
    );
    let admin = proxy.admin.unwrap();
    assert_eq!(stats_status(admin, Some("old-T0ken")), 200);
    std::fs::write(tok.path(), "new-T0ken").unwrap();
    let r = call(admin, "POST", "/reload", Some("old-T0ken"));
    assert_eq!((r.status, r.text()), (200, "reloaded\n".to_string()));
    assert_eq!(stats_status(admin, Some("new-T0ken")), 200);
    assert_eq!(stats_status(admin, Some("old-T0ken")), 401);

    std::fs::write(tok.path(), "").unwrap();
    let r = call(admin, "POST", "/reload", Some("new-T0ken"));
    assert_eq!(r.status, 400, "{}", r.text());
    let want = format!("--admin-token-file: {}: the token is empty", tok.path());
    assert!(r.text().contains(&want), "{}", r.text());
    assert_eq!(stats_status(admin, Some("new-T0ken")), 200, "kept");
    // The proxy keeps serving, and a loopback admin listener is not warned about.
    assert_eq!(proxy.connect().exchange(&get("/x")).status, 200);
    let lines = proxy.stderr_lines();
    assert!(!lines.iter().any(|l| l.contains("warning")), "{lines:#?}");
    never_printed(&proxy, &["old-T0ken", "new-T0ken"]);
}

#[test]
fn a_bad_token_file_or_an_inline_token_exits_2_naming_file_line_and_key() {
    let up = Upstream::fixed("ok");
    let empty = temp_file("admin-token-empty", " \n");
    let inner = temp_file("admin-token-inner", "two\nlines\n");
    let dir = std::env::temp_dir().display().to_string();
    let cases = [
        (
            format!("admin_token_file = {:?}\n", empty.path()),
            format!(
                ":3:20: admin_token_file: {}: the token is empty",
                empty.path()
            ),
        ),
        (
            format!("admin_token_file = {:?}\n", inner.path()),
            format!(
                ":3:20: admin_token_file: {}: the token may hold",
                inner.path()
            ),
        ),
        (
            format!("admin_token_file = {dir:?}\n"),
            format!(":3:20: admin_token_file: cannot read {dir}: "),
        ),
        (
            "admin_token_file = \"/nonexistent/token\"\n".to_string(),
            ":3:20: admin_token_file: cannot read /nonexistent/token: ".to_string(),
        ),
        (
            "admin_token_file = \"\"\n".to_string(),
            ":3:20: admin_token_file: an empty path".to_string(),
        ),
        (
            "admin_token = \"inline-T0ken\"\n".to_string(),
            ":3:15: admin_token: a token written in the config file".to_string(),
        ),
    ];
    for (key, want) in cases {
        let file = temp_file("admin-token-bad", &config(up.addr, &key));
        for start in [&["--check"][..], &["--admin", "127.0.0.1:0"][..]] {
            let mut args = vec!["--config", file.path()];
            args.extend(start);
            let run = run(&args);
            assert_eq!(run.status.code(), Some(2), "{key}: {}", run.stderr);
            let want = format!("error: {}{want}", file.path());
            assert!(run.stderr.contains(&want), "{key}: {}", run.stderr);
            assert!(!run.stderr.contains("inline-T0ken"), "{}", run.stderr);
        }
    }
}

#[test]
fn a_reachable_admin_without_a_token_is_warned_about_at_start_and_when_a_reload_drops_it() {
    let up = Upstream::fixed("ok");
    let warning = "warning: the admin listener 0.0.0.0:0 is not on a loopback address and no \
                   admin token is set";
    // Flags: --admin on every address, no token. (Requests still go to 127.0.0.1.)
    let open = Proxy::to(&[up.addr], &["--shards", "1", "--admin", "0.0.0.0:0"]);
    let line = open.wait_stderr(Duration::from_secs(5), warning);
    assert!(
        line.is_some_and(|l| l.contains("SSH tunnel")),
        "{:#?}",
        open.stderr_lines()
    );
    let local = SocketAddr::from(([127, 0, 0, 1], open.admin.unwrap().port()));
    assert_eq!(stats_status(local, None), 200);
    let check = run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up.addr.to_string(),
        "--admin",
        "0.0.0.0:0",
        "--check",
    ]);
    assert_eq!(check.status.code(), Some(0), "{}", check.stderr);
    assert!(check.stderr.contains(warning), "{}", check.stderr);

    // A file with a token: no warning, until a reload drops the token.
    let tok = temp_file("admin-token-warn", "w4rn-T0ken\n");
    let admin = "admin = \"0.0.0.0:0\"\n";
    let with = config(
        up.addr,
        &format!("{admin}admin_token_file = {:?}\n", tok.path()),
    );
    let file = temp_file("admin-token-warn", &with);
    let guarded = Proxy::start_as_is(&["--config", file.path(), "--shards", "1"]);
    let local = SocketAddr::from(([127, 0, 0, 1], guarded.admin.unwrap().port()));
    assert_eq!(stats_status(local, None), 401);
    std::fs::write(file.path(), config(up.addr, admin)).unwrap();
    let r = call(local, "POST", "/reload", Some("w4rn-T0ken"));
    assert_eq!(r.status, 200, "{}", r.text());
    let said = format!("reload: {warning}");
    assert!(
        guarded.wait_stderr(Duration::from_secs(5), &said).is_some(),
        "{:#?}",
        guarded.stderr_lines()
    );
    let warned = guarded.stderr_lines();
    assert_eq!(
        warned.iter().filter(|l| l.contains(warning)).count(),
        1,
        "only the reload warned: {warned:#?}"
    );
    assert_eq!(
        stats_status(local, None),
        200,
        "the reload dropped the token"
    );
    never_printed(&guarded, &["w4rn-T0ken"]);
}
