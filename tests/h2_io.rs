//! The HTTP/2 front-end's own I/O (src/shard/downstream/h2/ready.rs and tls_io.rs): an idle
//! HTTP/2 connection, h2c or over TLS, holds no read or write buffer of the proxy's (measured as
//! the proxy's resident memory per idle connection, 200 of each kind open with their SETTINGS
//! exchanged), and bodies of several MiB pass both ways whole over h2c and TLS (curl, content
//! compared), also to a client that reads slowly, so the proxy's writes find the socket full
//! and wait for it. Also: the kits HTTP/2 streams hold are reused from burst to burst (the shard's
//! pool keeps them while busy) and given back once the shard is quiet. scripts/test.sh installs
//! curl and h2load.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use support::admin::{scrape, temp_path};
use support::certs::{Certs, Leaf};
use support::*;

/// Idle connections of each kind the memory test holds.
const IDLE: usize = 200;

/// A proxy with an h2c listener (first address) and a TLS listener (second) in front of `up`.
fn proxy(leaf: &Leaf, up: SocketAddr) -> Proxy {
    let cfg = temp_file(
        "h2-io",
        &format!(
            "upstreams = [\"{up}\"]\n\
             [[listeners]]\naddr = \"127.0.0.1:0\"\nh2c = true\n\n\
             [[listeners]]\naddr = \"127.0.0.1:0\"\n\
             tls = {{ certificates = [{{ cert = \"{cert}\", key = \"{key}\" }}] }}\n",
            cert = leaf.cert(),
            key = leaf.key(),
        ),
    );
    Proxy::start(&["--config", cfg.path(), "--shards", "1"])
}

/// A TLS client config trusting `ca` that offers only ALPN `h2`.
fn h2_tls_config(ca: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read CA file") {
        roots.add(c.expect("CA PEM")).expect("CA certificate");
    }
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Sends the client preface and an empty SETTINGS, then reads frames until the server's
/// SETTINGS has come (answered with an ACK) and our SETTINGS was acknowledged: the connection is
/// then open and idle on both sides.
fn open_h2(io: &mut (impl Read + Write)) {
    io.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .expect("send the preface");
    io.flush().unwrap();
    let (mut settings, mut acked) = (false, false);
    while !(settings && acked) {
        let mut head = [0u8; 9];
        io.read_exact(&mut head).expect("a frame from the proxy");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).expect("the frame's payload");
        match (head[3], head[4] & 1) {
            (4, 0) => {
                settings = true;
                io.write_all(b"\0\0\0\x04\x01\0\0\0\0").unwrap();
                io.flush().unwrap();
            }
            (4, 1) => acked = true,
            (7, _) => panic!("GOAWAY while opening: {payload:?}"),
            _ => {}
        }
    }
}

/// The proxy process's resident memory, in KiB.
fn rss_kib(proxy: &Proxy) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What `n` more idle connections opened by `open` cost the proxy, in KiB per connection; the
/// connections are returned, to stay open.
fn cost_of<T>(proxy: &Proxy, n: usize, open: impl Fn() -> T) -> (f64, Vec<T>) {
    let before = rss_kib(proxy);
    let held: Vec<T> = (0..n).map(|_| open()).collect();
    // The proxy has answered every connection's SETTINGS: its side of each is in place.
    let after = rss_kib(proxy);
    (after.saturating_sub(before) as f64 / n as f64, held)
}

