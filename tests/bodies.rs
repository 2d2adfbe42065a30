//! Bodies streamed both ways: Content-Length, chunked with trailers, until-close responses, the
//! responses that never have a body (HEAD, 1xx, 204, 304), `Expect: 100-continue`, and 20 MB in
//! each direction checked by checksum with the proxy's peak memory staying far below the body size.

mod support;

use support::*;

const BIG: usize = 20 << 20;
const PIECE: usize = 64 << 10;
/// Peak memory growth allowed while 20 MB pass through (a buffered body would add 20 MB).
const MAX_GROWTH_KIB: u64 = 8 << 10;

#[test]
fn content_length_request_body_forwarded() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    let r = c.exchange(&request(
        "PUT",
        "/cl",
        &["Content-Type: text/plain"],
        b"hello, upstream",
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello, upstream");
    let seen = up.seen();
    assert_eq!(seen.requests[0].body, b"hello, upstream");
    assert_eq!(seen.requests[0].header("content-length"), Some("15"));
}

#[test]
fn chunked_request_relayed_with_trailers() {
    let up = Upstream::echo();
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    let mut req = b"POST /up HTTP/1.1\r\nHost: shardgate.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n".to_vec();
    req.extend(chunked(&[b"abc", b"defgh", b"i"], &["X-Checksum: 42"]));
    let r = c.exchange(&req);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "abcdefghi");
    let seen = up.seen();
    let got = &seen.requests[0];
    assert!(
        got.head.has_token("transfer-encoding", "chunked"),
        "the chunked request should be relayed chunked: {:?}",
        got.head.headers
    );
    assert_eq!(got.body, b"abcdefghi");
    assert_eq!(
        got.trailers,
        vec![("X-Checksum".to_string(), "42".to_string())],
        "request trailers not relayed"
    );
}

#[test]
fn chunked_response_relayed_with_trailers() {
    let up = Upstream::start(|p| {
        p.serve(|_| {
            let mut r = response(
                200,
                &[("Transfer-Encoding", "chunked"), ("Trailer", "X-Sum")],
                b"",
            );
            r.extend(chunked(&[b"first,", b"second,", b"third"], &["X-Sum: 17"]));
            r
        })
    });
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    let r = c.exchange(&request("GET", "/", &["TE: trailers"], b""));
    assert_eq!(r.status, 200);
    assert!(
        r.chunked,
        "a chunked response with trailers should reach the client chunked"
    );
    assert_eq!(r.text(), "first,second,third");
    assert_eq!(
        r.trailer("x-sum"),
        Some("17"),
        "response trailers not relayed: {:?}",
        r.trailers
    );
    // The connection is still usable: the chunked framing ended exactly.
    let r = c.exchange(&get("/again"));
    assert_eq!(r.text(), "first,second,third");
}

/// An upstream answer with neither Content-Length nor Transfer-Encoding ends when the upstream
/// closes; the client gets all of it (by close or re-framed).
#[test]
fn until_close_response_relayed() {
    let up = Upstream::start(|p| {
        if p.next_request().is_some() {
            let mut body = vec![0u8; 100_000];
            Pattern::new(7).fill(&mut body);
            p.note(Checksum::of(&body).to_note());
            p.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
            p.write(&body);
        }
    });
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    let r = c.exchange(&get("/until-close"));
    assert_eq!(r.status, 200);
    assert_eq!(Checksum::of(&r.body).to_note(), up.seen().notes[0]);
}

/// Serves `first` for the first request on a connection, then 200 "next" for the rest.
fn first_then_next(first: Vec<u8>) -> Upstream {
    Upstream::start(move |p| {
        let mut n = 0;
        p.serve(|_| {
            n += 1;
            if n == 1 {
                first.clone()
            } else {
                response(200, &[], b"next")
            }
        })
    })
}

/// No-body responses must end at their head: the proxy neither waits for a body nor forwards one,
/// which the next response on the same client connection proves.
fn assert_no_body(method: &str, upstream_reply: Vec<u8>, status: u16) {
    let up = first_then_next(upstream_reply);
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    c.send(&request(method, "/", &[], b"")).unwrap();
    let r = c
        .read_response_to(method)
        .unwrap_or_else(|e| panic!("{method} answered {status}: {e}"));
    assert_eq!(r.status, status);
    let r2 = c.exchange(&get("/next"));
    assert_eq!(
        r2.status, 200,
        "the response after the {status} to {method}"
    );
    assert_eq!(
        r2.text(),
        "next",
        "the response after the {status} to {method}"
    );
}

#[test]
fn head_response_has_no_body() {
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n";
    assert_no_body("HEAD", reply.to_vec(), 200);
}

#[test]
fn status_204_has_no_body() {
    assert_no_body(
        "GET",
        b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n".to_vec(),
        204,
    );
}

#[test]
fn status_304_has_no_body() {
    assert_no_body(
        "GET",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"x\"\r\n\r\n".to_vec(),
        304,
    );
}

