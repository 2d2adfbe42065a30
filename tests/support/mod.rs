//! Shared harness for shardgate's integration tests: the proxy process (`proxy`), scripted
//! upstreams (`upstream`), HTTP/1.1 on blocking sockets for both ends (`wire`, parsing in
//! `message`, bytes to send in `compose`), the operations surface (`admin`: admin requests,
//! Prometheus text, access-log lines) and the libc and /proc calls std lacks (`sys`). Everything runs
//! on 127.0.0.1 with port 0, each test with its own proxy and upstreams, so tests run in parallel. Every socket read has a timeout: a proxy bug fails a test,
//! it never hangs the suite.
#![allow(dead_code, unused_imports)]

pub mod admin;
pub mod bind;
pub mod certs;
pub mod compose;
pub mod discovery;
pub mod dns;
pub mod embed;
pub mod grpc_server;
pub mod message;
pub mod policy;
pub mod proxy;
pub mod redis_server;
pub mod script;
pub mod sys;
pub mod tls_client;
pub mod tls_upstream;
pub mod upstream;
pub mod wire;

pub use admin::{admin, admin_get, admin_until, scrape, scrape_until, Metrics};
pub use compose::{chunked, get, request, response};
pub use message::{Head, Request, Response};
pub use proxy::{run, Proxy};
pub use upstream::{refused_addr, Peer, Seen, Upstream};
pub use wire::{Conn, WireError};

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Asserts `r` is one of shardgate's own error responses (CONTRACT.md "Canned responses"):
/// the expected status, `Connection: close`, and a short non-empty `text/plain` body.
pub fn assert_canned(r: &Response, status: u16, context: &str) {
    assert_eq!(
        r.status,
        status,
        "{context}: expected a canned {status}, got {} {:?} with body {:?}",
        r.status,
        r.head.start,
        r.text()
    );
    assert!(
        r.head.has_token("connection", "close"),
        "{context}: canned {status} lacks `Connection: close`: {:?}",
        r.head.headers
    );
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.to_ascii_lowercase().starts_with("text/plain"),
        "{context}: canned {status} has Content-Type {ct:?}, want text/plain"
    );
    assert!(
        !r.body.is_empty() && r.body.len() <= 1024,
        "{context}: canned {status} body should be short text, got {} bytes",
        r.body.len()
    );
}

/// Reads a response on `c` and asserts it is the canned `status`, then that the connection closes.
pub fn expect_canned_then_close(c: &mut Conn, status: u16, context: &str) -> Response {
    let r = c
        .read_response()
        .unwrap_or_else(|e| panic!("{context}: expected a canned {status}, got: {e}"));
    assert_canned(&r, status, context);
    if let Err(e) = c.expect_closed(Duration::from_secs(3)) {
        panic!("{context}: connection not closed after the canned {status}: {e}");
    }
    r
}

/// Deterministic pseudo-random bytes (xorshift64*), for large bodies.
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern(seed | 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A running FNV-1a 64 checksum (independent of how the bytes are split).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checksum {
    pub hash: u64,
    pub len: u64,
}

impl Default for Checksum {
    fn default() -> Checksum {
        Checksum {
            hash: 0xcbf2_9ce4_8422_2325,
            len: 0,
        }
    }
}

impl Checksum {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash ^= b as u64;
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.len += bytes.len() as u64;
    }

    pub fn of(bytes: &[u8]) -> Checksum {
        let mut c = Checksum::default();
        c.update(bytes);
        c
    }

    pub fn to_note(self) -> String {
        format!("{:016x}/{}", self.hash, self.len)
    }
}

/// A file in the temp dir, removed when dropped (also when the test fails).
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn path(&self) -> &str {
        self.0.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `text` to a fresh file in the temp dir.
pub fn temp_file(tag: &str, text: &str) -> TempFile {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!(
        "shardgate-test-{}-{}-{}.toml",
        std::process::id(),
        tag,
        n
    ));
    std::fs::write(&path, text).unwrap();
    TempFile(path)
}

/// Runs `f` and returns its value with the time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