/// Before this front-end had its own I/O, every HTTP/2 connection kept a compat wrapper with two
/// `--buffer-size` buffers (16 KiB each) for its whole life: 26 KiB per idle h2c connection in
/// bench/h2mem.sh (nginx: 1.7). Now only `h2`'s own buffers remain (and, over TLS, rustls'
/// state), and the proxy's memory per idle connection stays under the wrapper's 32 KiB by a margin
/// (the limits below fail with the wrapper back: 25.8 and 45.9 KiB in this test with the release
/// build before, 17.2 and 30.6 after).
#[test]
fn idle_h2_connections_hold_no_io_buffers() {
    let certs = Certs::new("h2-io");
    let leaf = certs.leaf("localhost", &["localhost"]);
    let up = Upstream::fixed("ok");
    let proxy = proxy(&leaf, up.addr);
    let (h2c, tls) = (proxy.addrs[0], proxy.addrs[1]);
    let config = h2_tls_config(certs.ca());
    let plain = || {
        let mut s = TcpStream::connect(h2c).expect("connect h2c");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        open_h2(&mut s);
        s
    };
    let secure = || {
        let sock = TcpStream::connect(tls).expect("connect TLS");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(config.clone(), name).unwrap();
        let mut s = StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).expect("TLS handshake");
        }
        assert_eq!(s.conn.alpn_protocol(), Some(&b"h2"[..]), "ALPN h2");
        open_h2(&mut s);
        s
    };
    // Warm-up: what the first connections of each kind allocate once (session caches, the
    // shard's pools) is not counted.
    let warm: Vec<TcpStream> = (0..20).map(|_| plain()).collect();
    let warm_tls: Vec<_> = (0..20).map(|_| secure()).collect();

    let (per_h2c, held) = cost_of(&proxy, IDLE, plain);
    let (per_tls, held_tls) = cost_of(&proxy, IDLE, secure);
    eprintln!("idle HTTP/2 connection: h2c {per_h2c:.1} KiB, TLS {per_tls:.1} KiB");
    assert!(
        per_h2c < 20.0,
        "an idle h2c connection costs {per_h2c:.1} KiB: buffers are held while idle"
    );
    assert!(
        per_tls < 36.0,
        "an idle TLS HTTP/2 connection costs {per_tls:.1} KiB: buffers are held while idle"
    );

    // Still served: a request on one of the idle connections of each kind.
    let (status, version, body) = curl_h2c(&format!("http://{h2c}/after"), &[]);
    assert_eq!(
        (status, version.as_str(), body.as_slice()),
        (200, "2", &b"ok"[..])
    );
    drop((warm, warm_tls, held, held_tls));
}

/// curl with prior knowledge (h2c): (status, HTTP version, body).
fn curl_h2c(url: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    curl(&["--http2-prior-knowledge"], url, extra)
}

/// curl over https with ALPN h2 and the test CA.
fn curl_tls(certs: &Certs, addr: SocketAddr, path: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let url = format!("https://localhost:{}{path}", addr.port());
    curl(
        &["--http2", "--cacert", certs.ca(), "--resolve", &resolve],
        &url,
        extra,
    )
}

fn curl(how: &[&str], url: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let body = temp_path("h2-io-curl", "out");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            body.path(),
            "-w",
            "%{http_code} %{http_version}",
        ])
        .args(["--max-time", "30"])
        .args(how)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut w = text.split(' ');
    let status = w.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = w.next().unwrap_or("").to_string();
    assert!(
        status != 0,
        "curl {url} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        status,
        version,
        std::fs::read(body.path()).unwrap_or_default(),
    )
}

/// `n` bytes of a seeded pattern, as letters (a body `Upstream::fixed` can serve).
fn letters(seed: u64, n: usize) -> String {
    let mut raw = vec![0u8; n];
    Pattern::new(seed).fill(&mut raw);
    raw.iter().map(|b| char::from(b'a' + b % 26)).collect()
}

