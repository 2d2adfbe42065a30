//! `shardgate::http::request::process` on arbitrary bytes: never panics, and every head it writes
//! for the upstream is one the upstream cannot frame differently from the proxy.
#![no_main]

use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use shardgate::http::request::{process, Forwarding, Plan, Reject, Request};
use shardgate::http::{BodyFraming, Head, HeadRules, Underscores};

#[path = "common.rs"]
mod common;
use common::{assert_wire_head, esc, WireFraming, REPARSE_HEADERS};

/// The shard passes its first upstream's `host:port` (never empty: it had to resolve).
const FALLBACK_HOSTS: [&[u8]; 3] = [b"up:80", b"127.0.0.1:9000", b"[::1]:8080"];

fuzz_target!(|data: &[u8]| {
    // Per-request facts vary with the input length so every variant is exercised without
    // spending input bytes on them (the seeds stay plain HTTP).
    let n = data.len();
    let fwd = Forwarding {
        client_ip: if n % 2 == 0 {
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))
        } else {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
        },
        request_id: (n as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
        fallback_host: FALLBACK_HOSTS[n % 3],
        rules: HeadRules {
            underscores: [Underscores::Drop, Underscores::Pass, Underscores::Reject][n % 3],
            strict: false,
        },
        https: n % 5 == 0,
        client_cert: (n % 7 == 0).then_some(b"Hash=00ff;Subject=\"CN=fuzz\";DNS=a.example".as_slice()),
        trusted_peer: n % 3 == 0,
    };
    for max_line in [8192, 40] {
        check(data, max_line, &fwd);
    }
    // `--strict-http` only ever refuses more: what it accepts, the lenient mode writes the same.
    let strict = Forwarding {
        rules: HeadRules { strict: true, ..fwd.rules },
        ..fwd
    };
    let mut out_strict = Vec::new();
    if let Ok(Head::Complete(r)) = process(data, false, 8192, &strict, |_| Plan::forward(), &mut out_strict) {
        let mut out = Vec::new();
        let lenient = process(data, false, 8192, &fwd, |_| Plan::forward(), &mut out);
        assert_eq!(lenient, Ok(Head::Complete(r)), "strict accepted what lenient did not\ninput: {}", esc(data));
        assert_eq!(out, out_strict, "strict wrote another head\ninput: {}", esc(data));
        check(data, 8192, &strict);
    }
});

/// The target the upstream receives: an absolute-form target's path and query (`/` when the path
/// is empty, `*` for OPTIONS with neither), any other target as it came.
fn origin_form<'a>(method: &str, target: &'a str) -> (&'static str, &'a str) {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let skip = if lower.starts_with("http://") {
        7
    } else if lower.starts_with("https://") {
        8
    } else {
        return ("", target);
    };
    let rest = &target[skip..];
    let path = &rest[rest.find(['/', '?', '#']).unwrap_or(rest.len())..];
    match (path.starts_with('/'), path.is_empty() && method == "OPTIONS") {
        (true, _) => ("", path),
        (false, true) => ("*", path),
        (false, false) => ("/", path),
    }
}

