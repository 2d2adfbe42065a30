//! Large response bodies spliced upstream -> pipe -> client (`--splice-threshold`), on both
//! drivers: byte-exact on keep-alive connections (64 KiB, 1 MiB, 20 MB, one after another through
//! the same pooled pipe, on the same upstream connection); until-close bodies; an upstream that
//! closes or stalls mid-body closes the client connection short; a client that goes away
//! mid-body takes the pipe (and the bytes left in it) with it; bodies under the threshold and
//! threshold 0 (flag or config file) never open a pipe; `bytes_out` counts spliced bodies.
//! Pipes are counted in /proc/PID/fd.

mod support;

use std::time::{Duration, Instant};

use support::sys::{pipe_count, set_linger_zero};
use support::*;

const FORCE_LEGACY: &str = "MONOIO_FORCE_LEGACY_DRIVER";
const PIECE: usize = 64 << 10;
const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// The checksum of the `n` pattern bytes the upstream sends for a body of `n` bytes.
fn body_sum(n: usize) -> Checksum {
    let mut sum = Checksum::default();
    each_piece(n, n, |p| sum.update(p));
    sum
}

/// The first `send` of the `n` pattern bytes of a body, in the pieces the upstream writes.
fn each_piece(n: usize, send: usize, mut f: impl FnMut(&[u8])) {
    let mut pattern = Pattern::new(n as u64);
    let mut piece = vec![0u8; PIECE];
    let mut left = send;
    while left > 0 {
        let k = left.min(PIECE);
        pattern.fill(&mut piece[..k]);
        f(&piece[..k]);
        left -= k;
    }
}

/// Serves `GET /len/N` (N pattern bytes with Content-Length), `/cut/N/M` (Content-Length N, only
/// M bytes, then closes), `/stall/N/M` (M of N bytes, then silence) and `/eof/N` (N bytes without
/// Content-Length, then closes).
fn bodies_upstream() -> Upstream {
    Upstream::start(|p| {
        while let Some(req) = p.next_request() {
            let parts: Vec<&str> = req.target.trim_start_matches('/').split('/').collect();
            let num = |i: usize| {
                parts
                    .get(i)
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0)
            };
            let (n, send) = (num(1), if parts.len() > 2 { num(2) } else { num(1) });
            let head = if parts[0] == "eof" {
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec()
            } else {
                response(200, &[("Content-Length", &n.to_string())], b"")
            };
            let mut ok = p.write(&head);
            each_piece(n, send, |piece| ok = ok && p.write(piece));
            match parts[0] {
                "len" if ok => continue,
                "stall" => std::thread::sleep(Duration::from_secs(5)),
                _ => {}
            }
            return;
        }
    })
}

fn start(up: &Upstream, legacy: bool, extra: &[&str]) -> Proxy {
    let addr = up.addr.to_string();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &addr,
        "--shards",
        "1",
    ];
    args.extend_from_slice(extra);
    Proxy::start_with_env(&args, &[(FORCE_LEGACY, legacy.then_some("1"))])
}

fn fetch(c: &mut Conn, n: usize, context: &str) {
    c.set_timeout(ms(10_000));
    let r = c.exchange(&get(&format!("/len/{n}")));
    assert_eq!(r.status, 200, "{context}: {n} bytes");
    assert_eq!(r.body.len(), n, "{context}: body length");
    assert_eq!(
        Checksum::of(&r.body),
        body_sum(n),
        "{context}: the client received different bytes ({n})"
    );
}

/// Waits until the proxy holds `want` pipe fds (pool changes follow the response by a moment).
fn wait_pipes(proxy: &Proxy, want: usize, context: &str) {
    let deadline = Instant::now() + ms(3000);
    loop {
        let now = pipe_count(proxy.pid());
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: the proxy holds {now} pipe fds, expected {want}"
        );
        std::thread::sleep(ms(10));
    }
}

fn driver(legacy: bool) -> &'static str {
    if legacy {
        "epoll"
    } else {
        "io_uring"
    }
}

// === byte-exact, one pipe reused ===

