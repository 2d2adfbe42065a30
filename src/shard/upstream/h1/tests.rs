//! The HTTP/1.1 exchange over the `Scripted` test double on both sides: the codec needs nothing
//! of a TCP socket, and a stream that is not one never gets spliced even past the threshold.

use std::time::Duration;

use super::attempt;
use crate::http::request::{self, Forwarding, Plan, Request};
use crate::http::Head;
use crate::shard::double::Scripted;
use crate::shard::drain::Drain;
use crate::shard::io::Buf;
use crate::shard::upstream::attempt::{Done, Failed, Limits, Tally};
use crate::shard::upstream::relay::Relay;

/// A client's request as the front-end leaves it: `buf` holds what was read (head consumed),
/// `head` the rewritten upstream head.
fn parse(raw: &[u8], forward_expect: bool) -> (Request, Buf, Vec<u8>) {
    let fwd = Forwarding {
        client_ip: "192.0.2.7".parse().unwrap(),
        request_id: 7,
        fallback_host: b"fallback",
        rules: Default::default(),
        https: false,
        client_cert: None,
        trusted_peer: false,
    };
    let mut head = Vec::new();
    let plan = |_: &request::Parsed<'_>| {
        let mut p = Plan::forward();
        p.forward_expect = forward_expect;
        p
    };
    let req = match request::process(raw, false, 8192, &fwd, plan, &mut head) {
        Ok(Head::Complete(r)) => r,
        other => panic!("not a complete head: {:?}", other.map(|_| ())),
    };
    let mut buf = Buf::with_capacity(4096);
    buf.v.extend_from_slice(raw);
    buf.consume(req.head_len);
    (req, buf, head)
}

/// Runs one attempt between two scripted streams; splice is on from the first byte.
fn run(
    raw: &[u8],
    client_rest: &[u8],
    upstream: &[u8],
    forward_expect: bool,
) -> (Result<Done, Failed>, Tally, Scripted, Scripted) {
    let (req, mut buf, mut head) = parse(raw, forward_expect);
    let mut client = Scripted::new(client_rest, 3);
    let mut up = Scripted::new(upstream, 1000);
    let drain = Drain::default();
    let limits = Limits {
        connect: None,
        upstream: Duration::from_secs(5),
        body: Duration::from_secs(5),
        max_body: u64::MAX,
        remove: &[],
        splice_at: 1,
        fill: 4096,
        drain: &drain,
    };
    let mut tally = Tally::default();
    let (mut up_buf, mut out) = (Buf::with_capacity(4096), Vec::new());
    let result = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap()
        .block_on(async {
            let relay = Relay {
                stream: &mut client,
                buf: &mut buf,
                up_buf: &mut up_buf,
                head: &mut head,
                out: &mut out,
                extra: b"X-Added: 1\r\n",
                replay: &mut Default::default(),
            };
            attempt(relay, &req, &mut up, &limits, |_| false, &mut tally).await
        });
    (result, tally, client, up)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_request_and_a_large_response_run_over_streams_that_are_not_sockets() {
    let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel";
    let body = vec![b'z'; 70_000];
    let mut upstream = b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n".to_vec();
    upstream.extend_from_slice(&body);
    let (result, tally, client, up) = run(raw, b"lo world", &upstream, false);
    let Ok(Done::Response {
        status, reusable, ..
    }) = result
    else {
        panic!("the attempt failed");
    };
    assert_eq!((status, reusable), (200, true));
    // Upstream: the rewritten head, then the whole body (3 bytes came with the head, 8 later).
    assert!(
        up.written.starts_with(b"POST /x HTTP/1.1\r\n"),
        "{:?}",
        String::from_utf8_lossy(&up.written)
    );
    assert!(find(&up.written, b"X-Request-Id: ").is_some());
    assert!(up.written.ends_with(b"\r\n\r\nhello world"));
    assert!(client.unread().is_empty());
    // Client: the response head with the route's line, then all 70000 bytes through the buffer
    // (a stream that is not TCP has no splice, even past `splice_at`).
    let head_end = find(&client.written, b"\r\n\r\n").unwrap() + 4;
    assert!(client.written.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(find(&client.written[..head_end], b"X-Added: 1\r\n").is_some());
    assert_eq!(&client.written[head_end..], &body[..]);
    assert_eq!(tally.status, 200);
    assert_eq!(tally.bytes_out, client.written.len() as u64);
    assert!(
        up.reads >= 70,
        "read in buffer-sized steps, got {} reads",
        up.reads
    );
}

#[test]
fn a_forwarded_expectation_relays_the_upstreams_100_then_the_body() {
    let raw = b"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    let upstream =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    let (result, tally, client, up) = run(raw, b"data", upstream, true);
    assert!(matches!(result, Ok(Done::Response { status: 201, .. })));
    assert!(find(&up.written, b"Expect: 100-continue").is_some());
    assert!(
        up.written.ends_with(b"\r\n\r\ndata"),
        "the body followed the 100"
    );
    assert!(client
        .written
        .starts_with(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"));
    assert_eq!(tally.bytes_out, client.written.len() as u64);
}

#[test]
fn an_upstream_closing_mid_body_fails_on_its_side_after_the_head_went_out() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let upstream = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    let (result, tally, client, _) = run(raw, b"", upstream, false);
    let Err(f) = result else {
        panic!("a short body must fail");
    };
    assert!(f.answered, "the client already has the head");
    assert!(matches!(
        f.error,
        crate::error::ProxyError::Upstream(crate::error::UpstreamError::Closed)
    ));
    assert!(client.written.ends_with(b"\r\n\r\nabc"));
    assert_eq!(tally.status, 200);
}
