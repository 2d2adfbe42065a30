//! Table tests of `request::process` for the head hardening rules: transfer codings (501),
//! Host and authority syntax, underscored names, `--strict-http` (each leniency accepted without
//! the switch and refused with it, or refused in both modes where httparse or the framing rules
//! already refuse it), and absolute-form targets forwarded in origin-form.

use super::head_rules::{HeadRules, Underscores};
use super::request::{process, Forwarding, Plan, Reject};
use super::Head;

fn run(rules: HeadRules, input: &[u8]) -> Result<String, Reject> {
    let fwd = Forwarding {
        client_ip: "10.1.2.3".parse().unwrap(),
        request_id: 0xabc,
        fallback_host: b"up:80",
        rules,
        https: false,
        client_cert: None,
        trusted_peer: false,
    };
    let mut out = Vec::new();
    match process(input, false, 8192, &fwd, |_| Plan::forward(), &mut out)? {
        Head::Complete(_) => Ok(String::from_utf8(out).unwrap()),
        Head::Partial => panic!("partial: {}", String::from_utf8_lossy(input)),
    }
}

fn lenient() -> HeadRules {
    HeadRules::default()
}

fn strict() -> HeadRules {
    HeadRules {
        strict: true,
        ..HeadRules::default()
    }
}

#[test]
fn codings_besides_one_final_chunked_are_501() {
    for (name, te) in [
        ("gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n"),
        (
            "deflate, chunked",
            "Transfer-Encoding: deflate, chunked\r\n",
        ),
        (
            "split over two fields",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        ),
        ("unknown", "Transfer-Encoding: foo\r\n"),
        (
            "identity, chunked",
            "Transfer-Encoding: identity, chunked\r\n",
        ),
    ] {
        let input = format!("POST / HTTP/1.1\r\nHost: h\r\n{te}\r\n0\r\n\r\n");
        assert_eq!(
            run(lenient(), input.as_bytes()),
            Err(Reject::NotImplemented),
            "{name}"
        );
    }
    let ok = run(
        lenient(),
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert!(ok.unwrap().contains("Transfer-Encoding: chunked\r\n"));
}

#[test]
fn host_syntax() {
    for host in [
        "a b", "a/b", "a@b", "a\x01b", "h:65536", "h:x", ":80", "[::1", "h:80:80",
    ] {
        let input = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(
            run(lenient(), input.as_bytes()),
            Err(Reject::BadRequest),
            "Host: {host:?}"
        );
    }
    for host in [
        "h",
        "h:8080",
        "h:",
        "[::1]:80",
        "10.0.0.1",
        "xn--d1a.example_x",
    ] {
        let input = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert!(run(lenient(), input.as_bytes()).is_ok(), "Host: {host:?}");
    }
}

#[test]
fn absolute_form_authority() {
    for (name, input) in [
        (
            "userinfo",
            &b"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        ),
        (
            "userinfo matching host",
            b"GET http://u@h/x HTTP/1.1\r\nHost: u@h\r\n\r\n",
        ),
        (
            "bad port",
            b"GET http://h:70000/x HTTP/1.1\r\nHost: h:70000\r\n\r\n",
        ),
        (
            "empty authority",
            b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        ("other host", b"GET http://a/x HTTP/1.1\r\nHost: b\r\n\r\n"),
        ("http/1.0 without host", b"GET http://a/x HTTP/1.0\r\n\r\n"),
    ] {
        assert_eq!(run(lenient(), input), Err(Reject::BadRequest), "{name}");
    }
}

#[test]
fn absolute_form_is_sent_in_origin_form() {
    for (input, line) in [
        (
            &b"GET http://h:8080/p?q=1 HTTP/1.1\r\nHost: h:8080\r\n\r\n"[..],
            "GET /p?q=1 HTTP/1.1\r\n",
        ),
        (
            b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\r\n",
        ),
        (
            b"OPTIONS http://h HTTP/1.1\r\nHost: h\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n",
        ),
        (
            b"GET HTTPS://H/a HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /a HTTP/1.1\r\n",
        ),
    ] {
        let out = run(lenient(), input).unwrap();
        assert!(out.starts_with(line), "{out}");
        assert!(out.contains("\r\nHost: "), "{out}");
    }
}

#[test]
fn underscored_names_by_mode() {
    let input = b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nTransfer_Encoding: chunked\r\nX-Ok: 1\r\n\r\n";
    let out = run(lenient(), input).unwrap();
    assert!(!out.contains('_') && out.contains("X-Ok: 1\r\n"), "{out}");
    assert!(out.contains("X-Forwarded-For: 10.1.2.3\r\n"), "{out}");
    let pass = HeadRules {
        underscores: Underscores::Pass,
        ..lenient()
    };
    let out = run(pass, input).unwrap();
    assert!(
        out.contains("X_Forwarded_For: 6.6.6.6\r\nTransfer_Encoding: chunked\r\n"),
        "{out}"
    );
    let reject = HeadRules {
        underscores: Underscores::Reject,
        ..lenient()
    };
    assert_eq!(run(reject, input), Err(Reject::BadRequest));
    assert!(run(reject, b"GET / HTTP/1.1\r\nHost: h\r\nX-Ok: 1\r\n\r\n").is_ok());
}

/// Leniencies httparse accepts: refused only with `--strict-http`.
#[test]
fn strict_refuses_what_lenient_accepts() {
    let cases: &[(&str, &[u8])] = &[
        ("bare LF everywhere", b"GET / HTTP/1.1\nHost: h\n\n"),
        (
            "bare LF after request line",
            b"GET / HTTP/1.1\nHost: h\r\n\r\n",
        ),
        ("bare LF at the end", b"GET / HTTP/1.1\r\nHost: h\r\n\n"),
        ("leading CRLF", b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("leading LF", b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("fragment", b"GET /x#frag HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("pipe in target", b"GET /a|b HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("brace in target", b"GET /a{b} HTTP/1.1\r\nHost: h\r\n\r\n"),
        (
            "backslash in target",
            b"GET /a\\b HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        ("quote in target", b"GET /a\"b HTTP/1.1\r\nHost: h\r\n\r\n"),
        (
            "non-ASCII target",
            b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        ("bad percent", b"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("not a target form", b"GET foo HTTP/1.1\r\nHost: h\r\n\r\n"),
    ];
    for (name, input) in cases {
        assert!(
            run(lenient(), input).is_ok(),
            "lenient should accept: {name}"
        );
        assert_eq!(
            run(strict(), input),
            Err(Reject::BadRequest),
            "strict: {name}"
        );
    }
    let ok = b"GET /a-b_c.~!$&'()*+,;=:@/x?q=%41/? HTTP/1.1\r\nHost: h\r\n\r\n";
    assert!(run(strict(), ok).is_ok());
    assert!(run(strict(), b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").is_ok());
}

/// Leniencies RFC 9112 allows that httparse or the framing rules refuse already: 400 either way.
#[test]
fn refused_in_both_modes() {
    let cases: &[(&str, &[u8])] = &[
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n 2\r\n\r\n",
        ),
        (
            "obs-fold with tab",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n\t2\r\n\r\n",
        ),
        (
            "NUL in value",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
        ),
        (
            "CR in value",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        ),
        (
            "whitespace-led first header",
            b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
        ),
        (
            "tab-led first header",
            b"GET / HTTP/1.1\r\n\tHost: h\r\nX: 1\r\n\r\n",
        ),
        (
            "duplicate identical Content-Length",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        ),
    ];
    for (name, input) in cases {
        assert_eq!(
            run(lenient(), input),
            Err(Reject::BadRequest),
            "lenient: {name}"
        );
        assert_eq!(
            run(strict(), input),
            Err(Reject::BadRequest),
            "strict: {name}"
        );
    }
}
