//! `--access-log PATH|stdout|off`: one JSON line per request whose fields hold what really happened
//! (status, bytes each way, upstream, timings, the request id the upstream got), hostile request
//! bytes kept inside their JSON strings, stdout and off targets, rotation by rename + SIGUSR1, lines
//! flushed on the shard's timer without a drain, and every line written by the end of a drain.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::admin::{log_lines, parse_log, temp_path, wait_log_lines};
use support::*;

/// The fields every line carries.
const FIELDS: [&str; 19] = [
    "time",
    "client",
    "method",
    "path",
    "protocol",
    "status",
    "bytes_in",
    "bytes_out",
    "upstream",
    "upstream_ms",
    "total_ms",
    "request_id",
    "trace_id",
    "shard",
    "route",
    "tls_version",
    "tls_cipher",
    "sni",
    "client_cert",
];

/// Answers `/status/NNN` with NNN, `/slow/...` after 150 ms, anything else 200; no body to HEAD.
fn upstream() -> Upstream {
    Upstream::start(|p| {
        p.serve(|r| {
            if r.target.starts_with("/slow/") {
                thread::sleep(ms(150));
            }
            let status = r
                .target
                .strip_prefix("/status/")
                .and_then(|s| s.parse().ok())
                .unwrap_or(200);
            if r.method == "HEAD" {
                response(status, &[("Content-Length", "11")], b"")
            } else {
                response(status, &[], b"logged body")
            }
        })
    })
}

/// One request as the client saw it.
struct Sent {
    path: String,
    method: &'static str,
    client: SocketAddr,
    bytes_in: usize,
    status: u16,
    bytes_out: usize,
    elapsed: Duration,
    request_id: Option<String>,
}

fn send(c: &mut Conn, method: &'static str, path: &str, extra: &[&str], body: &[u8]) -> Sent {
    let bytes = request(method, path, extra, body);
    let t = Instant::now();
    c.send(&bytes).unwrap();
    let r = c
        .read_response_to(method)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    Sent {
        path: path.to_string(),
        method,
        client: c.local_addr(),
        bytes_in: bytes.len(),
        status: r.status,
        bytes_out: r.head.raw.len() + r.body.len(),
        elapsed: t.elapsed(),
        request_id: None,
    }
}

/// A PUT with `Expect: 100-continue`: the body goes only after the interim 100, which counts
/// among the bytes the client received.
fn send_expecting_continue(c: &mut Conn, path: &str, body: &[u8]) -> Sent {
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: shardgate.test\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let t = Instant::now();
    c.send(head.as_bytes()).unwrap();
    let interim = c.read_response().expect("100 Continue");
    assert_eq!(interim.status, 100, "PUT {path}: {:?}", interim.head.start);
    c.send(body).unwrap();
    let r = c
        .read_response()
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
    Sent {
        path: path.to_string(),
        method: "PUT",
        client: c.local_addr(),
        bytes_in: head.len() + body.len(),
        status: r.status,
        bytes_out: interim.head.raw.len() + r.head.raw.len() + r.body.len(),
        elapsed: t.elapsed(),
        request_id: None,
    }
}

/// Lines by their `path` (each path must appear exactly once).
fn by_path(lines: &[Value]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for l in lines {
        let p = l["path"]
            .as_str()
            .unwrap_or_else(|| panic!("line without a string path: {l}"))
            .to_string();
        assert!(
            out.insert(p.clone(), l.clone()).is_none(),
            "two lines for {p}"
        );
    }
    out
}

/// Unix milliseconds of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn parse_time(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() != 24
        || &t[4..5] != "-"
        || &t[7..8] != "-"
        || &t[10..11] != "T"
        || &t[19..20] != "."
        || &t[23..] != "Z"
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss, ms) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn config_with_route(up: SocketAddr, route: &str) -> String {
    format!(
        "listen = [\"127.0.0.1:0\"]\n\n[[clusters]]\nname = \"backend\"\nendpoints = [\"{up}\"]\n\n\
         [[routes]]\nname = \"{route}\"\ncluster = \"backend\"\n"
    )
}

