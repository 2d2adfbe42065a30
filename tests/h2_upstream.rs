//! HTTP/2 to upstreams (`protocol = "h2c"`/`"h2"`, `--upstream-protocol`) against real servers:
//! nginx (`listen … http2`: h2c with prior knowledge, and with `ssl` h2 over TLS) reached by curl
//! over HTTP/1.1 and over HTTP/2 with prior knowledge, a 1 MiB body through, a 64 MiB response
//! read slowly without the proxy's memory growing; and a scripted upstream on the Python `h2`
//! package (tests/h2_upstream/upstream.py) for what nginx cannot be told to do: Host ↔
//! `:authority` and connection-specific fields, trailers both ways for both client kinds, large
//! bodies echoed both ways, SETTINGS_MAX_CONCURRENT_STREAMS = 1 (a second connection, then the
//! wait and the 503 at the connection cap), GOAWAY mid-flight, REFUSED_STREAM (a POST resent).
//! scripts/test.sh installs nginx, curl and the Python `h2` package.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::admin::scrape;
use support::certs::Certs;
use support::*;

// === the scripted upstream ===

/// tests/h2_upstream/upstream.py on 127.0.0.1; killed when dropped.
struct PyUp {
    child: Child,
    addr: SocketAddr,
}

impl PyUp {
    fn start(args: &[&str]) -> PyUp {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_upstream/upstream.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("upstream.py said {line:?}: is the h2 package installed (pip install h2)?")
            });
        PyUp {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// What the upstream counted (connections, most streams open at once, requests per path),
    /// asked over its own h2c (curl with prior knowledge, straight to it).
    fn stats(&self) -> Value {
        let (status, body) = curl_h2c_direct(self.addr, "/stats");
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for PyUp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl_h2c_direct(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl");
    split_status(&out.stdout)
}

fn split_status(out: &[u8]) -> (u16, Vec<u8>) {
    let cut = out.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let status = String::from_utf8_lossy(&out[cut..])
        .trim()
        .parse()
        .unwrap_or(0);
    (status, out[..cut].to_vec())
}

// === nginx ===

/// An nginx serving h2c (`listen … http2`) or h2 over TLS (`ssl http2`) from a temp dir: `/` is
/// "ok", `/1m` and `/64m` are files of that many MiB (a byte pattern). Stopped when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

/// nginx from PATH, else where Debian puts it (/usr/sbin is not on every user's PATH).
fn nginx_bin() -> &'static str {
    let on_path = Command::new("nginx").arg("-v").output().is_ok();
    if on_path {
        "nginx"
    } else {
        "/usr/sbin/nginx"
    }
}

/// A port for nginx (which binds what it is told): below the ephemeral range, where no outgoing
/// connection or TIME-WAIT of other work on the machine holds it, and free when checked.
fn free_port() -> u16 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut x = (u64::from(std::process::id()) << 20) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    loop {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20000 + (x >> 33) as u16 % 12000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The byte pattern of the served files: byte i is `i * 7 % 251`.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

impl Nginx {
    /// `tls`: (certificate, key) files for `ssl http2`.
    fn start(tag: &str, tls: Option<(&str, &str)>) -> Nginx {
        let dir = std::env::temp_dir().join(format!("sg-h2up-nginx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/1m"), pattern(1 << 20)).unwrap();
        std::fs::write(dir.join("www/64m"), pattern(64 << 20)).unwrap();
        let port = free_port();
        let (listen, ssl) = match tls {
            Some((cert, key)) => (
                "ssl http2",
                format!("ssl_certificate {cert}; ssl_certificate_key {key};"),
            ),
            None => ("http2", String::new()),
        };
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             server {{\n  listen 127.0.0.1:{port} {listen};\n  {ssl}\n  root {d}/www;\n\
             location ~ \"^/[0-9]+m$\" {{ }}\n\
             location / {{ add_header x-saw-host $host; return 200 \"ok\"; }}\n }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx_bin())
            .args(["-p", &d.to_string(), "-e", &format!("{d}/error.log")])
            .args(["-c", &format!("{d}/nginx.conf")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx (scripts/test.sh installs it)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, addr, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// === clients ===

/// curl through the proxy: (status, body); `h2`: HTTP/2 with prior knowledge, else HTTP/1.1.
fn curl(proxy: &Proxy, path: &str, h2: bool, extra: &[&str]) -> (u16, Vec<u8>) {
    let version = if h2 {
        "--http2-prior-knowledge"
    } else {
        "--http1.1"
    };
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", version, "-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("http://{}{path}", proxy.addr))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    split_status(&out.stdout)
}

/// A proxy with an h2c listener in front of `up` spoken to as `protocol`.
fn proxy_to(up: SocketAddr, protocol: &str, extra: &[&str]) -> Proxy {
    let mut args = vec!["--h2c", "--upstream-protocol", protocol, "--shards", "1"];
    args.extend_from_slice(extra);
    Proxy::to(&[up], &args)
}

#[test]
fn curl_over_http1_and_h2_reaches_an_h2c_nginx() {
    let nginx = Nginx::start("h2c", None);
    let proxy = proxy_to(nginx.addr, "h2c", &[]);
    for h2 in [false, true] {
        let (status, body) = curl(&proxy, "/", h2, &[]);
        assert_eq!((status, &body[..]), (200, &b"ok"[..]), "h2 client: {h2}");
        let (status, body) = curl(&proxy, "/1m", h2, &[]);
        assert_eq!(status, 200, "h2 client: {h2}");
        assert!(body == pattern(1 << 20), "1 MiB through, h2 client: {h2}");
    }
    // nginx saw the client's Host as :authority.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Host: example.test",
        ])
        .arg(format!("http://{}/", proxy.addr))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("x-saw-host: example.test"), "{head}");
}

#[test]
fn h2_over_tls_with_alpn_reaches_an_ssl_nginx() {
    let certs = Certs::new("h2up-tls");
    let leaf = certs.leaf("upstream", &["localhost", "127.0.0.1"]);
    let nginx = Nginx::start("tls", Some((leaf.cert(), leaf.key())));
    let proxy = proxy_to(nginx.addr, "h2", &["--upstream-ca", certs.ca()]);
    for h2 in [false, true] {
        let (status, body) = curl(&proxy, "/1m", h2, &[]);
        assert_eq!(status, 200, "h2 client: {h2}");
        assert!(
            body == pattern(1 << 20),
            "1 MiB through TLS, h2 client: {h2}"
        );
    }
}

/// An upstream whose TLS does not select ALPN h2 (an HTTP/1.1-only TLS nginx) is refused: 502,
/// counted as a TLS handshake failure, never spoken to as HTTP/1.1.
#[test]
fn an_upstream_that_does_not_select_h2_is_refused() {
    let certs = Certs::new("h2up-noalpn");
    let leaf = certs.leaf("upstream", &["localhost", "127.0.0.1"]);
    let nginx = Nginx::start_http1_tls("noalpn", leaf.cert(), leaf.key());
    let proxy = proxy_to(nginx.addr, "h2", &["--upstream-ca", certs.ca()]);
    let (status, _) = curl(&proxy, "/", false, &[]);
    assert_eq!(status, 502);
}

impl Nginx {
    /// An HTTP/1.1-only TLS nginx (no `http2` on its listener: ALPN selects http/1.1).
    fn start_http1_tls(tag: &str, cert: &str, key: &str) -> Nginx {
        let dir = std::env::temp_dir().join(format!("sg-h2up-nginx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {cert};\n\
             ssl_certificate_key {key};\n  location / {{ return 200 \"ok\"; }}\n }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx_bin())
            .args(["-p", &d.to_string(), "-e", &format!("{d}/error.log")])
            .args(["-c", &format!("{d}/nginx.conf")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, addr, dir }
    }
}

type Fields = Vec<(String, String)>;

/// What /info reported, as (headers, body length, trailers).
fn info(body: &[u8]) -> (Fields, u64, Fields) {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "not /info's JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    });
    let pairs = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    (
        pairs(&v["headers"]),
        v["length"].as_u64().unwrap(),
        pairs(&v["trailers"]),
    )
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Host becomes :authority; Connection, Keep-Alive, Proxy-Connection, Upgrade and `te` other
/// than `trailers` never reach an HTTP/2 upstream; `te: trailers` does.
#[test]
fn host_becomes_authority_and_connection_fields_are_dropped() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let mut c = proxy.connect();
    let r = c.exchange(
        b"GET /info HTTP/1.1\r\nHost: api.test\r\nConnection: keep-alive, x-hop\r\n\
          Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
          X-Custom: 1\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (h, len, _) = info(&r.body);
    assert_eq!(header(&h, ":authority"), Some("api.test"));
    assert_eq!(header(&h, ":scheme"), Some("http"));
    assert_eq!(header(&h, ":method"), Some("GET"));
    assert_eq!(header(&h, ":path"), Some("/info"));
    assert_eq!(header(&h, "te"), Some("trailers"));
    assert_eq!(header(&h, "x-custom"), Some("1"));
    for n in [
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
    ] {
        assert_eq!(header(&h, n), None, "{n} reached the upstream");
    }
    assert_eq!(len, 0);
    // The connection is kept for the next request (and so is the upstream's).
    let r = c.exchange(b"GET /info HTTP/1.1\r\nHost: api.test\r\nTE: gzip\r\n\r\n");
    assert_eq!(r.status, 200);
    let (h, _, _) = info(&r.body);
    assert_eq!(header(&h, "te"), None, "te other than trailers is dropped");
    assert_eq!(
        up.stats()["connections"],
        1 + 1,
        "one upstream connection (+ the stats one)"
    );
}

/// A chunked HTTP/1.1 request with trailers reaches the upstream as DATA and HTTP/2 trailers;
/// the upstream's trailers come back to the HTTP/1.1 client as chunked trailers (the response
/// has no content-length, so it is sent chunked).
#[test]
fn trailers_both_ways_for_an_http1_client() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let mut c = proxy.connect();
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\nX-Client-Sum: 42\r\n\r\n",
    )
    .unwrap();
    c.set_timeout(Duration::from_secs(10));
    let head = c.read_head().unwrap();
    assert!(head.start.starts_with("HTTP/1.1 200"), "{}", head.start);
    assert!(
        head.has_token("transfer-encoding", "chunked"),
        "{:?}",
        head.headers
    );
    let raw = read_chunked_raw(&mut c);
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.starts_with("b\r\nhello world\r\n0\r\n"), "{text:?}");
    assert!(text.contains("x-client-sum: 42\r\n"), "{text:?}");
    assert!(text.contains("x-upstream-trailer: yes\r\n"), "{text:?}");
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
}

/// Reads a chunked body verbatim up to and including the final CRLF after the trailers.
fn read_chunked_raw(c: &mut Conn) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    loop {
        let (bytes, _) = c.read_for(Duration::from_millis(100));
        got.extend_from_slice(&bytes);
        if let Some(i) = find(&got, b"\r\n0\r\n").or(got.starts_with(b"0\r\n").then_some(0)) {
            if find(&got[i..], b"\r\n\r\n").is_some() {
                return got;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no chunked end in {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// An HTTP/2 client's request trailers reach the upstream and the upstream's come back, through
/// the Python h2 client (tests/h2_upstream/client.py).
#[test]
fn trailers_both_ways_for_an_http2_client() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_upstream/client.py");
    let out = Command::new("python3")
        .args([script, "trailers", &proxy.addr.port().to_string(), "/echo"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "hello world");
    let t = v["trailers"].as_object().unwrap();
    assert_eq!(t["x-client-sum"], "42", "{v}");
    assert_eq!(t["x-upstream-trailer"], "yes", "{v}");
}

/// A 1 MiB body up and back down (echoed), for both client kinds: byte for byte.
#[test]
fn a_large_body_both_ways() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let body = pattern((1 << 20) + 123);
    let file = temp_path_bytes("h2up-large", &body);
    for h2 in [false, true] {
        let (status, got) = curl(
            &proxy,
            "/echo",
            h2,
            &[
                "--data-binary",
                &format!("@{}", file.display()),
                "-H",
                "content-type: x/y",
            ],
        );
        assert_eq!(status, 200, "h2 client: {h2}");
        assert!(
            got == body,
            "echo of {} bytes came back as {} (h2 client: {h2})",
            body.len(),
            got.len()
        );
    }
    let _ = std::fs::remove_file(file);
}

fn temp_path_bytes(tag: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sg-{tag}-{}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// SETTINGS_MAX_CONCURRENT_STREAMS = 1: two requests at once take two connections, each with one
/// stream; with the endpoint capped at one connection and no queue, the second gets 503; with a
/// queue it waits for the first and succeeds.
#[test]
fn max_concurrent_streams_opens_another_connection_then_queues() {
    let up = PyUp::start(&["--max-streams", "1"]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    // Settle the first connection (its SETTINGS known) before the concurrent pair.
    assert_eq!(curl(&proxy, "/sleep/1", false, &[]).0, 200);
    let both = concurrently(&proxy, &["/sleep/600", "/sleep/600"]);
    assert_eq!(both, vec![200, 200]);
    let s = up.stats();
    assert_eq!(s["max_open"], 1, "never two streams on one connection: {s}");
    assert_eq!(
        s["connections"],
        2 + 1,
        "a second connection (+ the stats one): {s}"
    );

    let up = PyUp::start(&["--max-streams", "1"]);
    let capped = ["--max-upstream-connections", "1", "--upstream-queue", "0"];
    let proxy = proxy_to(up.addr, "h2c", &capped);
    assert_eq!(curl(&proxy, "/sleep/1", false, &[]).0, 200);
    let mut got = concurrently(&proxy, &["/sleep/800", "/sleep/800"]);
    got.sort();
    assert_eq!(
        got,
        vec![200, 503],
        "the second finds the only connection full"
    );

    let up = PyUp::start(&["--max-streams", "1"]);
    let queued = ["--max-upstream-connections", "1", "--upstream-queue", "4"];
    let proxy = proxy_to(up.addr, "h2c", &queued);
    assert_eq!(curl(&proxy, "/sleep/1", false, &[]).0, 200);
    let got = concurrently(&proxy, &["/sleep/300", "/sleep/300"]);
    assert_eq!(got, vec![200, 200], "the second waits for the stream");
    assert_eq!(up.stats()["connections"], 1 + 1);
}

/// Starts one HTTP/1.1 request per path at once (the second 100 ms after the first), each on
/// its own connection; their statuses, in order.
fn concurrently(proxy: &Proxy, paths: &[&str]) -> Vec<u16> {
    let addr = proxy.addr;
    let handles: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p = p.to_string();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(100 * i as u64));
                let mut c = Conn::connect(addr);
                c.set_timeout(Duration::from_secs(10));
                let r = c.exchange(format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                r.status
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// A GOAWAY while a stream is in flight: that stream still finishes; new requests go to a new
/// connection.
#[test]
fn goaway_lets_in_flight_finish_and_moves_new_requests() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    assert_eq!(curl(&proxy, "/sleep/1", false, &[]).0, 200);
    let got = concurrently(&proxy, &["/sleep/700", "/goaway"]);
    assert_eq!(got, vec![200, 200], "in-flight finished after the GOAWAY");
    let (status, _) = curl(&proxy, "/info", false, &[]);
    assert_eq!(status, 200);
    let s = up.stats();
    assert_eq!(
        s["connections"],
        2 + 1,
        "a new connection after the GOAWAY: {s}"
    );
    assert_eq!(s["paths"]["/sleep/700"], 1, "not resent: {s}");
}

/// A stream the upstream refused (REFUSED_STREAM) was not processed: a POST is sent again and
/// succeeds (with its body), for both client kinds.
#[test]
fn a_refused_stream_is_resent_even_for_a_post() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let mut c = proxy.connect();
    let r =
        c.exchange(b"POST /refuse-once/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!((r.status, r.text()), (200, "5".to_string()));
    let (status, body) = curl(&proxy, "/refuse-once/b", true, &[]);
    assert_eq!((status, &body[..]), (200, &b"0"[..]));
    let s = up.stats();
    assert_eq!(s["paths"]["/refuse-once/a"], 2, "{s}");
    assert_eq!(s["paths"]["/refuse-once/b"], 2, "{s}");
}

/// A 64 MiB response read slowly by an HTTP/1.1 client: the proxy's peak RSS grows by less than
/// 8 MiB (the upstream's window, not the body, bounds what it holds).
#[test]
fn a_slow_reader_does_not_grow_the_proxy() {
    let nginx = Nginx::start("slow", None);
    let proxy = proxy_to(nginx.addr, "h2c", &[]);
    assert_eq!(curl(&proxy, "/", false, &[]).0, 200);
    let before = proxy.peak_rss_kib();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /64m HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let started = Instant::now();
    // Slowly for the first 8 MiB (the proxy would have buffered the rest by then), then fast.
    while total < 64 << 20 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {total} bytes");
        total += n;
        if total < 8 << 20 {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(started.elapsed() < Duration::from_secs(60));
        if total > (64 << 20) + 4096 {
            break;
        }
    }
    let grown = proxy.peak_rss_kib().saturating_sub(before);
    assert!(grown < 8 * 1024, "peak RSS grew by {grown} KiB");
}

/// The existing HTTP/2-client → HTTP/1.1-upstream side relays trailers too: the client's HTTP/2
/// trailers end the chunked request body the upstream reads, and the upstream's chunked
/// trailers reach the client as HTTP/2 trailers.
#[test]
fn trailers_both_ways_between_an_http2_client_and_an_http1_upstream() {
    let up = Upstream::start(|p| {
        p.serve(|req| {
            let sum = req
                .trailers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("x-client-sum"))
                .map_or("none".to_string(), |(_, v)| v.clone());
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\
                 X-Client-Sum: {sum}\r\nX-Upstream-Trailer: yes\r\n\r\n",
                req.body.len(),
                String::from_utf8_lossy(&req.body)
            )
            .into_bytes()
        })
    });
    let proxy = Proxy::to(&[up.addr], &["--h2c", "--shards", "1"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_upstream/client.py");
    let out = Command::new("python3")
        .args([script, "trailers", &proxy.addr.port().to_string(), "/echo"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "hello world");
    let t = v["trailers"].as_object().unwrap();
    assert_eq!(
        t["x-client-sum"], "42",
        "the upstream got the client's trailer: {v}"
    );
    assert_eq!(t["x-upstream-trailer"], "yes", "{v}");
}

/// An idle upstream connection is PINGed (every quarter of the pool idle timeout, at least 1 s)
/// and closed once it has had no stream for the idle timeout.
#[test]
fn idle_connections_are_pinged_then_closed() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &["--pool-idle-timeout", "4s"]);
    assert_eq!(curl(&proxy, "/info", false, &[]).0, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let pinged = loop {
        let s = up.stats();
        if s["pings"].as_u64().unwrap_or(0) >= 1 {
            break s;
        }
        assert!(Instant::now() < deadline, "no PING: {s}");
        thread::sleep(Duration::from_millis(200));
    };
    assert!(
        !pinged["closed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/info"),
        "closed before its idle timeout: {pinged}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = up.stats();
        if s["closed"].as_array().unwrap().iter().any(|p| p == "/info") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle connection stayed open: {s}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Bidirectional streaming for an HTTP/2 client: each DATA chunk reaches the upstream, and its
/// echo comes back, before the client sends the next (or ends its stream).
#[test]
fn an_http2_client_streams_both_ways_at_once() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_upstream/client.py");
    let out = Command::new("python3")
        .args([
            script,
            "pingpong",
            &proxy.addr.port().to_string(),
            "/pingpong",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["rounds"], 3, "{v}");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"], "ping0ping1ping2", "{v}");
}

/// An upstream connection cut mid-request: that POST gets 502 (never resent: it may have been
/// processed) and counts as the endpoint's failure; the next request opens a new connection and
/// succeeds.
#[test]
fn a_cut_connection_is_a_502_and_the_next_request_reconnects() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    assert_eq!(curl(&proxy, "/info", false, &[]).0, 200);
    // A POST: not resent (the cut stream may have been processed).
    assert_eq!(curl(&proxy, "/die", false, &["-d", "x"]).0, 502);
    assert_eq!(curl(&proxy, "/info", true, &[]).0, 200);
    let s = up.stats();
    assert_eq!(s["paths"]["/die"], 1, "not resent: {s}");
    assert_eq!(
        s["connections"],
        2 + 1,
        "a new connection after the cut (+ stats): {s}"
    );
    let failures = scrape(&proxy).sum("shardgate_upstream_failures_total", &[]);
    assert!(failures >= 1.0, "the cut counted as a failure");
}

/// Requests that arrive while the first connection is being opened wait for it (one connect at
/// a time per endpoint), however small the queue for a full endpoint: a burst of 8 on a fresh
/// proxy with `--upstream-queue 1` all succeed, over one connection.
#[test]
fn a_burst_waits_for_the_single_connect() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &["--upstream-queue", "1"]);
    // Connected first, then sent together: they reach the proxy in the same instant.
    let conns: Vec<Conn> = (0..8).map(|_| proxy.connect()).collect();
    let start = std::sync::Arc::new(std::sync::Barrier::new(conns.len()));
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let start = start.clone();
            thread::spawn(move || {
                c.set_timeout(Duration::from_secs(10));
                start.wait();
                c.exchange(b"GET /sleep/200 HTTP/1.1\r\nHost: t\r\n\r\n")
                    .status
            })
        })
        .collect();
    let got: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, vec![200; 8]);
    assert_eq!(
        up.stats()["connections"],
        1 + 1,
        "one connection (+ the stats one)"
    );
}

/// A route's policies hold over an HTTP/2 cluster as over HTTP/1.1: a retry on 503 goes to the
/// other endpoint, the upstream timeout answers 504, `max_body` answers 413 (chunked HTTP/1.1
/// body and HTTP/2 body without a length), and each request has its access-log line.
#[test]
fn route_policies_hold_over_an_h2c_cluster() {
    let bad = PyUp::start(&["--status", "503"]);
    let good = PyUp::start(&[]);
    let log = support::admin::temp_path("h2up-policies", "log");
    let cfg = temp_file(
        "h2up-policies",
        &format!(
            "listen = [\"127.0.0.1:0\"]\naccess_log = \"{log}\"\n\
             [[listeners]]\naddr = \"127.0.0.1:0\"\nh2c = true\n\
             [[routes]]\nname = \"slow\"\npath_prefix = \"/sleep/\"\n\
             timeouts = {{ upstream = \"300ms\" }}\ncluster = \"good\"\n\
             [[routes]]\nname = \"small\"\npath_prefix = \"/echo\"\nmax_body = 10\ncluster = \"good\"\n\
             [[routes]]\nname = \"status\"\npath = \"/status\"\n\
             retry = {{ attempts = 1, on = [\"503\"] }}\ncluster = \"both\"\n\
             [[clusters]]\nname = \"good\"\nprotocol = \"h2c\"\nendpoints = [\"{g}\"]\n\
             [[clusters]]\nname = \"both\"\nprotocol = \"h2c\"\nlb = \"round-robin\"\n\
             endpoints = [\"{b}\", \"{g}\"]\n",
            log = log.path(),
            g = good.addr,
            b = bad.addr,
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path(), "--shards", "1"]);
    let h2c = proxy.addrs[1];
    for _ in 0..2 {
        let mut c = Conn::connect(h2c);
        let r = c.exchange(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!((r.status, r.text()), (200, "status 200".to_string()));
    }
    let tried = bad.stats()["paths"]["/status"].as_u64().unwrap_or(0);
    assert!(
        tried >= 1,
        "the 503 endpoint was tried (and its answer retried)"
    );
    let mut c = Conn::connect(h2c);
    let r = c.exchange(b"GET /sleep/3000 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 504);
    let mut c = Conn::connect(h2c);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n01234567890123456789\r\n0\r\n\r\n")
        .unwrap();
    assert_eq!(c.read_response().unwrap().status, 413);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code}", "-X", "POST", "-T", "-"])
        .arg(format!("http://{h2c}/echo"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin.take().unwrap().write_all(&[b'x'; 100])?;
            ch.wait_with_output()
        })
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(code, "413", "an HTTP/2 body past max_body");
    assert!(
        support::admin::wait_log_lines(std::path::Path::new(log.path()), 5, Duration::from_secs(5))
            .len()
            >= 5,
        "one access-log line per request"
    );
}

/// Health checks of an h2c cluster speak HTTP/2: an endpoint answering 503 on the checked path
/// goes down, one answering 200 stays up (an HTTP/1.1 probe would fail both: the upstream
/// speaks only HTTP/2).
#[test]
fn health_checks_of_an_h2c_cluster_speak_http2() {
    let bad = PyUp::start(&["--status", "503"]);
    let good = PyUp::start(&[]);
    let cfg = temp_file(
        "h2up-health",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n\
             [[clusters]]\nname = \"api\"\nprotocol = \"h2c\"\nendpoints = [\"{b}\", \"{g}\"]\n\
             [clusters.health_check]\ncheck = \"http:/status\"\nexpect = \"200\"\n\
             interval = \"200ms\"\ntimeout = \"1s\"\nfall = 1\nrise = 1\n",
            b = bad.addr,
            g = good.addr,
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path(), "--shards", "1"]);
    let (b, g) = (bad.addr.to_string(), good.addr.to_string());
    let m = support::admin::scrape_until(
        &proxy,
        Duration::from_secs(10),
        "the 503 endpoint down",
        "shardgate_upstream_healthy",
        |m| m.sum("shardgate_upstream_healthy", &[("endpoint", &b)]) == 0.0,
    );
    assert_eq!(
        m.sum("shardgate_upstream_healthy", &[("endpoint", &g)]),
        1.0
    );
    let probes = good.stats()["paths"]["/status"].as_u64().unwrap_or(0);
    assert!(probes >= 1, "the good endpoint was probed over HTTP/2");
    for _ in 0..4 {
        let (status, body) = curl(&proxy, "/status", false, &[]);
        assert_eq!((status, &body[..]), (200, &b"status 200"[..]));
    }
}