fn check(data: &[u8], max_line: usize, fwd: &Forwarding<'_>) {
    let mut out = Vec::new();
    let r = process(data, false, max_line, fwd, |_| Plan::forward(), &mut out);
    let mut out_full = Vec::new();
    let r_full = process(data, true, max_line, fwd, |_| Plan::forward(), &mut out_full);

    // `full` only decides what a partial head means.
    match (&r, &r_full) {
        (Ok(Head::Partial), Err(Reject::UriTooLong | Reject::HeadersTooLarge)) => {}
        (Ok(Head::Partial), other) => panic!("partial head, but full buffer gave {other:?}\ninput: {}", esc(data)),
        (_, Ok(Head::Partial)) => panic!("Partial with a full buffer\ninput: {}", esc(data)),
        _ => assert_eq!(r, r_full, "full flag changed a complete result\ninput: {}", esc(data)),
    }
    let Ok(Head::Complete(req)) = r else { return };
    assert_eq!(out, out_full, "full flag changed the written head\ninput: {}", esc(data));

    let head_len = req.head_len;
    assert!(head_len > 0 && head_len <= data.len(), "head_len {head_len} of {}\ninput: {}", data.len(), esc(data));

    // Bytes after the head (the body, a pipelined request) do not change the result, and any
    // prefix of the head is only Partial: a head split over reads parses the same.
    let mut out_exact = Vec::new();
    let r_exact = process(&data[..head_len], false, max_line, fwd, |_| Plan::forward(), &mut out_exact);
    assert_eq!(r_exact, Ok(Head::Complete(req)), "trailing bytes changed the result\ninput: {}", esc(data));
    assert_eq!(out_exact, out, "trailing bytes changed the head\ninput: {}", esc(data));
    for cut in [head_len - 1, head_len / 2] {
        let r_cut = process(&data[..cut], false, max_line, fwd, |_| Plan::forward(), &mut Vec::new());
        assert_eq!(r_cut, Ok(Head::Partial), "prefix of {cut} bytes of a complete head\ninput: {}", esc(data));
    }

    // What the client sent, per httparse (the same parser the proxy uses).
    let mut in_headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; REPARSE_HEADERS];
    let mut in_req = httparse::Request::new(&mut []);
    let parsed = in_req.parse_with_uninit_headers(data, &mut in_headers);
    assert_eq!(parsed, Ok(httparse::Status::Complete(head_len)), "input: {}", esc(data));
    let method = in_req.method.unwrap();
    let target = in_req.path.unwrap();

    // The written head, byte by byte.
    let (lead, origin) = origin_form(method, target);
    let line = [method.as_bytes(), b" ", lead.as_bytes(), origin.as_bytes(), b" HTTP/1.1\r\n"].concat();
    assert!(out.starts_with(&line), "head does not start with the request line\ninput: {}\nhead: {}", esc(data), esc(&out));
    assert_wire_head(&out, data);

    // The upstream's view of it: httparse frames it at exactly its end.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; REPARSE_HEADERS];
    let mut up = httparse::Request::new(&mut []);
    let reparsed = up.parse_with_uninit_headers(&out, &mut headers);
    assert_eq!(
        reparsed,
        Ok(httparse::Status::Complete(out.len())),
        "upstream cannot parse the head\ninput: {}\nhead: {}",
        esc(data),
        esc(&out)
    );
    let written = format!("{lead}{origin}");
    assert_eq!((up.method, up.path, up.version), (Some(method), Some(written.as_str()), Some(1)));
    // No header name with `_` reaches the upstream unless underscores pass.
    if fwd.rules.underscores != Underscores::Pass {
        assert!(
            up.headers.iter().all(|h| !h.name.contains('_')),
            "an underscored name was forwarded\ninput: {}\nhead: {}",
            esc(data),
            esc(&out)
        );
    }

    // Framing: the upstream must delimit the body exactly as the proxy relays it.
    let w = WireFraming::of(up.headers);
    let ok = match req.body {
        BodyFraming::Length(n) => w.te_headers == 0 && w.single_length() == Some(n),
        BodyFraming::Chunked => w.content_lengths.is_empty() && w.te_headers > 0 && w.te_chunked_last,
        BodyFraming::None => w.te_headers == 0 && (w.content_lengths.is_empty() || w.single_length() == Some(0)),
        BodyFraming::UntilClose => false,
    };
    assert!(
        ok,
        "proxy relays body as {:?} but upstream sees Content-Length {:?}, {} Transfer-Encoding header(s) (chunked last: {})\ninput: {}\nhead: {}",
        req.body,
        w.content_lengths.iter().map(|v| esc(v)).collect::<Vec<_>>(),
        w.te_headers,
        w.te_chunked_last,
        esc(data),
        esc(&out)
    );

    // An HTTP/1.1 request carries exactly one Host (RFC 9112 §3.2).
    assert_eq!(w.hosts, 1, "upstream head has {} Host headers\ninput: {}\nhead: {}", w.hosts, esc(data), esc(&out));

    // A second proxy of the same kind in front of the upstream frames the head the same way.
    let mut out2 = Vec::new();
    match process(&out, false, usize::MAX, fwd, |_| Plan::forward(), &mut out2) {
        Ok(Head::Complete(Request { head_len, method: m2, body, .. })) => {
            assert_eq!(head_len, out.len());
            assert_eq!(body, req.body, "re-processing the head changed its framing\ninput: {}\nhead: {}", esc(data), esc(&out));
            assert_eq!(m2, req.method);
        }
        // The proxy's own headers may push an accepted head past MAX_HEADERS.
        Err(Reject::HeadersTooLarge) if up.headers.len() > shardgate::http::MAX_HEADERS => {}
        // Known and tolerated: an HTTP/1.0 client's empty `Host:` is relayed as is, and the proxy
        // refuses an empty Host on HTTP/1.1 (not a framing difference).
        Err(Reject::BadRequest) if req.http10 && up.headers.iter().any(|h| h.name.eq_ignore_ascii_case("host") && h.value.is_empty()) => {}
        other => panic!("re-processing the written head gave {other:?}\ninput: {}\nhead: {}", esc(data), esc(&out)),
    }
}