#[test]
fn each_request_gives_one_line_with_every_field_right() {
    let up = upstream();
    let log = temp_path("access", "log");
    let cfg = temp_file("access-cfg", &config_with_route(up.addr, "api-v1"));
    let proxy = Proxy::start(&[
        "--config",
        cfg.path(),
        "--shards",
        "2",
        "--access-log",
        log.path(),
    ]);
    let start = SystemTime::now();

    let mut a = proxy.connect();
    let mut sent = vec![
        send(&mut a, "GET", "/first?x=1", &[], b""),
        send(
            &mut a,
            "POST",
            "/submit",
            &["Content-Type: text/plain"],
            b"hello=world&n=12345",
        ),
        send(&mut a, "GET", "/status/404", &[], b""),
        send(&mut a, "GET", "/slow/1", &[], b""),
        send(
            &mut a,
            "GET",
            "/mine",
            &["X-Request-Id: chosen-by-the-client-7"],
            b"",
        ),
    ];
    sent[4].request_id = Some("chosen-by-the-client-7".into());
    sent.push(send_expecting_continue(
        &mut a,
        "/continued",
        b"the body after 100",
    ));
    let mut b = proxy.connect();
    sent.push(send(&mut b, "HEAD", "/head-only", &[], b""));
    sent.push(send(&mut b, "GET", "/status/500", &[], b""));

    let lines = wait_log_lines(&log.0, sent.len(), ms(3000));
    assert_eq!(lines.len(), sent.len(), "one line per request: {lines:#?}");
    let lines = by_path(&lines);
    let seen = up.seen();
    let now = SystemTime::now();
    let mut shards_of_conn: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    for s in &sent {
        let l = lines
            .get(&s.path)
            .unwrap_or_else(|| panic!("no line for {}: {lines:#?}", s.path));
        let ctx = format!("{} {}: {l}", s.method, s.path);
        for f in FIELDS {
            assert!(l.get(f).is_some(), "{ctx}: no field {f}");
        }
        let t = l["time"].as_str().and_then(parse_time);
        let t = t.unwrap_or_else(|| panic!("{ctx}: time is not YYYY-MM-DDTHH:MM:SS.mmmZ"));
        assert!(
            t >= unix_ms(start) - 1000 && t <= unix_ms(now) + 1000,
            "{ctx}: time is not the time of the request"
        );
        assert_eq!(
            l["client"].as_str(),
            Some(s.client.to_string().as_str()),
            "{ctx}: client"
        );
        assert_eq!(l["method"].as_str(), Some(s.method), "{ctx}: method");
        assert_eq!(l["protocol"].as_str(), Some("HTTP/1.1"), "{ctx}: protocol");
        assert_eq!(l["status"].as_u64(), Some(s.status as u64), "{ctx}: status");
        assert_eq!(
            l["bytes_in"].as_u64(),
            Some(s.bytes_in as u64),
            "{ctx}: bytes_in = the bytes the client sent"
        );
        assert_eq!(
            l["bytes_out"].as_u64(),
            Some(s.bytes_out as u64),
            "{ctx}: bytes_out = the bytes the client received"
        );
        assert_eq!(
            l["upstream"].as_str(),
            Some(up.addr.to_string().as_str()),
            "{ctx}: upstream"
        );
        let upstream_ms = l["upstream_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("{ctx}: upstream_ms"));
        let total_ms = l["total_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("{ctx}: total_ms"));
        let client_ms = s.elapsed.as_secs_f64() * 1000.0;
        assert!(
            0.0 <= upstream_ms && upstream_ms <= total_ms && total_ms <= client_ms + 5.0,
            "{ctx}: want 0 <= upstream_ms <= total_ms <= the client's {client_ms:.3} ms"
        );
        if s.path.starts_with("/slow/") {
            // The clock starts when the proxy sees its write complete, which on a loaded machine
            // can come a little after the upstream already read the request and began its 150 ms.
            assert!(
                upstream_ms >= 140.0,
                "{ctx}: the upstream took 150 ms to answer"
            );
        }
        let received = seen
            .requests
            .iter()
            .find(|r| r.target == s.path)
            .unwrap_or_else(|| panic!("{ctx}: the upstream never got it"));
        let upstream_id = received.header("x-request-id");
        assert!(
            upstream_id.is_some_and(|id| !id.is_empty()),
            "{ctx}: no X-Request-Id upstream"
        );
        assert_eq!(
            l["request_id"].as_str(),
            upstream_id,
            "{ctx}: request_id = the X-Request-Id the upstream received"
        );
        if let Some(chosen) = &s.request_id {
            assert_eq!(
                upstream_id,
                Some(chosen.as_str()),
                "{ctx}: the client's id is kept"
            );
        }
        assert!(l["trace_id"].is_null(), "{ctx}: no trace, trace_id null");
        let shard = l["shard"]
            .as_u64()
            .unwrap_or_else(|| panic!("{ctx}: shard"));
        assert!(shard < 2, "{ctx}: shard of 2");
        let first = *shards_of_conn.entry(s.client).or_insert(shard);
        assert_eq!(shard, first, "{ctx}: one connection is served by one shard");
        assert_eq!(l["route"].as_str(), Some("api-v1"), "{ctx}: route");
    }
    let ids: std::collections::BTreeSet<&str> = lines
        .values()
        .filter_map(|l| l["request_id"].as_str())
        .collect();
    assert_eq!(ids.len(), sent.len(), "request ids are unique");
}

#[test]
fn hostile_bytes_stay_inside_their_json_strings() {
    let up = upstream();
    let log = temp_path("access-hostile", "log");
    let proxy = Proxy::to(&[up.addr], &["--access-log", log.path()]);
    let paths: [(&[u8], &str); 6] = [
        (b"/q\"uote", "/q\"uote"),
        (b"/back\\slash\\", "/back\\slash\\"),
        (b"/pct%22%5C%0A%00", "/pct%22%5C%0A%00"),
        (b"/caf\xc3\xa9/\xe2\x82\xac", "/caf\u{e9}/\u{20ac}"),
        (
            b"/\"},\"status\":999,\"x\":\"",
            "/\"},\"status\":999,\"x\":\"",
        ),
        (b"/{}|^`'<>", "/{}|^`'<>"),
    ];
    let mut c = proxy.connect();
    for (raw, _) in &paths {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(raw);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: shardgate.test\r\n\r\n");
        let r = c.exchange(&req);
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(raw));
    }
    let hostile_id = "id\"with\\quote\"},\"x\":\"";
    let r = c.exchange(&request(
        "GET",
        "/hostile-id",
        &[&format!("X-Request-Id: {hostile_id}")],
        b"",
    ));
    assert_eq!(r.status, 200);

    let lines = wait_log_lines(&log.0, paths.len() + 1, ms(3000));
    assert_eq!(
        lines.len(),
        paths.len() + 1,
        "one line per request: {lines:#?}"
    );
    let lines = by_path(&lines);
    for (raw, want) in &paths {
        let l = lines
            .get(*want)
            .unwrap_or_else(|| panic!("no line whose path is {want:?}: {lines:#?}"));
        assert_eq!(l["status"].as_u64(), Some(200), "{want:?}: {l}");
        assert_eq!(
            l.as_object().unwrap().len(),
            FIELDS.len(),
            "{want:?}: the path added fields: {l}"
        );
        assert!(
            up.seen()
                .requests
                .iter()
                .any(|r| r.target.as_bytes() == *raw),
            "{want:?}: the upstream got the same target"
        );
    }
    assert_eq!(
        lines["/hostile-id"]["request_id"].as_str(),
        Some(hostile_id)
    );
}

#[test]
fn refused_requests_leave_a_line_with_their_status() {
    let up = upstream();
    let log = temp_path("access-refused", "log");
    let proxy = Proxy::to(&[up.addr], &["--access-log", log.path()]);
    let mut c = proxy.connect();
    c.send(b"GET /two-hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .unwrap();
    let r = c.read_response().expect("a 400");
    assert_eq!(r.status, 400);
    let mut c = proxy.connect();
    let big = format!("X-Big: {}", "b".repeat(20_000));
    c.send(&request("GET", "/too-big", &[&big], b"")).unwrap();
    let r = c.read_response().expect("a 431");
    assert_eq!(r.status, 431);
    let lines = wait_log_lines(&log.0, 2, ms(3000));
    let statuses: Vec<u64> = lines.iter().filter_map(|l| l["status"].as_u64()).collect();
    assert!(
        statuses.contains(&400) && statuses.contains(&431),
        "lines {lines:#?}"
    );
    assert!(
        lines.iter().all(|l| l["protocol"] == "HTTP/1.1"),
        "{lines:#?}"
    );
    assert_eq!(up.request_count(), 0);
}

#[test]
fn stdout_target_writes_the_lines_to_stdout() {
    let up = upstream();
    let proxy = Proxy::to(&[up.addr], &["--access-log", "stdout", "--shards", "2"]);
    let mut c = proxy.connect();
    for p in ["/to-stdout/1", "/to-stdout/2"] {
        assert_eq!(c.exchange(&get(p)).status, 200);
    }
    for p in ["/to-stdout/1", "/to-stdout/2"] {
        let want = format!("\"path\":\"{p}\"");
        let line = proxy
            .stdout
            .wait(ms(3000), |l| l.contains(&want))
            .unwrap_or_else(|| panic!("no stdout line for {p}: {:?}", proxy.stdout.all()));
        let v = parse_log(format!("{line}\n").as_bytes(), "stdout");
        assert_eq!(v[0]["status"].as_u64(), Some(200), "{line}");
    }
    let json: Vec<String> = proxy
        .stdout
        .all()
        .into_iter()
        .filter(|l| l.starts_with('{'))
        .collect();
    assert_eq!(json.len(), 2, "one line per request: {json:?}");
    assert!(
        !Path::new("stdout").exists(),
        "`stdout` was taken for a file name"
    );
}

#[test]
fn off_and_the_default_write_no_line() {
    let up = upstream();
    for how in [&["--access-log", "off"][..], &[][..]] {
        let mut proxy = Proxy::to(&[up.addr], how);
        let mut c = proxy.connect();
        for i in 0..3 {
            assert_eq!(c.exchange(&get(&format!("/unlogged/{i}"))).status, 200);
        }
        drop(c);
        proxy.sigterm();
        let st = proxy.wait_exit(ms(5000)).expect("exit after the drain");
        assert_eq!(st.code(), Some(0));
        proxy.stdout.wait_end(ms(2000));
        let out = proxy.stdout.all();
        assert!(
            !out.iter().any(|l| l.contains("unlogged")),
            "{how:?}: request lines on stdout: {out:?}"
        );
        let err = proxy.stderr_lines();
        assert!(
            !err.iter().any(|l| l.contains("unlogged")),
            "{how:?}: request lines on stderr: {err:?}"
        );
    }
    assert!(
        !Path::new("off").exists(),
        "`off` was taken for a file name"
    );
}

fn paths_in(path: &Path) -> Vec<String> {
    log_lines(path)
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until `want` appears in one of `files`; which one.
fn landed(files: &[&Path], want: &str, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        for (i, f) in files.iter().enumerate() {
            if paths_in(f).iter().any(|p| p == want) {
                return i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no line for {want} in {files:?} after {within:?}"
        );
        thread::sleep(ms(20));
    }
}

#[test]
fn rename_then_sigusr1_rotates_the_file() {
    let up = upstream();
    let log = temp_path("access-rotate", "log");
    let rotated = temp_path("access-rotate", "log.1");
    let proxy = Proxy::to(&[up.addr], &["--access-log", log.path(), "--shards", "2"]);
    let mut c = proxy.connect();
    for p in ["/old/1", "/old/2"] {
        assert_eq!(c.exchange(&get(p)).status, 200);
    }
    wait_log_lines(&log.0, 2, ms(3000));
    std::fs::rename(&log.0, &rotated.0).unwrap();

    // Until the signal the writer keeps its open file: the line follows the rename.
    assert_eq!(c.exchange(&get("/old/3")).status, 200);
    assert_eq!(landed(&[&rotated.0], "/old/3", ms(3000)), 0);
    assert!(!log.0.exists(), "a new file appeared without SIGUSR1");

    sys::signal(proxy.pid(), libc::SIGUSR1);
    // The reopen is asynchronous: requests sent right after the signal may still land in the
    // old file; within a bounded number, one lands in a new file at the original path.
    let mut after = Vec::new();
    let mut in_new = None;
    for i in 0..10 {
        let p = format!("/new/{i}");
        assert_eq!(c.exchange(&get(&p)).status, 200);
        after.push(p.clone());
        if landed(&[&rotated.0, &log.0], &p, ms(3000)) == 1 {
            in_new = Some(i);
            break;
        }
    }
    let first_new =
        in_new.expect("no request after SIGUSR1 reached a new file at the original path");
    assert!(
        first_new < 5,
        "the reopen took effect only after {first_new} requests"
    );
    assert_eq!(c.exchange(&get("/new/last")).status, 200);
    after.push("/new/last".into());
    assert_eq!(landed(&[&rotated.0, &log.0], "/new/last", ms(3000)), 1);

    let old = paths_in(&rotated.0);
    let new = paths_in(&log.0);
    assert_eq!(
        &old[..3],
        ["/old/1", "/old/2", "/old/3"],
        "the renamed file keeps the old lines"
    );
    assert!(
        old[3..].iter().all(|p| p.starts_with("/new/"))
            && new.iter().all(|p| p.starts_with("/new/")),
        "old: {old:?}, new: {new:?}"
    );
    let mut all: Vec<&String> = old[3..].iter().chain(&new).collect();
    all.sort();
    let mut want: Vec<&String> = after.iter().collect();
    want.sort();
    assert_eq!(
        all, want,
        "every request after the signal logged exactly once"
    );
}

#[test]
fn lines_reach_the_file_on_a_timer_without_a_drain() {
    let up = upstream();
    let log = temp_path("access-timer", "log");
    let mut proxy = Proxy::to(&[up.addr], &["--access-log", log.path()]);
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&get("/one-line")).status, 200);
    let t = Instant::now();
    // One short line is far from filling a buffer: only the shard's timer can flush it.
    let lines = wait_log_lines(&log.0, 1, ms(2000));
    assert_eq!(lines[0]["path"].as_str(), Some("/one-line"));
    assert!(
        proxy.wait_exit(ms(0)).is_none(),
        "the proxy is still running: no drain flushed it"
    );
    eprintln!("line on disk {:?} after the response", t.elapsed());
}

#[test]
fn every_line_is_written_by_the_end_of_a_drain() {
    let up = upstream();
    let log = temp_path("access-drain", "log");
    let mut proxy = Proxy::to(&[up.addr], &["--access-log", log.path(), "--shards", "2"]);
    let addr = proxy.addr;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            thread::spawn(move || {
                let mut c = Conn::connect(addr);
                for i in 0..50 {
                    let r = c.exchange(&get(&format!("/drained/{w}/{i}")));
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    proxy.sigterm();
    let st = proxy.wait_exit(ms(5000)).expect("exit after the drain");
    assert_eq!(st.code(), Some(0));
    let lines = log_lines(&log.0);
    assert_eq!(lines.len(), 200, "200 requests, {} lines", lines.len());
    let paths = by_path(&lines);
    for w in 0..4 {
        for i in 0..50 {
            assert!(
                paths.contains_key(&format!("/drained/{w}/{i}")),
                "/drained/{w}/{i}"
            );
        }
    }
}
