//! `Expect: 100-continue` goes to the upstream by default: its 100 is relayed before the body, an
//! early final answer (405) reaches the client without the body ever being sent upstream (and the
//! client connection closes, its body unread), a silent upstream gets the proxy's own 100 after a
//! second, and `--expect-continue local` keeps the proxy answering 100 itself.

mod support;

use std::time::Instant;
use support::message::find;
use support::*;

const TWENTY_MB: usize = 20 * 1024 * 1024;

fn upload_head(len: usize) -> String {
    format!(
        "PUT /upload HTTP/1.1\r\nHost: shardgate.test\r\nExpect: 100-continue\r\n\
         Content-Length: {len}\r\n\r\n"
    )
}

/// Bytes the upstream received after the end of the first request head.
fn after_first_head(seen: &Seen) -> usize {
    let end = find(&seen.bytes, b"\r\n\r\n").expect("a request head upstream") + 4;
    seen.bytes_total - end
}

#[test]
fn early_final_answer_is_relayed_and_no_body_goes_upstream() {
    let up = Upstream::start(|p| {
        let Some(head) = p.next_head() else { return };
        p.note(format!("expect={:?}", head.get("expect")));
        p.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 5\r\n\r\nnope\n");
        p.wait_close();
    });
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    let started = Instant::now();
    c.send(upload_head(TWENTY_MB).as_bytes()).unwrap();
    let r = c.read_response().expect("the upstream's 405");
    let took = started.elapsed();
    assert_eq!((r.status, r.text()), (405, "nope\n".to_string()));
    assert!(
        took < ms(900),
        "the 405 took {took:?}: the proxy waited instead of relaying the early answer"
    );
    assert!(
        r.head.has_token("connection", "close"),
        "the unread body is still due: the response must close: {:?}",
        r.head.headers
    );
    c.expect_closed(ms(3000))
        .expect("the proxy closes after the early answer");
    let seen = up.wait_for("the proxy to close upstream", ms(3000), |s| {
        s.peer_closed == 1
    });
    assert_eq!(
        seen.notes,
        vec![r#"expect=Some("100-continue")"#.to_string()]
    );
    assert_eq!(
        after_first_head(&seen),
        0,
        "body bytes reached the upstream"
    );
}

#[test]
fn upstream_100_is_relayed_then_the_body_streams() {
    let up = Upstream::start(|p| {
        while let Some(head) = p.next_head() {
            if head.get("expect").is_some() {
                p.write(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            let Some(req) = p.finish_request(head) else {
                return;
            };
            let body = format!("got {}", req.body_len);
            p.write(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    let body = vec![b'x'; 100_000];
    let started = Instant::now();
    c.send(upload_head(body.len()).as_bytes()).unwrap();
    let interim = c.read_response().expect("100 Continue");
    let took = started.elapsed();
    assert_eq!(interim.status, 100);
    assert!(took < ms(900), "the upstream's 100 was held back {took:?}");
    c.send(&body).unwrap();
    let r = c.read_response().expect("200 after the body");
    assert_eq!((r.status, r.text()), (200, "got 100000".to_string()));
    // The connection stays usable.
    let r = c.exchange(&get("/after"));
    assert_eq!(r.status, 200);
    let seen = up.seen();
    assert_eq!(seen.requests.len(), 2);
    assert_eq!(seen.requests[0].body_len, body.len());
    assert_eq!(seen.requests[0].header("expect"), Some("100-continue"));
    assert_eq!(seen.requests[1].header("expect"), None);
}

#[test]
fn silent_upstream_gets_the_body_after_the_proxys_own_100() {
    let up = Upstream::start(|p| {
        p.serve(|req| {
            let body = format!("got {} expect={:?}", req.body_len, req.header("expect"));
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
    });
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    let started = Instant::now();
    c.send(upload_head(5).as_bytes()).unwrap();
    let interim = c.read_response().expect("the proxy's 100 Continue");
    let took = started.elapsed();
    assert_eq!(interim.status, 100);
    assert!(
        took >= ms(900),
        "a 100 after {took:?}: the upstream said nothing, so it must be the proxy's, after 1 s"
    );
    c.send(b"hello").unwrap();
    let r = c.read_response().expect("200 after the body");
    assert_eq!(
        (r.status, r.text()),
        (200, r#"got 5 expect=Some("100-continue")"#.to_string())
    );
}

#[test]
fn local_mode_answers_100_without_asking_the_upstream() {
    let up = Upstream::start(|p| {
        p.serve(|req| {
            let body = format!("got {} expect={:?}", req.body_len, req.header("expect"));
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
    });
    let proxy = Proxy::to(&[up.addr], &["--shards", "1", "--expect-continue", "local"]);
    let mut c = proxy.connect();
    let started = Instant::now();
    c.send(upload_head(5).as_bytes()).unwrap();
    let interim = c.read_response().expect("the proxy's 100 Continue");
    let took = started.elapsed();
    assert_eq!(interim.status, 100);
    assert!(took < ms(900), "local mode waited {took:?} for its 100");
    c.send(b"hello").unwrap();
    let r = c.read_response().expect("200 after the body");
    assert_eq!((r.status, r.text()), (200, "got 5 expect=None".to_string()));
}

/// A route's `expect` overrides the flag; a bad value is a config error naming file:line.
#[test]
fn route_key_overrides_the_flag_and_bad_values_are_refused() {
    let up = Upstream::start(|p| {
        p.serve(|req| {
            let body = format!("expect={:?}", req.header("expect"));
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
    });
    let cfg = temp_file(
        "expect-route",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n\n[[routes]]\npath_prefix = \"/local\"\ncluster = \"default\"\nexpect = \"local\"\n\n[[routes]]\ncluster = \"default\"\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    for (path, want) in [
        ("/local", "expect=None"),
        ("/other", r#"expect=Some("100-continue")"#),
    ] {
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        );
        c.send(head.as_bytes()).unwrap();
        assert_eq!(c.read_response().expect("100").status, 100, "{path}");
        c.send(b"ok").unwrap();
        let r = c.read_response().expect("200");
        assert_eq!(r.text(), want, "{path}");
    }

    let bad = temp_file(
        "expect-bad",
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n\n[[routes]]\ncluster = \"default\"\nexpect = \"sometimes\"\n",
    );
    let run = support::run(&["--config", bad.path(), "--check"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(":6:") && run.stderr.contains("routes[0].expect"),
        "{}",
        run.stderr
    );
    let run = support::run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--expect-continue",
        "maybe",
        "--check",
    ]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--expect-continue"), "{}", run.stderr);
}

/// curl uploading 20 MB (it sends `Expect: 100-continue` and waits for the answer): the upstream's
/// early 405 reaches curl and not one body byte reaches the upstream.
#[test]
fn curl_upload_refused_early_sends_no_body_upstream() {
    let up = Upstream::start(|p| {
        if p.next_head().is_none() {
            return;
        }
        p.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 5\r\n\r\nnope\n");
        p.wait_close();
    });
    let proxy = Proxy::to(&[up.addr], &["--shards", "1"]);
    let file = temp_file("expect-upload", &"x".repeat(TWENTY_MB));
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-T",
            file.path(),
        ])
        .arg(format!("http://{}/upload", proxy.addr))
        .output()
        .expect("curl (scripts/test.sh installs it)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "405", "{out:?}");
    let seen = up.wait_for("the proxy to close upstream", ms(3000), |s| {
        s.peer_closed == 1
    });
    assert_eq!(
        after_first_head(&seen),
        0,
        "body bytes reached the upstream"
    );
}
