//! `Upgrade: websocket`: after the upstream's 101 the connection is a raw byte tunnel both ways.
//! An upgrade the upstream declines stays plain HTTP.

mod support;

use support::*;

const UPGRADE_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: shardgate.test\r\nConnection: Upgrade\r\n\
Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn websocket_upgrade_tunnels_raw_bytes_both_ways() {
    let up = Upstream::start(|p| {
        if p.next_request().is_none() {
            return;
        }
        p.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        // The server speaks first, then echoes every byte back incremented by one.
        p.write(b"\x81\x05hello");
        loop {
            match p.conn.read_raw(1) {
                Ok(b) => {
                    if !p.write(&[b[0].wrapping_add(1)]) {
                        return;
                    }
                }
                Err(_) => {
                    p.note("client side closed".into());
                    return;
                }
            }
        }
    });
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    c.send(UPGRADE_REQUEST).unwrap();
    let r = c.read_response().expect("101 from the upstream");
    assert_eq!(r.status, 101);
    assert!(
        r.head.has_token("upgrade", "websocket"),
        "{:?}",
        r.head.headers
    );
    assert!(
        r.head.has_token("connection", "upgrade"),
        "{:?}",
        r.head.headers
    );

    let seen = up.seen();
    let fwd = &seen.requests[0];
    assert!(
        fwd.head.has_token("upgrade", "websocket"),
        "Upgrade not forwarded: {:?}",
        fwd.head.headers
    );
    assert!(
        fwd.head.has_token("connection", "upgrade"),
        "Connection: upgrade not forwarded: {:?}",
        fwd.head.headers
    );
    assert_eq!(
        fwd.header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );

    assert_eq!(
        c.read_raw(7).expect("upstream's first frame"),
        b"\x81\x05hello"
    );
    let payload: Vec<u8> = vec![0x00, 0xff, b'\r', b'\n', b'G', b'E', b'T', b' ', 0x80, 0x10];
    c.send(&payload).unwrap();
    let back = c.read_raw(payload.len()).expect("echo through the tunnel");
    let want: Vec<u8> = payload.iter().map(|b| b.wrapping_add(1)).collect();
    assert_eq!(back, want);
    // Bytes that look like HTTP are not parsed either.
    let http_like = b"HTTP/1.1 200 OK\r\n\r\n";
    c.send(http_like).unwrap();
    let want: Vec<u8> = http_like.iter().map(|b| b.wrapping_add(1)).collect();
    assert_eq!(c.read_raw(http_like.len()).unwrap(), want);

    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    up.wait_for("the client's close to reach the upstream", ms(3000), |s| {
        !s.notes.is_empty()
    });
}

#[test]
fn declined_upgrade_stays_http() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    let r = c.exchange(UPGRADE_REQUEST);
    assert_eq!(
        r.status, 200,
        "the upstream declined the upgrade with a 200"
    );
    let r = c.exchange(&get("/after"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-target"), Some("/after"));
}

/// A tunnel leaves the pool: with one connection allowed per endpoint, an open WebSocket does not
/// keep plain requests waiting for a slot.
#[test]
fn open_tunnel_does_not_hold_a_pool_slot() {
    let up = Upstream::start(|p| {
        let Some(req) = p.next_request() else { return };
        if req.head.has_token("upgrade", "websocket") {
            p.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
            p.wait_close();
        } else {
            p.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            p.wait_close();
        }
    });
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--max-upstream-connections",
            "1",
            "--upstream-queue-timeout",
            "500ms",
        ],
    );
    let mut ws = proxy.connect();
    ws.send(UPGRADE_REQUEST).unwrap();
    assert_eq!(ws.read_response().expect("101").status, 101);
    let mut c = proxy.connect();
    let r = c.exchange(&get("/plain"));
    assert_eq!(
        (r.status, r.text()),
        (200, "ok".to_string()),
        "a plain request while a tunnel is open"
    );
}