fn keepalive_bodies(legacy: bool) {
    let ctx = driver(legacy);
    let up = bodies_upstream();
    let proxy = start(&up, legacy, &[]);
    let base = pipe_count(proxy.pid());
    let mut c = proxy.connect();
    fetch(&mut c, 100, ctx);
    fetch(&mut c, 12 * KIB, ctx);
    wait_pipes(&proxy, base, &format!("{ctx}: bodies under the threshold"));
    for n in [64 * KIB, MIB, 20 * MIB, 64 * KIB + 1, MIB - 7] {
        fetch(&mut c, n, ctx);
    }
    // One pipe (two fds), taken and returned empty for every body.
    wait_pipes(
        &proxy,
        base + 2,
        &format!("{ctx}: after five spliced bodies"),
    );
    assert_eq!(
        up.accepted(),
        1,
        "{ctx}: a body that ended exactly leaves the upstream connection reusable"
    );
    // A second connection, interleaved with the first: still the same pipe.
    let mut d = proxy.connect();
    fetch(&mut d, MIB, ctx);
    fetch(&mut c, 64 * KIB, ctx);
    wait_pipes(&proxy, base + 2, &format!("{ctx}: two connections in turn"));
}

#[test]
fn large_bodies_spliced_byte_exact_on_keepalive_io_uring() {
    keepalive_bodies(false);
}

#[test]
fn large_bodies_spliced_byte_exact_on_keepalive_epoll() {
    keepalive_bodies(true);
}

fn until_close_body(legacy: bool) {
    let ctx = driver(legacy);
    let up = bodies_upstream();
    let proxy = start(&up, legacy, &[]);
    let base = pipe_count(proxy.pid());
    let mut c = proxy.connect();
    c.set_timeout(ms(10_000));
    let r = c.exchange(&get(&format!("/eof/{}", 3 * MIB)));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 3 * MIB, "{ctx}: until-close body length");
    assert_eq!(
        Checksum::of(&r.body),
        body_sum(3 * MIB),
        "{ctx}: until-close body bytes"
    );
    wait_pipes(
        &proxy,
        base + 2,
        &format!("{ctx}: after an until-close body"),
    );
}

#[test]
fn until_close_body_spliced_io_uring() {
    until_close_body(false);
}

#[test]
fn until_close_body_spliced_epoll() {
    until_close_body(true);
}

// === the threshold ===

#[test]
fn threshold_zero_never_splices() {
    let up = bodies_upstream();
    let proxy = start(&up, false, &["--splice-threshold", "0"]);
    let base = pipe_count(proxy.pid());
    let mut c = proxy.connect();
    for n in [64 * KIB, 20 * MIB, MIB] {
        fetch(&mut c, n, "--splice-threshold 0");
    }
    let r = c.exchange(&get(&format!("/eof/{MIB}")));
    assert_eq!(
        Checksum::of(&r.body),
        body_sum(MIB),
        "until-close, buffered"
    );
    wait_pipes(&proxy, base, "--splice-threshold 0");
}

#[test]
fn threshold_zero_in_the_config_file_never_splices() {
    let up = bodies_upstream();
    let file = temp_file(
        "splice_off",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n\n[shards]\ncount = 1\nsplice_threshold = 0\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&["--config", file.path()]);
    let base = pipe_count(proxy.pid());
    let mut c = proxy.connect();
    fetch(&mut c, 2 * MIB, "[shards] splice_threshold = 0");
    wait_pipes(&proxy, base, "[shards] splice_threshold = 0");
}

#[test]
fn threshold_decides_by_the_bytes_left() {
    let up = bodies_upstream();
    let proxy = start(&up, false, &["--splice-threshold", "1048576"]);
    let base = pipe_count(proxy.pid());
    let mut c = proxy.connect();
    fetch(&mut c, 512 * KIB, "under a 1 MiB threshold");
    fetch(&mut c, MIB - 1, "one byte under a 1 MiB threshold");
    wait_pipes(&proxy, base, "bodies under --splice-threshold 1048576");
    fetch(&mut c, 2 * MIB, "over a 1 MiB threshold");
    wait_pipes(&proxy, base + 2, "a body over --splice-threshold 1048576");
}

// === failures mid-body ===

/// Requests `target`, expects the head then a body cut short by the proxy closing the connection.
fn expect_cut_short(c: &mut Conn, target: &str, n: usize, within: Duration, context: &str) {
    c.send(&get(target)).unwrap();
    c.set_timeout(within);
    let head = c
        .read_head()
        .unwrap_or_else(|e| panic!("{context}: head: {e}"));
    assert!(head.start.contains(" 200 "), "{context}: {:?}", head.start);
    let framing = support::message::response_framing("GET", 200, &head).unwrap();
    let started = Instant::now();
    match c.read_body(framing) {
        Ok(b) => panic!("{context}: a whole body of {} bytes arrived", b.data.len()),
        Err(e) => {
            assert!(
                e.is_disconnect(),
                "{context}: expected the proxy to close the connection mid-body, got {e}"
            );
            assert!(e.got() < n, "{context}: {} of {n} bytes", e.got());
        }
    }
    assert!(
        started.elapsed() < within,
        "{context}: the close took {:?}",
        started.elapsed()
    );
}

