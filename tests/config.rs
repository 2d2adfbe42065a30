//! Configuration: flags alone, a TOML file, `--check` (exit 0, or exit 2 with
//! `error: F:LINE:COL: FIELD: message`), flags overriding the file, `--help`, bad flags.

mod support;

use support::*;

/// Every flag CONTRACT.md lists.
const FLAGS: &[&str] = &[
    "--listen",
    "--upstream",
    "--config",
    "--check",
    "--rate-limit-redis",
    "--shards",
    "--cpus",
    "--no-pin",
    "--uring-entries",
    "--backlog",
    "--max-connections",
    "--buffer-size",
    "--max-request-line",
    "--pool-max-idle",
    "--pool-idle-timeout",
    "--max-upstream-connections",
    "--upstream-queue",
    "--upstream-queue-timeout",
    "--connect-timeout",
    "--header-timeout",
    "--upstream-timeout",
    "--idle-timeout",
    "--body-timeout",
    "--drain-timeout",
    "--listen-tls",
    "--tls-cert",
    "--tls-key",
    "--tls-handshake-timeout",
];

#[test]
fn flags_alone_proxy_to_every_upstream() {
    let a = Upstream::fixed("A");
    let b = Upstream::fixed("B");
    let proxy = Proxy::to(&[a.addr, b.addr], &[]);
    for _ in 0..4 {
        let mut c = proxy.connect();
        let r = c.exchange(&get("/"));
        assert_eq!(r.status, 200);
    }
    assert_eq!(a.request_count() + b.request_count(), 4);
    assert!(
        a.request_count() > 0 && b.request_count() > 0,
        "both --upstream flags are used"
    );
}

#[test]
fn two_listeners_both_serve() {
    let up = Upstream::fixed("ok");
    let up_addr = up.addr.to_string();
    let proxy = Proxy::start(&[
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up_addr,
    ]);
    assert_eq!(proxy.addrs.len(), 2, "one `listening on` line per --listen");
    assert_ne!(proxy.addrs[0], proxy.addrs[1]);
    for addr in &proxy.addrs {
        let mut c = Conn::connect(*addr);
        assert_eq!(c.exchange(&get("/")).text(), "ok", "listener {addr}");
    }
}

