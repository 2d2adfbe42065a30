//! The servers and clients tests/h2_upstream.rs and tests/h2_upstream_pool.rs share: the
//! scripted HTTP/2 upstream (tests/h2_upstream/upstream.py on the Python `h2` package) with its
//! counters, nginx as an h2c or h2 (TLS) origin from a temp dir, curl through the proxy, and
//! requests started at once. Test processes only.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::script::Served;
use crate::support::*;

/// tests/h2_upstream/upstream.py on 127.0.0.1; killed when dropped.
pub struct PyUp {
    _served: Served,
    pub addr: SocketAddr,
}

impl PyUp {
    pub fn start(args: &[&str]) -> PyUp {
        let served = Served::start("h2_upstream/upstream.py", args, "h2 (pip install h2)");
        PyUp {
            addr: served.addr,
            _served: served,
        }
    }

    /// What the upstream counted (connections, most streams open at once, requests per path),
    /// asked over its own h2c (curl with prior knowledge, straight to it).
    pub fn stats(&self) -> Value {
        let (status, body) = curl_h2c_direct(self.addr, "/stats");
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    }
}

pub fn curl_h2c_direct(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
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

pub fn split_status(out: &[u8]) -> (u16, Vec<u8>) {
    let cut = out.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let status = String::from_utf8_lossy(&out[cut..])
        .trim()
        .parse()
        .unwrap_or(0);
    (status, out[..cut].to_vec())
}

/// An nginx serving h2c (`listen … http2`) or h2 over TLS (`ssl http2`) from a temp dir: `/` is
/// "ok", `/1m` and `/64m` are files of that many MiB (a byte pattern). Stopped when dropped.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

/// nginx from PATH, else where Debian puts it (/usr/sbin is not on every user's PATH).
pub fn nginx_bin() -> &'static str {
    let on_path = Command::new("nginx").arg("-v").output().is_ok();
    if on_path {
        "nginx"
    } else {
        "/usr/sbin/nginx"
    }
}

/// A port for nginx (which binds what it is told): below the ephemeral range, where no outgoing
/// connection or TIME-WAIT of other work on the machine holds it, and free when checked.
pub fn free_port() -> u16 {
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
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

impl Nginx {
    /// `tls`: (certificate, key) files for `ssl http2`.
    pub fn start(tag: &str, tls: Option<(&str, &str)>) -> Nginx {
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

/// curl through the proxy: (status, body); `h2`: HTTP/2 with prior knowledge, else HTTP/1.1.
pub fn curl(proxy: &Proxy, path: &str, h2: bool, extra: &[&str]) -> (u16, Vec<u8>) {
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
pub fn proxy_to(up: SocketAddr, protocol: &str, extra: &[&str]) -> Proxy {
    let mut args = vec!["--h2c", "--upstream-protocol", protocol, "--shards", "1"];
    args.extend_from_slice(extra);
    Proxy::to(&[up], &args)
}

impl Nginx {
    /// An HTTP/1.1-only TLS nginx (no `http2` on its listener: ALPN selects http/1.1).
    pub fn start_http1_tls(tag: &str, cert: &str, key: &str) -> Nginx {
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

pub fn temp_path_bytes(tag: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sg-{tag}-{}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Starts one HTTP/1.1 request per path at once (the second 100 ms after the first), each on
/// its own connection; their statuses, in order.
pub fn concurrently(proxy: &Proxy, paths: &[&str]) -> Vec<u16> {
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
