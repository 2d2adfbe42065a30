//! Library mode: the response header map the caller gets from an HTTP/1.1 upstream (built from
//! the one parse of the head, its values slices of one copy of the head): every field as sent
//! (repeated names in order, an empty value, a non-ASCII byte, many fields, the interim answer's
//! fields left out), intact after the connection's buffer has carried the next responses, and
//! a head the proxy would refuse refused here too. Scripted upstreams on 127.0.0.1; run on both
//! monoio drivers (io_uring and `MONOIO_FORCE_LEGACY_DRIVER=1`).

mod support;

use shardgate::embed::{Client, Error};
use support::embed::*;
use support::*;

/// A final head with many fields, the request's target echoed in `x-target`.
fn head_for(target: &str) -> Vec<u8> {
    let mut h = b"HTTP/1.1 103 Early Hints\r\nLink: </early.css>; rel=preload\r\n\r\n".to_vec();
    h.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n");
    h.extend_from_slice(format!("X-Target: {target}\r\n").as_bytes());
    h.extend_from_slice(b"Set-Cookie: a=1\r\nX-Empty:\r\nSet-Cookie: b=2\r\n");
    h.extend_from_slice(b"X-Latin: caf\xe9\r\n");
    for i in 0..40 {
        h.extend_from_slice(format!("X-Field-{i}: value {i} of {target}\r\n").as_bytes());
    }
    h.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
    h
}

fn client_for(addr: &str) -> Client {
    Client::builder()
        .cluster("svc", &[addr])
        .route_prefix("/", "svc")
        .build()
        .unwrap()
}

#[test]
fn response_fields_reach_the_caller_intact_across_reused_buffers() {
    let up = Upstream::start(|p| p.serve(|req| head_for(&req.target)));
    let addr = up.addr.to_string();
    block_on(async {
        let client = client_for(&addr);
        let mut kept = Vec::new();
        for i in 0..5 {
            let resp = client.send(get_request(&format!("/r{i}"))).await.unwrap();
            assert_eq!(resp.status(), 200);
            let headers = resp.headers().clone();
            assert_eq!(resp.into_body().bytes().await.unwrap(), b"ok");
            kept.push(headers);
        }
        // All five on one connection: its buffer carried every later head after each map was
        // built, and each map still holds its own response's values.
        for (i, h) in kept.iter().enumerate() {
            let target = format!("/r{i}");
            assert_eq!(h["x-target"], target.as_str());
            assert_eq!(h["content-type"], "text/plain");
            assert_eq!(h["content-length"], "2");
            let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
            assert_eq!(cookies, ["a=1", "b=2"], "repeated fields in order");
            assert_eq!(h["x-empty"], "");
            assert_eq!(h["x-latin"].as_bytes(), b"caf\xe9");
            for f in 0..40 {
                let want = format!("value {f} of {target}");
                assert_eq!(h[format!("x-field-{f}").as_str()], want.as_str());
            }
            assert!(
                h.get("link").is_none(),
                "the 103's field is not the answer's"
            );
            assert_eq!(h.len(), 47);
        }
    });
    assert_eq!(up.accepted(), 1, "one keep-alive connection");
    assert_eq!(up.request_count(), 5);
}

#[test]
fn a_response_head_the_proxy_refuses_is_refused() {
    // Two lengths that disagree: ambiguous framing (the proxy answers 502).
    let up =
        Upstream::raw_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok");
    let addr = up.addr.to_string();
    block_on(async {
        let client = client_for(&addr);
        match client.send(get_request("/")).await {
            Err(Error::UpstreamMalformed) => {}
            other => panic!("expected UpstreamMalformed, got {other:?}"),
        }
    });
}