/// An interim 103 before the final answer: whatever interim responses reach the client carry no
/// body, and the final response is intact.
#[test]
fn informational_response_then_final() {
    let up = first_then_next(
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
            .to_vec(),
    );
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    c.send(&get("/")).unwrap();
    let (interim, r) = c.read_final_response().expect("final response after a 103");
    assert!(
        interim.iter().all(|i| i.body.is_empty() && i.status == 103),
        "{interim:?}"
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "final");
    assert_eq!(c.exchange(&get("/next")).text(), "next");
}

#[test]
fn expect_100_continue() {
    // The upstream honours Expect itself if shardgate forwards it; either way the client must get
    // exactly one `100 Continue` before it sends the body.
    let up = Upstream::start(|p| {
        while let Some(head) = p.next_head() {
            if head
                .get("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            {
                p.write(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            let Some(req) = p.finish_request(head) else {
                return;
            };
            p.write(&response(200, &[], &req.body));
        }
    });
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    c.send(b"POST /upload HTTP/1.1\r\nHost: shardgate.test\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    c.set_timeout(ms(3000));
    let r = c
        .read_response()
        .expect("100 Continue before sending the body");
    assert_eq!(
        r.status, 100,
        "expected 100 Continue, got {:?}",
        r.head.start
    );
    c.send(b"hello world").unwrap();
    let r = c.read_response().expect("final response");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");
    assert_eq!(up.seen().requests[0].body, b"hello world");
}

// === 20 MB each way ===

/// An upstream that hashes the request body as it arrives and answers with the checksum.
fn hashing_upstream() -> Upstream {
    Upstream::start(|p| {
        p.serve(|req| {
            let sum = Checksum::of(&req.body).to_note();
            response(200, &[], sum.as_bytes())
        })
    })
}

fn upload(chunked_body: bool) {
    let up = hashing_upstream();
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&get("/warm-up")).status, 200);
    let before = proxy.peak_rss_kib();
    let head = if chunked_body {
        "POST /big HTTP/1.1\r\nHost: shardgate.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_string()
    } else {
        format!("POST /big HTTP/1.1\r\nHost: shardgate.test\r\nContent-Length: {BIG}\r\n\r\n")
    };
    c.send(head.as_bytes()).unwrap();
    let mut sent = Checksum::default();
    let mut pattern = Pattern::new(42);
    let mut piece = vec![0u8; PIECE];
    for _ in 0..BIG / PIECE {
        pattern.fill(&mut piece);
        sent.update(&piece);
        if chunked_body {
            c.send(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
            c.send(&piece).unwrap();
            c.send(b"\r\n").unwrap();
        } else {
            c.send(&piece).unwrap();
        }
    }
    if chunked_body {
        c.send(b"0\r\n\r\n").unwrap();
    }
    c.set_timeout(ms(8000));
    let r = c.read_response().expect("response to the 20 MB upload");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        sent.to_note(),
        "the upstream received different bytes"
    );
    let growth = proxy.peak_rss_kib().saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_KIB,
        "peak RSS grew by {growth} KiB during a 20 MB upload"
    );
}

/// The upstream streams 20 MB of pseudo-random bytes and notes their checksum.
fn download(chunked_body: bool) {
    let up = Upstream::start(move |p| {
        while let Some(req) = p.next_request() {
            if req.target != "/big" {
                p.write(&response(200, &[], b"small"));
                continue;
            }
            let head = if chunked_body {
                response(200, &[("Transfer-Encoding", "chunked")], b"")
            } else {
                response(200, &[("Content-Length", &BIG.to_string())], b"")
            };
            if !p.write(&head) {
                return;
            }
            let mut sum = Checksum::default();
            let mut pattern = Pattern::new(99);
            let mut piece = vec![0u8; PIECE];
            for _ in 0..BIG / PIECE {
                pattern.fill(&mut piece);
                sum.update(&piece);
                let ok = if chunked_body {
                    p.write(format!("{PIECE:x}\r\n").as_bytes())
                        && p.write(&piece)
                        && p.write(b"\r\n")
                } else {
                    p.write(&piece)
                };
                if !ok {
                    return;
                }
            }
            p.note(sum.to_note());
            if chunked_body && !p.write(b"0\r\n\r\n") {
                return;
            }
        }
    });
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&get("/warm-up")).status, 200);
    let before = proxy.peak_rss_kib();
    c.set_timeout(ms(8000));
    let r = c.exchange(&get("/big"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), BIG, "body length");
    let notes = up
        .wait_for("the checksum note", ms(3000), |s| !s.notes.is_empty())
        .notes;
    assert_eq!(
        Checksum::of(&r.body).to_note(),
        notes[0],
        "the client received different bytes"
    );
    let growth = proxy.peak_rss_kib().saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_KIB,
        "peak RSS grew by {growth} KiB during a 20 MB download"
    );
}

#[test]
fn upload_20mb_content_length() {
    upload(false);
}

#[test]
fn upload_20mb_chunked() {
    upload(true);
}

#[test]
fn download_20mb_content_length() {
    download(false);
}

#[test]
fn download_20mb_chunked() {
    download(true);
}
