//! `shardgate::http::response::process` on arbitrary bytes: never panics, and every head it writes
//! for the client tells the client exactly how the proxy delimits the body that follows.
//! Input: one byte of `ResponseCtx` flags, then the upstream's bytes.
#![no_main]

use std::mem::MaybeUninit;

use libfuzzer_sys::fuzz_target;
use shardgate::http::response::{process, Kind, Malformed, Response, ResponseCtx};
use shardgate::http::{BodyFraming, Head};

#[path = "common.rs"]
mod common;
use common::{assert_wire_head, esc, WireFraming, REPARSE_HEADERS};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, buf)) = data.split_first() else { return };
    let ctx = ResponseCtx {
        head_request: flags & 1 != 0,
        client_http10: flags & 2 != 0,
        client_keep_alive: flags & 4 != 0,
        upgrade_requested: flags & 8 != 0,
        remove: &[],
        extra: b"",
    };
    check(buf, ctx);
});

fn check(buf: &[u8], ctx: ResponseCtx) {
    let mut out = Vec::new();
    let r = process(buf, false, ctx, &mut out);
    let mut out_full = Vec::new();
    let r_full = process(buf, true, ctx, &mut out_full);
    match (&r, &r_full) {
        (Ok(Head::Partial), Err(Malformed)) => {}
        (Ok(Head::Partial), other) => panic!("partial head, but full buffer gave {other:?}\ninput: {}", esc(buf)),
        (_, Ok(Head::Partial)) => panic!("Partial with a full buffer\ninput: {}", esc(buf)),
        _ => assert_eq!(r, r_full, "full flag changed a complete result\ninput: {}", esc(buf)),
    }
    let Ok(Head::Complete(resp)) = r else { return };
    assert_eq!(out, out_full);
    let Response { head_len, status, kind, body, upstream_reusable, close_client, dechunk } = resp;
    assert!(head_len > 0 && head_len <= buf.len(), "head_len {head_len} of {}\ninput: {}", buf.len(), esc(buf));

    // Bytes after the head do not matter; prefixes of it are Partial.
    let mut out_exact = Vec::new();
    assert_eq!(process(&buf[..head_len], false, ctx, &mut out_exact), Ok(Head::Complete(resp)));
    assert_eq!(out_exact, out);
    for cut in [head_len - 1, head_len / 2] {
        let r_cut = process(&buf[..cut], false, ctx, &mut Vec::new());
        assert_eq!(r_cut, Ok(Head::Partial), "prefix of {cut} bytes of a complete head\ninput: {}", esc(buf));
    }

    // Decisions that hold whatever the headers.
    assert!(status <= 999, "status {status}\ninput: {}", esc(buf));
    assert_eq!(kind == Kind::Switching, status == 101, "input: {}", esc(buf));
    if kind == Kind::Switching {
        assert!(ctx.upgrade_requested);
    }
    if kind != Kind::Final || ctx.head_request || status == 204 || status == 304 {
        assert_eq!(body, BodyFraming::None, "no body may follow\ninput: {}", esc(buf));
    }
    assert!(!(upstream_reusable && body == BodyFraming::UntilClose));
    assert_eq!(dechunk, ctx.client_http10 && body == BodyFraming::Chunked);
    if kind == Kind::Final && (body == BodyFraming::UntilClose || dechunk || !ctx.client_keep_alive) {
        assert!(close_client, "client kept open after a body delimited by close\ninput: {}", esc(buf));
    }

    if kind == Kind::Interim && ctx.client_http10 {
        assert!(out.is_empty(), "1xx written to an HTTP/1.0 client\ninput: {}", esc(buf));
        return;
    }

    // The written head, byte by byte.
    let line = format!("HTTP/1.1 {status:03} ");
    assert!(out.starts_with(line.as_bytes()), "bad status line\ninput: {}\nhead: {}", esc(buf), esc(&out));
    assert_wire_head(&out, buf);

    // The client's view of it.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; REPARSE_HEADERS];
    let mut cl = httparse::Response::new(&mut []);
    let reparsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut cl, &out, &mut headers);
    assert_eq!(
        reparsed,
        Ok(httparse::Status::Complete(out.len())),
        "client cannot parse the head\ninput: {}\nhead: {}",
        esc(buf),
        esc(&out)
    );
    assert_eq!((cl.version, cl.code), (Some(1), Some(status)));

    // Framing: RFC 9112 §6.3 as the client applies it must give the body the proxy sends.
    let w = WireFraming::of(cl.headers);
    let closes = w.connection_has(b"close");
    let bodiless = kind != Kind::Final || ctx.head_request || status == 204 || status == 304;
    let ok = match body {
        _ if bodiless => true,
        BodyFraming::Length(n) => w.te_headers == 0 && w.single_length() == Some(n),
        BodyFraming::Chunked if dechunk => w.te_headers == 0 && w.content_lengths.is_empty() && closes,
        BodyFraming::Chunked => w.content_lengths.is_empty() && w.te_headers > 0 && w.te_chunked_last,
        // Nothing follows the head: a zero length says so, or the close that follows it.
        BodyFraming::None => {
            w.te_headers == 0
                && (w.single_length() == Some(0) || (w.content_lengths.is_empty() && closes && close_client))
        }
        BodyFraming::UntilClose => w.te_headers == 0 && w.content_lengths.is_empty() && closes,
    };
    assert!(
        ok,
        "proxy sends body as {body:?} (dechunk {dechunk}) but client sees Content-Length {:?}, {} Transfer-Encoding header(s) (chunked last: {}), Connection {:?}\ninput: {}\nhead: {}",
        w.content_lengths.iter().map(|v| esc(v)).collect::<Vec<_>>(),
        w.te_headers,
        w.te_chunked_last,
        w.connection.iter().map(|v| esc(v)).collect::<Vec<_>>(),
        esc(buf),
        esc(&out)
    );
    if kind == Kind::Final {
        assert_eq!(closes, close_client, "Connection: close on the wire vs close_client\ninput: {}\nhead: {}", esc(buf), esc(&out));
    }
}
