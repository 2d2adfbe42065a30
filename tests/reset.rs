//! An upstream that dies in the middle of a response body (after the head and part of the body):
//! the client sees a truncated response and a closed connection, never a hang and never a body
//! that looks complete; the next client connection is served normally.

mod support;

use support::*;

/// Connection 0 answers with `head` and `partial`, then resets (or closes); later ones answer "fine".
fn dies_mid_body(head: &'static [u8], partial: &'static [u8], reset: bool) -> Upstream {
    Upstream::start(move |p| {
        if p.index == 0 {
            if p.next_request().is_some() {
                p.write(head);
                p.write(partial);
                if reset {
                    p.reset_on_close();
                }
            }
            return;
        }
        p.serve(|_| response(200, &[], b"fine"));
    })
}

fn truncated_then_recovers(up: Upstream, what: &str) {
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    c.set_timeout(ms(3000));
    c.send(&get("/")).unwrap();
    match c.read_response() {
        Ok(r) => panic!(
            "{what}: the client got a complete-looking response: {:?} {:?}",
            r.head.start,
            r.text()
        ),
        Err(e) => assert!(
            e.is_disconnect(),
            "{what}: want a closed connection, got {e}"
        ),
    }
    let mut c2 = proxy.connect();
    let r = c2.exchange(&get("/next"));
    assert_eq!(r.status, 200, "{what}: the next connection");
    assert_eq!(r.text(), "fine");
}

#[test]
fn reset_mid_content_length_body() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n";
    truncated_then_recovers(
        dies_mid_body(head, &[b'x'; 1000], true),
        "RST after 1000 of 10000 bytes",
    );
}

#[test]
fn close_mid_content_length_body() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n";
    truncated_then_recovers(
        dies_mid_body(head, &[b'x'; 1000], false),
        "FIN after 1000 of 10000 bytes",
    );
}

/// The proxy must not end a chunked response it never finished receiving with a last chunk.
#[test]
fn reset_mid_chunked_body() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    truncated_then_recovers(
        dies_mid_body(head, b"5\r\nhello\r\n10\r\nonly part", true),
        "RST inside the second chunk",
    );
}

#[test]
fn close_between_chunks() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    truncated_then_recovers(
        dies_mid_body(head, b"5\r\nhello\r\n", false),
        "FIN between chunks",
    );
}
