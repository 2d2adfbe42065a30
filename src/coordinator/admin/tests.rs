//! Admin listener tests: the real thread on 127.0.0.1:0, a fake coordinator thread answering
//! calls, and raw requests over std `TcpStream`s.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::*;

const QUICK: Limits = Limits {
    io: Duration::from_millis(300),
    call: Duration::from_millis(300),
};

struct Admin {
    addr: SocketAddr,
    thread: JoinHandle<()>,
    /// A clone of the listener, for `stop`.
    listener: TcpListener,
}

fn start(calls: Sender<AdminCall>) -> Admin {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let clone = listener.try_clone().unwrap();
    let thread = spawn_with(
        listener,
        calls,
        QUICK,
        TokenSlot::default(),
        Default::default(),
    )
    .unwrap();
    Admin {
        addr,
        thread,
        listener: clone,
    }
}

/// A coordinator that answers every call with the ask's name (202 for a drain); returns how many
/// calls it answered once the admin side hangs up.
fn coordinator(calls: Receiver<AdminCall>) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut n = 0;
        for call in calls {
            let reply = match call.ask {
                Ask::Drain => Reply::text(202, "Drain\n"),
                Ask::Metrics => Reply::metrics("shardgate_up 1\n".into()),
                Ask::Config => Reply::json(200, "{\"shards\":2}"),
                ask => Reply::text(200, format!("{ask:?}\n")),
            };
            call.reply.send(reply).unwrap();
            n += 1;
        }
        n
    })
}

fn with_coordinator() -> (Admin, JoinHandle<usize>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (start(tx), coordinator(rx))
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        let h = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        h.map(|(_, v)| v.as_str())
    }
}

/// Sends raw bytes, reads until the admin closes, parses the response.
fn send(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw).unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(&bytes).unwrap() {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("partial response: {bytes:?}"),
    };
    Response {
        status: resp.code.unwrap(),
        headers: (resp.headers.iter())
            .map(|h| (h.name.into(), String::from_utf8(h.value.into()).unwrap()))
            .collect(),
        body: String::from_utf8(bytes[n..].to_vec()).unwrap(),
    }
}

fn get(addr: SocketAddr, method: &str, path: &str) -> Response {
    send(
        addr,
        format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n\r\n").as_bytes(),
    )
}

fn stopped(admin: Admin) {
    stop(&admin.listener).unwrap();
    admin.thread.join().unwrap();
}

#[test]
fn every_path_is_asked_of_the_coordinator() {
    let (admin, coord) = with_coordinator();
    let cases = [
        ("GET", "/healthz", 200, "Healthz\n"),
        ("GET", "/readyz", 200, "Readyz\n"),
        ("GET", "/metrics", 200, "shardgate_up 1\n"),
        ("GET", "/config", 200, "{\"shards\":2}"),
        ("GET", "/shards", 200, "Shards\n"),
        ("GET", "/stats.json", 200, "StatsJson\n"),
        ("POST", "/drain", 202, "Drain\n"),
        ("POST", "/reload", 200, "Reload\n"),
        ("GET", "/readyz?verbose=1", 200, "Readyz\n"),
    ];
    for (method, path, status, body) in cases {
        let r = get(admin.addr, method, path);
        assert_eq!(
            (r.status, r.body.as_str()),
            (status, body),
            "{method} {path}"
        );
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(r.header("connection"), Some("close"));
    }
    let m = get(admin.addr, "GET", "/metrics");
    let ct = m.header("content-type").unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert_eq!(
        get(admin.addr, "GET", "/config").header("content-type"),
        Some("application/json")
    );
    stopped(admin);
    assert_eq!(coord.join().unwrap(), cases.len() + 2);
}

#[test]
fn head_has_headers_but_no_body() {
    let (admin, _coord) = with_coordinator();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/config",
        "/shards",
        "/stats.json",
    ] {
        let full = get(admin.addr, "GET", path);
        let head = get(admin.addr, "HEAD", path);
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(head.body, "", "{path}");
        assert_eq!(head.header("content-length"), full.header("content-length"));
    }
    let refused = get(admin.addr, "HEAD", "/drain");
    assert_eq!((refused.status, refused.body.as_str()), (405, ""));
    stopped(admin);
}