/// 6 MiB up and the same 6 MiB echoed back, over h2c and over TLS: the bytes that come back are
/// the bytes sent, and the upstream saw them all.
#[test]
fn several_mib_both_ways_over_h2c_and_tls() {
    let certs = Certs::new("h2-io");
    let leaf = certs.leaf("localhost", &["localhost"]);
    let up = Upstream::echo();
    let proxy = proxy(&leaf, up.addr);
    let mut sent = vec![0u8; 6 << 20];
    Pattern::new(13).fill(&mut sent);
    let file = temp_path("h2-io-up", "bin");
    std::fs::write(file.path(), &sent).unwrap();
    let data = format!("@{}", file.path());
    let post = ["--data-binary", data.as_str()];

    let (status, version, body) = curl_h2c(&format!("http://{}/h2c", proxy.addrs[0]), &post);
    assert_eq!((status, version.as_str()), (200, "2"), "POST over h2c");
    assert_eq!(body.len(), sent.len(), "the echo over h2c came back whole");
    assert!(body == sent, "the echo over h2c differs");

    let (status, version, body) = curl_tls(&certs, proxy.addrs[1], "/tls", &post);
    assert_eq!((status, version.as_str()), (200, "2"), "POST over TLS h2");
    assert_eq!(body.len(), sent.len(), "the echo over TLS came back whole");
    assert!(body == sent, "the echo over TLS differs");

    let seen = up.seen();
    assert_eq!(seen.requests.len(), 2);
    for r in &seen.requests {
        assert_eq!(r.body_len, sent.len(), "the upstream got the whole body");
        assert!(
            r.body == sent[..r.body.len()],
            "what the upstream kept differs"
        );
    }
}

/// An 8 MiB response to a client that reads at 8 MiB/s: the socket fills and the proxy waits for
/// it to drain (a write that found no room), over h2c and TLS; the body arrives whole.
#[test]
fn a_slow_reader_gets_a_large_response_whole() {
    let certs = Certs::new("h2-io");
    let leaf = certs.leaf("localhost", &["localhost"]);
    let big = letters(7, 8 << 20);
    let up = Upstream::fixed(&big);
    let proxy = proxy(&leaf, up.addr);
    let slow = ["--limit-rate", "8M"];

    let (status, _, body) = curl_h2c(&format!("http://{}/slow", proxy.addrs[0]), &slow);
    assert_eq!(status, 200);
    assert_eq!(body.len(), big.len(), "h2c: the slow read got it all");
    assert!(body == big.as_bytes(), "h2c: the body differs");

    let (status, version, body) = curl_tls(&certs, proxy.addrs[1], "/slow", &slow);
    assert_eq!((status, version.as_str()), (200, "2"));
    assert_eq!(body.len(), big.len(), "TLS: the slow read got it all");
    assert!(body == big.as_bytes(), "TLS: the body differs");
}

/// `n` GETs by h2load over `conns` connections with `streams` in flight on each, all 2xx.
fn h2load(proxy: &Proxy, n: usize, conns: usize, streams: usize) {
    let (n, c, m) = (n.to_string(), conns.to_string(), streams.to_string());
    let out = Command::new("h2load")
        .args(["-n", &n, "-c", &c, "-m", &m, "-T", "30"])
        .arg(format!("http://{}/", proxy.addr))
        .output()
        .expect("h2load (scripts/test.sh installs nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("status codes: {n} 2xx")), "{text}");
}

/// Every HTTP/2 stream holds a kit (a client and an upstream read buffer) while it runs. With
/// 256 streams in flight, a burst like the ones before it allocates (almost) none: the pool kept
/// what the earlier bursts allocated, where it used to keep 64 and map and unmap two buffers for
/// most streams (bench/RESULTS.md (10)). After a quiet period the kits beyond 64 are given back,
/// so the next burst allocates again.
#[test]
fn stream_kits_are_reused_while_busy_and_given_back_when_quiet() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &["--h2c", "--shards", "1"]);
    let allocated = || scrape(&proxy).sum("shardgate_kits_allocated_total", &[]);
    h2load(&proxy, 3000, 8, 32);
    h2load(&proxy, 3000, 8, 32);
    let warm = allocated();
    assert!(
        warm > 64.0,
        "only {warm} kits: never more than 64 streams in flight, the load proves nothing"
    );
    h2load(&proxy, 3000, 8, 32);
    let busy = allocated() - warm;
    assert!(
        busy < 40.0,
        "a burst like the earlier ones allocated {busy} kits: the pool did not keep them"
    );
    // Quiet for two trim periods (kit.rs TRIM_EVERY): the pool drops back to 64.
    std::thread::sleep(Duration::from_millis(2500));
    h2load(&proxy, 3000, 8, 32);
    let quiet = allocated() - warm - busy;
    assert!(
        quiet > 0.0,
        "after a quiet period the next burst allocated no kit: the pool kept them all"
    );
}