fn toml_strs(addrs: &[String]) -> String {
    let quoted: Vec<String> = addrs.iter().map(|a| format!("{a:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

#[test]
fn config_file_alone_proxies_and_applies_settings() {
    let a = Upstream::fixed("A");
    let b = Upstream::fixed("B");
    let file = temp_file(
        "plain",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = {}\n\n[shards]\ncount = 1\n\n[timeouts]\nheader = \"300ms\"\n",
            toml_strs(&[a.addr.to_string(), b.addr.to_string()])
        ),
    );
    let proxy = Proxy::start(&["--config", file.path()]);
    let ready = proxy
        .stdout
        .wait(ms(100), |l| l.starts_with("ready:"))
        .unwrap();
    assert!(
        ready.starts_with("ready: 1 shard"),
        "[shards] count = 1, got {ready:?}"
    );
    let order: String = (0..4)
        .map(|_| proxy.connect().exchange(&get("/")).text())
        .collect();
    assert!(
        order == "ABAB" || order == "BABA",
        "both upstreams from the file, round robin: {order}"
    );
    // [timeouts] header = "300ms" is in force.
    let mut c = proxy.connect();
    let (_, took) = timed(|| {
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        expect_canned_then_close(
            &mut c,
            408,
            "half a head with header = \"300ms\" in the file",
        )
    });
    assert!(took < ms(3000), "408 after {took:?}");
}

#[test]
fn flags_override_the_file() {
    let a = Upstream::fixed("from-file");
    let b = Upstream::fixed("from-flag");
    let file = temp_file(
        "override",
        &format!(
            "listen = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\nupstreams = {}\n\n[shards]\ncount = 2\n\n[timeouts]\nheader = \"60s\"\n",
            toml_strs(&[a.addr.to_string()])
        ),
    );
    let b_addr = b.addr.to_string();
    let proxy = Proxy::start(&[
        "--config",
        file.path(),
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &b_addr,
        "--shards",
        "1",
        "--header-timeout",
        "300ms",
    ]);
    assert_eq!(
        proxy.addrs.len(),
        1,
        "--listen replaces the file's two listeners: {:?}",
        proxy.addrs
    );
    let ready = proxy
        .stdout
        .wait(ms(100), |l| l.starts_with("ready:"))
        .unwrap();
    assert!(
        ready.starts_with("ready: 1 shard"),
        "--shards 1 over count = 2, got {ready:?}"
    );
    for _ in 0..3 {
        assert_eq!(proxy.connect().exchange(&get("/")).text(), "from-flag");
    }
    assert_eq!(
        a.request_count(),
        0,
        "the file's upstream is replaced by --upstream"
    );
    let mut c = proxy.connect();
    let (_, took) = timed(|| {
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        expect_canned_then_close(&mut c, 408, "--header-timeout 300ms over header = \"60s\"")
    });
    assert!(
        took < ms(3000),
        "408 after {took:?}: the file's 60s header timeout won"
    );
}

#[test]
fn check_accepts_a_valid_file() {
    let file = temp_file(
        "valid",
        "listen = [\"127.0.0.1:8080\"]\nupstreams = [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]\n\n\
         [shards]\ncount = 2\npin = true\nbuffer_size = 16384\n\n[timeouts]\nconnect = \"3s\"\nheader = \"250ms\"\n\
         upstream = \"2m\"\ndrain = \"1h\"\n\n[pool]\nmax_idle = 64\nidle_timeout = \"60s\"\nqueue = 128\n",
    );
    let path = file.path();
    let out = run(&["--config", path, "--check"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.lines().any(|l| l == format!("{path}: ok")),
        "want `{path}: ok` on stdout, got {:?}",
        out.stdout
    );
}

/// One invalid config: its text, the dotted path of the bad field, and the line it is on.
struct Bad {
    name: &'static str,
    text: &'static str,
    field: &'static str,
    line: usize,
}

const BASE: &str = "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9001\"]\n\n";

#[test]
fn check_reports_each_error_with_location() {
    let cases = [
        Bad {
            name: "bad_duration",
            text: "[timeouts]\nconnect = \"3x\"\n",
            field: "timeouts.connect",
            line: 5,
        },
        Bad {
            name: "duration_without_unit",
            text: "[timeouts]\nidle = \"10\"\n",
            field: "timeouts.idle",
            line: 5,
        },
        Bad {
            name: "count_wrong_type",
            text: "[shards]\ncount = \"two\"\n",
            field: "shards.count",
            line: 5,
        },
        Bad {
            name: "zero_shards",
            text: "[shards]\ncount = 0\n",
            field: "shards.count",
            line: 5,
        },
        Bad {
            name: "negative_splice_threshold",
            text: "[shards]\nsplice_threshold = -1\n",
            field: "shards.splice_threshold",
            line: 5,
        },
        Bad {
            name: "negative_pool_size",
            text: "[pool]\nmax_idle = -1\n",
            field: "pool.max_idle",
            line: 5,
        },
        Bad {
            name: "unknown_key",
            text: "[pool]\nmax_idel = 3\n",
            field: "pool.max_idel",
            line: 5,
        },
        Bad {
            name: "bad_listen_address",
            text: "",
            field: "listen",
            line: 1,
        },
        Bad {
            name: "upstream_without_port",
            text: "",
            field: "upstreams",
            line: 2,
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let mut text = format!("{BASE}{}", case.text);
        if case.name == "bad_listen_address" {
            text = text.replacen("127.0.0.1:0", "not-an-address", 1);
        }
        if case.name == "upstream_without_port" {
            text = text.replacen("127.0.0.1:9001", "127.0.0.1", 1);
        }
        let file = temp_file(case.name, &text);
        let path = file.path().to_string();
        let out = run(&["--config", &path, "--check"]);
        if let Err(why) = check_error(&out, &path, &text, case.field, case.line) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn check_reports_discovery_errors_with_location() {
    let cluster = "[[clusters]]\nname = \"api\"\n";
    let cases = [
        Bad {
            name: "dns_without_port",
            text: "[[clusters]]\nname = \"api\"\nendpoints = [\"dns:api.internal\"]\n",
            field: "clusters[0].endpoints",
            line: 6,
        },
        Bad {
            name: "srv_not_service_proto",
            text: "[[clusters]]\nname = \"api\"\nendpoints = [\"srv:api.internal\"]\n",
            field: "clusters[0].endpoints",
            line: 6,
        },
        Bad {
            name: "srv_with_weight",
            text: "[[clusters]]\nname = \"api\"\nendpoints = [\"srv:_http._tcp.api weight=2\"]\n",
            field: "clusters[0].endpoints",
            line: 6,
        },
        Bad {
            name: "min_ttl_above_resolve_interval",
            text: "[[clusters]]\nname = \"api\"\nendpoints = [\"dns:api.internal:80\"]\nresolve_interval = \"5s\"\nmin_ttl = \"10s\"\n",
            field: "clusters[0].min_ttl",
            line: 8,
        },
        Bad {
            name: "max_stale_zero",
            text: "[[clusters]]\nname = \"api\"\nendpoints = [\"dns:api.internal:80\"]\nmax_stale = \"0s\"\n",
            field: "clusters[0].max_stale",
            line: 7,
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        assert!(case.text.starts_with(cluster));
        let text = format!("{BASE}{}", case.text);
        let file = temp_file(case.name, &text);
        let path = file.path().to_string();
        let out = run(&["--config", &path, "--check"]);
        if let Err(why) = check_error(&out, &path, &text, case.field, case.line) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    // A resolver that is not an address, at the top level.
    let text = format!("resolvers = [\"127.0.0.1:dns\"]\n{BASE}");
    let file = temp_file("bad_resolver", &text);
    let out = run(&["--config", file.path(), "--check"]);
    if let Err(why) = check_error(&out, file.path(), &text, "resolvers", 1) {
        failures.push(format!("bad_resolver: {why}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A valid file with both forms passes --check without asking DNS.
    // (Top-level keys come before the first table.)
    let good = format!(
        "resolvers = [\"127.0.0.1:5353\"]\n{BASE}[[clusters]]\nname = \"api\"\nendpoints = [\"dns:api.internal:80 weight=2\", \"srv:_http._tcp.api.internal\"]\nmin_ttl = \"2s\"\nmax_stale = \"1m\"\n"
    );
    let file = temp_file("discovery_ok", &good);
    let out = run(&["--config", file.path(), "--check"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", out.stderr);

    // The flag form: exit 2 naming --upstream.
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "dns:api.internal",
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("--upstream") && out.stderr.contains("dns:HOST:PORT"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_reports_global_limit_errors_with_location() {
    let route = "[[clusters]]\nname = \"api\"\nendpoints = [\"127.0.0.1:9002\"]\n[[routes]]\ncluster = \"api\"\n";
    let cases = [
        (
            "bad_url",
            "scope = \"global\", redis = \"http://127.0.0.1:6379\"",
            "routes[0].rate_limit.redis",
        ),
        (
            "bad_port",
            "scope = \"global\", redis = \"redis://127.0.0.1:0\"",
            "routes[0].rate_limit.redis",
        ),
        (
            "no_redis",
            "scope = \"global\"",
            "routes[0].rate_limit.redis",
        ),
        (
            "bad_scope",
            "scope = \"cluster\"",
            "routes[0].rate_limit.scope",
        ),
        (
            "bad_sync",
            "scope = \"global\", redis = \"redis://127.0.0.1\", sync = \"soon\"",
            "routes[0].rate_limit.sync",
        ),
        (
            "zero_sync",
            "scope = \"global\", redis = \"redis://127.0.0.1\", sync = \"0s\"",
            "routes[0].rate_limit.sync",
        ),
        (
            "bad_on_error",
            "scope = \"global\", redis = \"redis://127.0.0.1\", on_error = \"open\"",
            "routes[0].rate_limit.on_error",
        ),
        (
            "redis_but_local",
            "redis = \"redis://127.0.0.1\"",
            "routes[0].rate_limit.redis",
        ),
    ];
    let mut failures = Vec::new();
    for (name, extra, field) in cases {
        let text =
            format!("{BASE}{route}rate_limit = {{ rate = \"100/s\", burst = 20, {extra} }}\n");
        let file = temp_file(name, &text);
        let out = run(&["--config", file.path(), "--check"]);
        if let Err(why) = check_error(&out, file.path(), &text, field, 9) {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The whole table passes --check without asking Redis.
    let good = format!("{BASE}{route}rate_limit = {{ rate = \"100/s\", burst = 20, key = \"client-ip\", scope = \"global\", redis = \"redis://127.0.0.1:6379\", sync = \"100ms\", on_error = \"deny\" }}\n");
    let file = temp_file("global_ok", &good);
    let out = run(&["--config", file.path(), "--check"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", out.stderr);
    // Enforced now: --check no longer warns that a global limit acts as a local one.
    assert!(!out.stderr.contains("not enforced"), "{}", out.stderr);

    // The flag form: a bad URL, or the URL without a rate, exit 2 naming the flag.
    for args in [
        &["--rate-limit", "10/s", "--rate-limit-redis", "tcp://x"][..],
        &["--rate-limit-redis", "redis://127.0.0.1"][..],
    ] {
        let mut all = vec!["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9001"];
        all.extend_from_slice(args);
        all.push("--check");
        let out = run(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("--rate-limit-redis"), "{}", out.stderr);
    }
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9001",
        "--rate-limit",
        "10/s",
        "--rate-limit-redis",
        "redis://127.0.0.1:6379",
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", out.stderr);
}

/// Checks exit 2 and `error: PATH:LINE:COL: FIELD: message`: the line is `line`, the column points
/// at a non-blank character of it, the field names `field` (dotted path, possibly with an index,
/// or the last key alone), and the message is not empty.
fn check_error(
    out: &support::proxy::Run,
    path: &str,
    text: &str,
    field: &str,
    line: usize,
) -> Result<(), String> {
    if out.status.code() != Some(2) {
        return Err(format!(
            "exit {:?}, want 2; stderr {:?}",
            out.status.code(),
            out.stderr
        ));
    }
    let prefix = format!("error: {path}:");
    let err = out
        .stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .ok_or_else(|| {
            format!(
                "no `{prefix}LINE:COL: FIELD: message` line in {:?}",
                out.stderr
            )
        })?;
    let mut parts = err[prefix.len()..].splitn(4, ':');
    let (l, c, f, msg) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").trim(),
        parts.next().unwrap_or("").trim(),
    );
    let l: usize = l
        .parse()
        .map_err(|_| format!("LINE not a number in {err:?}"))?;
    let c: usize = c
        .parse()
        .map_err(|_| format!("COL not a number in {err:?}"))?;
    if l != line {
        return Err(format!("line {l}, want {line}: {err:?}"));
    }
    let src = text.lines().nth(line - 1).unwrap_or("");
    if c == 0
        || src
            .as_bytes()
            .get(c - 1)
            .is_none_or(|b| b.is_ascii_whitespace())
    {
        return Err(format!("column {c} does not point into {src:?}: {err:?}"));
    }
    let leaf = field.rsplit('.').next().unwrap();
    if !(f == field || f.starts_with(&format!("{field}[")) || f == leaf) {
        return Err(format!("field {f:?}, want {field:?}: {err:?}"));
    }
    if msg.is_empty() {
        return Err(format!("empty message: {err:?}"));
    }
    if out.stdout.contains(": ok") {
        return Err(format!("stdout says ok: {:?}", out.stdout));
    }
    Ok(())
}

#[test]
fn check_reports_toml_syntax_errors() {
    let text = "listen = [\"127.0.0.1:0\"\nupstreams = [\"127.0.0.1:9001\"]\n";
    let file = temp_file("syntax", text);
    let path = file.path().to_string();
    let out = run(&["--config", &path, "--check"]);
    assert_eq!(out.status.code(), Some(2), "stderr {:?}", out.stderr);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with(&format!("error: {path}:"))),
        "want `error: {path}:LINE:COL: ...`, got {:?}",
        out.stderr
    );
}

#[test]
fn help_documents_every_flag() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let missing: Vec<&&str> = FLAGS.iter().filter(|f| !out.stdout.contains(**f)).collect();
    assert!(
        missing.is_empty(),
        "--help does not mention {missing:?}:\n{}",
        out.stdout
    );
}

#[test]
fn bad_flag_exits_2() {
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty());
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--header-timeout",
        "soon",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unparsable duration: stderr {:?}",
        out.stderr
    );
}

/// A cluster's `protocol`: `h1` and `h2c` pass `--check`; a value that is no protocol, `h2`
/// without the cluster's `tls`, and `h2c` with it exit 2 naming FILE:LINE:clusters[0].protocol
/// with the reason. The flag form names the flag.
#[test]
fn check_reports_cluster_protocol_errors() {
    let head = format!("{BASE}[[clusters]]\nname = \"api\"\nendpoints = [\"127.0.0.1:9002\"]\n");
    for ok in ["h1", "h2c"] {
        let file = temp_file("protocol_ok", &format!("{head}protocol = \"{ok}\"\n"));
        let out = run(&["--config", file.path(), "--check"]);
        assert_eq!(out.status.code(), Some(0), "{ok}: stderr: {}", out.stderr);
    }
    let cases = [
        ("protocol = \"http2\"\n", "not a protocol"),
        ("protocol = \"h2\"\n", "needs the cluster's tls"),
        (
            "protocol = \"h2c\"\ntls = { verify = false }\n",
            "plain TCP",
        ),
    ];
    let mut failures = Vec::new();
    for (i, (line, why)) in cases.iter().enumerate() {
        let text = format!("{head}{line}");
        let file = temp_file(&format!("protocol_{i}"), &text);
        let out = run(&["--config", file.path(), "--check"]);
        if let Err(e) = check_error(&out, file.path(), &text, "clusters[0].protocol", 7) {
            failures.push(format!("{line:?}: {e}"));
        } else if !out.stderr.contains(why) {
            failures.push(format!("{line:?}: no {why:?} in {:?}", out.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let flags = ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9001"];
    let out = run(&[&flags[..], &["--upstream-protocol", "h1", "--check"]].concat());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", out.stderr);
    for (value, why) in [("h3", "not a protocol"), ("h2", "needs the cluster's tls")] {
        let out = run(&[&flags[..], &["--upstream-protocol", value, "--check"]].concat());
        assert_eq!(out.status.code(), Some(2), "stderr: {}", out.stderr);
        assert!(
            out.stderr.contains("--upstream-protocol") && out.stderr.contains(why),
            "{value}: {}",
            out.stderr
        );
    }
}
