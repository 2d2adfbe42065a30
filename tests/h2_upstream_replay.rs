//! A request body to an HTTP/2 upstream that refuses its stream unprocessed (REFUSED_STREAM, or
//! a GOAWAY whose last stream id is below it) is sent again from the proxy's replay buffer, for
//! an HTTP/1.1 client (Content-Length and chunked, the body streamed after the head) and an
//! HTTP/2 client; beyond the buffer (64 KiB) the client gets 502. And an HTTP/1.1 client's chunked
//! body goes up as few DATA frames, END_STREAM on the last. Against the scripted upstream
//! (tests/h2_upstream/upstream.py).

#[path = "h2_upstream/harness.rs"]
mod harness;
mod support;

use std::thread;
use std::time::Duration;

use harness::*;
use serde_json::Value;
use support::*;

/// A 10 KiB body whose bytes vary.
fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 256) as u8).collect()
}

/// "LENGTH SUM" as the upstream reports a body.
fn summary(b: &[u8]) -> String {
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    format!("{} {sum}", b.len())
}

/// An HTTP/1.1 POST whose head goes first and whose body follows in pieces (so the proxy streams
/// it from the connection rather than finding it whole with the head); chunked when `chunked`.
fn post_streamed(proxy: &Proxy, path: &str, b: &[u8], chunked: bool) -> Response {
    post_streamed_on(&mut proxy.connect(), path, b, chunked)
}

fn post_streamed_on(c: &mut Conn, path: &str, b: &[u8], chunked: bool) -> Response {
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", b.len())
    };
    let head = format!("POST {path} HTTP/1.1\r\nHost: t\r\n{framing}\r\n\r\n");
    c.send(head.as_bytes()).unwrap();
    for (i, piece) in b.chunks(4096).enumerate() {
        // Pieces apart in time, so the proxy reads (and sends) the body in several steps.
        if i > 0 {
            thread::sleep(Duration::from_millis(20));
        }
        if chunked {
            c.send(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
            c.send(piece).unwrap();
            c.send(b"\r\n").unwrap();
        } else {
            c.send(piece).unwrap();
        }
    }
    if chunked {
        c.send(b"0\r\n\r\n").unwrap();
    }
    c.set_timeout(Duration::from_secs(10));
    c.read_response().unwrap()
}

/// REFUSED_STREAM on the HEADERS of a 10 KiB POST, and a GOAWAY that leaves its stream out: the
/// client gets 200 and the retried stream carried the whole body once, for an HTTP/1.1 client
/// (Content-Length, chunked) and an HTTP/2 client.
#[test]
fn a_refused_post_with_a_10k_body_is_replayed_whole() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let b = body(10 * 1024);
    let want = summary(&b);
    let mut paths = Vec::new();
    for how in ["refuse-head", "goaway-above"] {
        for (tag, chunked) in [("length", false), ("chunked", true)] {
            let path = format!("/{how}/{tag}");
            let r = post_streamed(&proxy, &path, &b, chunked);
            assert_eq!((r.status, r.text()), (200, want.clone()), "{path}");
            paths.push(path);
        }
        let path = format!("/{how}/h2");
        let file = temp_path_bytes(&format!("replay-{how}"), &b);
        let data = format!("@{}", file.display());
        let (status, got) = curl(&proxy, &path, true, &["--data-binary", &data]);
        let _ = std::fs::remove_file(&file);
        assert_eq!(
            (status, String::from_utf8_lossy(&got)),
            (200, want.clone().into()),
            "{path}"
        );
        paths.push(path);
    }
    let s = up.stats();
    for p in &paths {
        assert_eq!(s["paths"][p], 2, "refused once, then answered: {p} {s}");
    }
}

/// The access log counts a replayed body once: `bytes_in` is the head and the body as the
/// client sent them, not the body again for the retried stream (refused once the whole body
/// went up).
#[test]
fn a_replayed_body_is_counted_once_in_the_access_log() {
    let up = PyUp::start(&[]);
    let log = support::admin::temp_path("h2-replay", "log");
    let proxy = proxy_to(up.addr, "h2c", &["--access-log", log.path()]);
    let b = body(10 * 1024);
    let r = post_streamed(&proxy, "/refuse-once/log", &b, false);
    assert_eq!(r.status, 200);
    let lines = support::admin::wait_log_lines(std::path::Path::new(log.path()), 1, ms(5000));
    let head = format!(
        "POST /refuse-once/log HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        b.len()
    );
    assert_eq!(
        lines[0]["bytes_in"],
        (head.len() + b.len()) as u64,
        "{}",
        lines[0]
    );
}

/// A replay that needed more room than the client's read buffer has (`--buffer-size 4096`,
/// a 10 KiB body) leaves it at its size: on the same connection a head over 4 KiB still gets
/// 431 (the buffer bounds a request head).
#[test]
fn a_replay_leaves_the_client_buffer_at_its_size() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(
        up.addr,
        "h2c",
        &["--buffer-size", "4096", "--max-request-line", "2048"],
    );
    let b = body(10 * 1024);
    let mut c = proxy.connect();
    let r = post_streamed_on(&mut c, "/refuse-head/grow", &b, false);
    assert_eq!((r.status, r.text()), (200, summary(&b)));
    let big = format!(
        "GET /info HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(6000)
    );
    c.send(big.as_bytes()).unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 431, "{}", r.text());
}

/// A body past the replay buffer when the stream is refused cannot be sent again: 502.
#[test]
fn a_refused_body_past_the_replay_buffer_is_a_502() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let b = body(100 * 1024);
    // Refused only once the whole body arrived: all of it went before the refusal.
    let r = post_streamed(&proxy, "/refuse-once/big", &b, false);
    assert_eq!(r.status, 502, "{}", r.text());
    let s = up.stats();
    assert_eq!(s["paths"]["/refuse-once/big"], 1, "not sent again: {s}");
}

/// Many tiny chunks written at once go up as few DATA frames (one per read, not one per chunk),
/// the last carrying END_STREAM (no empty frame after it).
#[test]
fn tiny_chunks_in_one_write_go_up_as_few_data_frames() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let mut req =
        b"POST /frames HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let piece = format!("{:05}", i);
        req.extend_from_slice(format!("5\r\n{piece}\r\n").as_bytes());
        sent.extend_from_slice(piece.as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let mut c = proxy.connect();
    let r = c.exchange(&req);
    assert_eq!(r.status, 200, "{}", r.text());
    let info: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(info["length"], sent.len(), "{info}");
    let sum: u64 = sent.iter().map(|&x| u64::from(x)).sum();
    assert_eq!(info["sum"], sum, "{info}");
    let frames = info["data_frames"].as_u64().unwrap();
    assert!(
        frames <= 3,
        "200 chunks in one write, {frames} DATA frames: {info}"
    );
    assert_eq!(
        info["empty_end"], false,
        "END_STREAM on the last DATA: {info}"
    );
}