fn upstream_closes_mid_body(legacy: bool) {
    let ctx = driver(legacy);
    let up = bodies_upstream();
    let proxy = start(&up, legacy, &[]);
    let base = pipe_count(proxy.pid());
    let mut c = proxy.connect();
    let target = format!("/cut/{MIB}/300000");
    expect_cut_short(&mut c, &target, MIB, ms(3000), ctx);
    // The pipe was empty when the upstream's EOF came: it went back to the pool, fit for reuse.
    wait_pipes(
        &proxy,
        base + 2,
        &format!("{ctx}: after an upstream EOF mid-body"),
    );
    let mut d = proxy.connect();
    fetch(&mut d, MIB, ctx);
}

#[test]
fn upstream_closing_mid_body_closes_client_short_io_uring() {
    upstream_closes_mid_body(false);
}

#[test]
fn upstream_closing_mid_body_closes_client_short_epoll() {
    upstream_closes_mid_body(true);
}

fn upstream_stalls_mid_body(legacy: bool) {
    let ctx = driver(legacy);
    let up = bodies_upstream();
    let proxy = start(&up, legacy, &["--body-timeout", "300ms"]);
    let mut c = proxy.connect();
    let target = format!("/stall/{MIB}/200000");
    expect_cut_short(&mut c, &target, MIB, ms(3000), ctx);
}

#[test]
fn upstream_stalling_mid_body_hits_body_timeout_io_uring() {
    upstream_stalls_mid_body(false);
}

#[test]
fn upstream_stalling_mid_body_hits_body_timeout_epoll() {
    upstream_stalls_mid_body(true);
}

/// A client that stops reading and resets while bytes wait in the pipe: the pipe is closed, not
/// pooled, and the next body through a new pipe is exact (no stale bytes in front of it).
fn client_gone_mid_body(legacy: bool) {
    let ctx = driver(legacy);
    let up = bodies_upstream();
    let proxy = start(&up, legacy, &[]);
    let base = pipe_count(proxy.pid());
    let mut c = proxy.connect();
    c.send(&get(&format!("/len/{}", 20 * MIB))).unwrap();
    c.read_head().expect("the head of the 20 MB body");
    // The proxy fills the socket buffers, then waits with bytes in its pipe.
    std::thread::sleep(ms(300));
    assert_eq!(
        pipe_count(proxy.pid()),
        base + 2,
        "{ctx}: a pipe is lent to the stalled body"
    );
    set_linger_zero(&c.stream);
    drop(c);
    wait_pipes(
        &proxy,
        base,
        &format!("{ctx}: a pipe left holding bytes is closed"),
    );
    let mut d = proxy.connect();
    for n in [MIB, 64 * KIB] {
        fetch(&mut d, n, ctx);
    }
    wait_pipes(
        &proxy,
        base + 2,
        &format!("{ctx}: a new pipe after the reset"),
    );
}

#[test]
fn client_gone_mid_body_closes_the_pipe_io_uring() {
    client_gone_mid_body(false);
}

#[test]
fn client_gone_mid_body_closes_the_pipe_epoll() {
    client_gone_mid_body(true);
}

// === statistics ===

/// `bytes_out` of a spliced response counts its body like a buffered one: head plus body.
#[test]
fn spliced_bodies_count_in_bytes_out() {
    let up = bodies_upstream();
    let proxy = start(&up, false, &["--access-log", "stdout"]);
    let base = pipe_count(proxy.pid());
    let mut c = proxy.connect();
    c.set_timeout(ms(10_000));
    let mut sent = Vec::new();
    for target in [format!("/len/{MIB}"), format!("/eof/{}", 2 * MIB)] {
        let r = c.exchange(&get(&target));
        assert_eq!(r.status, 200);
        sent.push((target, r.head.raw.len() + r.body.len()));
    }
    wait_pipes(&proxy, base + 2, "both bodies spliced");
    for (target, bytes) in sent {
        let want = format!("\"path\":\"{target}\"");
        let line = proxy
            .stdout
            .wait(ms(5000), |l| l.contains(&want))
            .unwrap_or_else(|| panic!("no access log line for {target}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["bytes_out"].as_u64(),
            Some(bytes as u64),
            "{target}: bytes_out = the bytes the client received: {line}"
        );
    }
}
