//! The HTTP/1.1 connection as the pipeline's `Downstream`, over the `Scripted` test double: local
//! answers (keep-alive decided by the request and the drain, HEAD without a body, admission's
//! extra lines) and the start of a request body, with no socket underneath.

use std::time::Duration;

use crate::error::ClientError;
use crate::http::request::{self, Forwarding, Plan, Request};
use crate::http::Head;
use crate::shard::double::Scripted;
use crate::shard::downstream::client::Client;
use crate::shard::kit::Kits;
use crate::shard::pipeline::{Downstream, Local};

/// A connection over the double whose buffer holds `raw` (a head, maybe body bytes after it).
fn client(raw: &[u8]) -> (Client<Scripted>, Request) {
    let kits = Kits::new(4096, 4096);
    let mut c = Client::new(
        Scripted::new(b"", 1),
        "192.0.2.9:4000".parse().unwrap(),
        kits.take(),
        0,
    );
    c.buf.v.extend_from_slice(raw);
    c.scratch
        .extra
        .extend_from_slice(b"RateLimit-Policy: 10;w=1\r\n");
    let fwd = Forwarding {
        client_ip: c.client.ip(),
        request_id: 1,
        fallback_host: b"h",
        rules: Default::default(),
        https: false,
        client_cert: None,
        trusted_peer: false,
    };
    let req = match request::process(raw, false, 8192, &fwd, |_| Plan::forward(), &mut c.head) {
        Ok(Head::Complete(r)) => r,
        _ => panic!("not a complete head"),
    };
    (c, req)
}

fn answer(raw: &[u8], draining: bool) -> (Option<(u64, bool)>, Vec<u8>, usize) {
    let (mut c, req) = client(raw);
    let local = Local {
        status: 404,
        content_type: "text/plain",
        body: b"not found\n",
    };
    let got = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap()
        .block_on(c.answer(&req, &local, draining, Duration::from_secs(1)));
    (got, c.stream.written, c.buf.len())
}

#[test]
fn a_local_answer_keeps_the_connection_only_when_it_can() {
    let (got, out, left) = answer(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y", false);
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(got, Some((out.len() as u64, true)));
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"));
    assert!(text.contains("Content-Length: 10\r\nRateLimit-Policy: 10;w=1\r\n\r\nnot found\n"));
    assert!(!text.contains("Connection: close"));
    assert_eq!(left, 6, "the pipelined request stays in the buffer");

    // A drain, an unread body, or HTTP/1.0 end the connection after the answer.
    let (got, out, _) = answer(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", true);
    assert_eq!(got.map(|g| g.1), Some(false));
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("Connection: close\r\n\r\nnot found\n"));
    let (got, _, _) = answer(
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
        false,
    );
    assert_eq!(got.map(|g| g.1), Some(false));
    let (got, _, _) = answer(b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n", false);
    assert_eq!(got.map(|g| g.1), Some(false));

    // HEAD: the same head, no body.
    let (_, out, _) = answer(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert!(out.ends_with(b"Content-Length: 10\r\nRateLimit-Policy: 10;w=1\r\n\r\n"));
}

#[test]
fn a_body_starts_after_the_head_and_broken_chunked_framing_is_the_clients_fault() {
    let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
    let (mut c, req) = client(raw);
    assert_eq!(c.begin_body(&req), Ok(()));
    assert_eq!(c.buf.data(), b"3\r\nabc\r\n");
    let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    let (mut c, req) = client(raw);
    assert_eq!(c.begin_body(&req), Err(ClientError::BadBody));
}