#[test]
fn the_status_page_is_served_without_asking_the_coordinator() {
    let (admin, coord) = with_coordinator();
    let r = get(admin.addr, "GET", "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.body, super::page::PAGE);
    let head = get(admin.addr, "HEAD", "/?x=1");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    stopped(admin);
    assert_eq!(coord.join().unwrap(), 0);
}

#[test]
fn unknown_paths_are_404_and_reach_no_one() {
    let (admin, coord) = with_coordinator();
    for (method, path) in [
        ("GET", "/index.html"),
        ("GET", "/healthz/x"),
        ("POST", "/nope"),
        ("GET", "/Metrics"),
    ] {
        assert_eq!(get(admin.addr, method, path).status, 404, "{method} {path}");
    }
    stopped(admin);
    assert_eq!(coord.join().unwrap(), 0);
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let (admin, coord) = with_coordinator();
    let cases = [
        ("POST", "/healthz", "GET, HEAD"),
        ("PUT", "/metrics", "GET, HEAD"),
        ("DELETE", "/config", "GET, HEAD"),
        ("GET", "/drain", "POST"),
        ("GET", "/reload", "POST"),
        ("POST", "/", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let r = get(admin.addr, method, path);
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    stopped(admin);
    assert_eq!(coord.join().unwrap(), 0);
}

#[test]
fn malformed_requests_are_400_and_huge_heads_431() {
    let (admin, coord) = with_coordinator();
    let bad: [&[u8]; 4] = [
        b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\n\r\n",
        b"\x01\x02 / HTTP/1.1\r\n\r\n",
        b"GET /he\x7flthz HTTP/1.1\r\n\r\n",
    ];
    for raw in bad {
        assert_eq!(send(admin.addr, raw).status, 400, "{raw:?}");
    }
    let mut huge = b"GET /healthz HTTP/1.1\r\nX: ".to_vec();
    huge.resize(MAX_HEAD + 100, b'a');
    assert_eq!(send(admin.addr, &huge).status, 431);
    let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
    let r = send(
        admin.addr,
        format!("GET /healthz HTTP/1.1\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(r.status, 431);
    stopped(admin);
    assert_eq!(coord.join().unwrap(), 0);
}

#[test]
fn a_request_body_does_not_reset_the_response() {
    let (admin, _coord) = with_coordinator();
    let body = "x".repeat(20_000);
    let raw = format!(
        "POST /drain HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = send(admin.addr, raw.as_bytes());
    assert_eq!((r.status, r.body.as_str()), (202, "Drain\n"));
    stopped(admin);
}

#[test]
fn a_slow_coordinator_gets_503_busy() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let admin = start(tx);
    let r = get(admin.addr, "GET", "/healthz");
    assert_eq!((r.status, r.body.as_str()), (503, "coordinator busy\n"));
    // The call was delivered; answering it late goes nowhere and harms nothing.
    let late = rx.try_recv().unwrap();
    let _ = late.reply.send(Reply::text(200, "late"));
    stopped(admin);
}

#[test]
fn a_silent_client_does_not_block_the_next() {
    let (admin, _coord) = with_coordinator();
    let _silent = TcpStream::connect(admin.addr).unwrap();
    let started = Instant::now();
    assert_eq!(get(admin.addr, "GET", "/healthz").status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    stopped(admin);
}

#[test]
fn the_thread_ends_when_the_coordinator_is_gone() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let admin = start(tx);
    drop(rx);
    let r = get(admin.addr, "GET", "/metrics");
    assert_eq!((r.status, r.body.as_str()), (503, "coordinator gone\n"));
    let deadline = Instant::now() + Duration::from_secs(2);
    while !admin.thread.is_finished() {
        assert!(Instant::now() < deadline, "admin thread still running");
        std::thread::sleep(Duration::from_millis(10));
    }
    admin.thread.join().unwrap();
}

#[test]
fn stop_ends_an_idle_thread() {
    let (admin, coord) = with_coordinator();
    let started = Instant::now();
    stopped(admin);
    assert!(started.elapsed() < Duration::from_secs(1));
    // The admin thread dropped its sender: the coordinator sees the channel close.
    assert_eq!(coord.join().unwrap(), 0);
}
