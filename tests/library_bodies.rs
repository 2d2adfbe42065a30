//! Library mode's bodies (`shardgate::embed`, public API only, scripted upstreams on 127.0.0.1):
//! request and response bodies larger than the buffer streamed both ways, a response read while
//! the upstream still sends it, an unread response body closing its connection, a route's
//! `max_body` on declared and streamed bodies. Both drivers (`MONOIO_FORCE_LEGACY_DRIVER=1`).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardgate::embed::{Body, Client, Error};
use support::embed::*;
use support::*;

#[test]
fn bodies_larger_than_the_buffer_stream_both_ways() {
    const SIZE: usize = 3 << 20; // 3 MiB, the buffer is 16 KiB
    let up = Upstream::echo();
    let addr = up.addr.to_string();
    let (received, chunks) = block_on(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .build()
            .unwrap();
        let (mut tx, body) = Body::channel(None);
        monoio::spawn(async move {
            let mut pattern = Pattern::new(7);
            for _ in 0..SIZE / (64 << 10) {
                let mut chunk = vec![0u8; 64 << 10];
                pattern.fill(&mut chunk);
                tx.send(chunk).await.unwrap();
            }
            tx.finish();
        });
        let req = http::Request::post("http://svc.test/upload")
            .body(body)
            .unwrap();
        let mut body = client.send(req).await.unwrap().into_body();
        let (mut sum, mut n, mut chunks) = (Checksum::default(), 0, 0);
        while let Some(piece) = body.chunk().await.unwrap() {
            sum.update(piece);
            n += piece.len();
            chunks += 1;
        }
        assert_eq!(n, SIZE);
        (sum, chunks)
    });
    let mut expected = vec![0u8; SIZE];
    let mut pattern = Pattern::new(7);
    for part in expected.chunks_mut(64 << 10) {
        pattern.fill(part);
    }
    assert_eq!(
        received,
        Checksum::of(&expected),
        "the echoed body is the one sent"
    );
    assert!(chunks > 10, "read in pieces, not at once ({chunks})");
    let seen = up.seen();
    assert_eq!(seen.requests[0].body_len, SIZE);
    assert_eq!(
        seen.requests[0].header("transfer-encoding"),
        Some("chunked")
    );
}

#[test]
fn a_response_is_read_while_the_upstream_still_sends_it() {
    let go = Arc::new(AtomicBool::new(false));
    let gate = go.clone();
    let up = Upstream::start(move |p| {
        if p.next_request().is_none() {
            return;
        }
        p.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gate.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        p.write(b"-last");
        p.wait_close();
    });
    let addr = up.addr.to_string();
    block_on(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .build()
            .unwrap();
        let mut body = client.send(get_request("/")).await.unwrap().into_body();
        let first = body.chunk().await.unwrap().unwrap().to_vec();
        assert_eq!(
            first, b"first",
            "the first bytes came before the upstream sent the rest"
        );
        go.store(true, Ordering::SeqCst);
        assert_eq!(body.chunk().await.unwrap(), Some(&b"-last"[..]));
        assert_eq!(body.chunk().await.unwrap(), None);
    });
}

#[test]
fn a_response_body_dropped_unread_closes_its_connection() {
    let up = Upstream::fixed("unread body");
    let addr = up.addr.to_string();
    block_on(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .build()
            .unwrap();
        let resp = client.send(get_request("/1")).await.unwrap();
        drop(resp); // its body was never read
        assert_eq!(fetch(&client, "/2").await.unwrap().1, b"unread body");
        assert_eq!(fetch(&client, "/3").await.unwrap().1, b"unread body");
    });
    assert_eq!(
        up.accepted(),
        2,
        "the unread one was closed, the read one reused"
    );
    up.wait_for("the first connection closed", Duration::from_secs(5), |s| {
        s.peer_closed >= 1
    });
}

#[test]
fn a_streamed_body_beyond_the_route_max_body_is_refused() {
    let up = Upstream::echo();
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{}\"]\n\
         [[routes]]\nname = \"small\"\npath_prefix = \"/\"\ncluster = \"svc\"\nmax_body = 1000\n",
        up.addr
    );
    block_on(async {
        let (client, _file) = client_from_toml("library-max-body", &text);
        // A declared length over the limit: refused before anything is sent.
        let req = http::Request::post("http://svc.test/")
            .body(Body::from(vec![b'x'; 1001]))
            .unwrap();
        assert_eq!(client.send(req).await.unwrap_err(), Error::TooLarge);
        // A chunked stream: refused when it passes the limit.
        let (mut tx, body) = Body::channel(None);
        monoio::spawn(async move {
            for _ in 0..4 {
                if tx.send(vec![b'y'; 600]).await.is_err() {
                    return;
                }
            }
            tx.finish();
        });
        let req = http::Request::post("http://svc.test/").body(body).unwrap();
        assert_eq!(client.send(req).await.unwrap_err(), Error::TooLarge);
        // Within the limit: sent.
        let req = http::Request::post("http://svc.test/")
            .body(Body::from(vec![b'z'; 1000]))
            .unwrap();
        let echoed = client.send(req).await.unwrap().into_body().bytes().await;
        assert_eq!(echoed.unwrap().len(), 1000);
    });
    assert_eq!(
        up.request_count(),
        1,
        "only the one within the limit arrived whole"
    );
}
