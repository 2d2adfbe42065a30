//! Response heads from upstreams: parse and validate like requests (a malformed response → 502),
//! decide how the body is framed and whether either connection stays open, and write the head the
//! client receives. Runs on the shard thread that owns the exchange.

use std::mem::MaybeUninit;

use super::framing::{is_hop_by_hop, ConnectionTokens, FramingScan};
use super::request::header;
use super::{name_is, BodyFraming, Head, MAX_HEADERS};

/// What the client side of the exchange needs from the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCtx<'a> {
    pub head_request: bool,
    pub client_http10: bool,
    /// The client may keep its connection after this response (its wish, and no drain).
    pub client_keep_alive: bool,
    pub upgrade_requested: bool,
    /// Lower-case header names the route removes from final responses.
    pub remove: &'a [String],
    /// Whole header lines (`Name: value\r\n`) the route adds to final responses.
    pub extra: &'a [u8],
}

impl ResponseCtx<'_> {
    pub fn plain(
        head_request: bool,
        client_http10: bool,
        client_keep_alive: bool,
        upgrade_requested: bool,
    ) -> ResponseCtx<'static> {
        ResponseCtx {
            head_request,
            client_http10,
            client_keep_alive,
            upgrade_requested,
            remove: &[],
            extra: b"",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1xx other than 101: relay (to HTTP/1.1 clients) and read the next head.
    Interim,
    /// 101 to an upgrade request: tunnel both ways from here on.
    Switching,
    Final,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub head_len: usize,
    pub status: u16,
    pub kind: Kind,
    pub body: BodyFraming,
    /// The upstream connection may go back to the pool once the body is read.
    pub upstream_reusable: bool,
    /// The client connection closes after this response.
    pub close_client: bool,
    /// Decode chunked for an HTTP/1.0 client (sent until close).
    pub dechunk: bool,
}

/// The upstream response head is not acceptable (→ 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// A response head as parsed: what the exchange decides from it, and its fields as they came
/// (hop-by-hop ones included), borrowing the buffer.
pub struct Parsed<'p> {
    pub response: Response,
    pub fields: &'p [httparse::Header<'p>],
    reason: &'p str,
    /// Borrowed, not moved: the tokens are a few hundred bytes.
    conn: &'p ConnectionTokens<'p>,
}

/// Parses the response head at the start of `buf`; on success `out` holds the client's head
/// (empty for an interim response an HTTP/1.0 client must not see).
pub fn process(
    buf: &[u8],
    full: bool,
    ctx: ResponseCtx<'_>,
    out: &mut Vec<u8>,
) -> Result<Head<Response>, Malformed> {
    inspect(buf, full, &ctx, |p| {
        write_client_head(p, &ctx, out);
        p.response
    })
}

/// Parses and validates the head at the start of `buf` as `process` does (one httparse pass),
/// without writing a client's head: `then` reads the parsed head (the library client builds its
/// caller's header map from the fields) and its result is returned.
pub fn inspect<T>(
    buf: &[u8],
    full: bool,
    ctx: &ResponseCtx<'_>,
    then: impl FnOnce(&Parsed<'_>) -> T,
) -> Result<Head<T>, Malformed> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if !full => return Ok(Head::Partial),
        _ => return Err(Malformed),
    };
    let (Some(minor), Some(status)) = (resp.version, resp.code) else {
        return Err(Malformed);
    };
    let reason = resp.reason.unwrap_or("");

    let mut framing = FramingScan::default();
    let mut conn = ConnectionTokens::default();
    for h in resp.headers.iter() {
        if !framing.header(h.name, h.value) && name_is(h.name, "connection") {
            conn.add(h.value);
        }
    }
    if conn.must_refuse() {
        return Err(Malformed);
    }
    let kind = match status {
        101 if ctx.upgrade_requested => Kind::Switching,
        101 => return Err(Malformed),
        100..=199 => Kind::Interim,
        _ => Kind::Final,
    };
    let body = if kind != Kind::Final || ctx.head_request || status == 204 || status == 304 {
        // Still reject ambiguous framing headers even where no body follows.
        framing.response().map_err(|_| Malformed)?;
        BodyFraming::None
    } else {
        framing.response().map_err(|_| Malformed)?
    };
    let upstream_keep = if minor == 0 {
        conn.keep_alive && !conn.close
    } else {
        !conn.close
    };
    let upstream_reusable = kind == Kind::Final && upstream_keep && body != BodyFraming::UntilClose;
    let dechunk = ctx.client_http10 && body == BodyFraming::Chunked;
    let close_client = kind == Kind::Final
        && (!ctx.client_keep_alive || body == BodyFraming::UntilClose || dechunk);

    let parsed = Parsed {
        response: Response {
            head_len,
            status,
            kind,
            body,
            upstream_reusable,
            close_client,
            dechunk,
        },
        fields: resp.headers,
        reason,
        conn: &conn,
    };
    Ok(Head::Complete(then(&parsed)))
}

/// The head the client receives for `p` (nothing for an interim response to HTTP/1.0).
fn write_client_head(p: &Parsed<'_>, ctx: &ResponseCtx<'_>, out: &mut Vec<u8>) {
    let Response {
        status,
        kind,
        close_client,
        dechunk,
        ..
    } = p.response;
    out.clear();
    if kind == Kind::Interim && ctx.client_http10 {
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
    out.push(b' ');
    out.extend_from_slice(p.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in p.fields.iter() {
        let n = h.name;
        let dropped = is_hop_by_hop(n)
            || p.conn.lists(n)
            || (name_is(n, "upgrade") && kind != Kind::Switching)
            || (dechunk && name_is(n, "transfer-encoding"))
            || (kind == Kind::Final && ctx.remove.iter().any(|r| name_is(n, r)));
        if !dropped {
            header(out, n.as_bytes(), h.value);
        }
    }
    if kind == Kind::Final {
        out.extend_from_slice(ctx.extra);
    }
    match kind {
        Kind::Switching => out.extend_from_slice(b"Connection: upgrade\r\n"),
        Kind::Final if close_client => out.extend_from_slice(b"Connection: close\r\n"),
        Kind::Final if ctx.client_http10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET11: ResponseCtx<'static> = ResponseCtx {
        head_request: false,
        client_http10: false,
        client_keep_alive: true,
        upgrade_requested: false,
        remove: &[],
        extra: b"",
    };

    fn run(input: &[u8], ctx: ResponseCtx) -> (Result<Head<Response>, Malformed>, String) {
        let mut out = Vec::new();
        let r = process(input, false, ctx, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    fn done(input: &[u8], ctx: ResponseCtx) -> (Response, String) {
        match run(input, ctx) {
            (Ok(Head::Complete(r)), out) => (r, out),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn strips_hop_by_hop_and_keeps_alive() {
        let (r, out) = done(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\nConnection: X-A\r\nX-A: 1\r\nServer: t\r\n\r\nok", GET11);
        assert_eq!(
            (r.body, r.upstream_reusable, r.close_client, r.head_len),
            (BodyFraming::Length(2), true, false, 97)
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: t\r\n\r\n"
        );
    }

    #[test]
    fn bodiless_responses() {
        let head = ResponseCtx {
            head_request: true,
            ..GET11
        };
        assert_eq!(
            done(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", head)
                .0
                .body,
            BodyFraming::None
        );
        assert_eq!(
            done(b"HTTP/1.1 204 No Content\r\n\r\n", GET11).0.body,
            BodyFraming::None
        );
        assert_eq!(
            done(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                GET11
            )
            .0
            .body,
            BodyFraming::None
        );
        let (r, out) = done(b"HTTP/1.1 100 Continue\r\n\r\n", GET11);
        assert_eq!(
            (r.kind, out.as_str()),
            (Kind::Interim, "HTTP/1.1 100 Continue\r\n\r\n")
        );
    }

    #[test]
    fn until_close_closes_client() {
        let (r, out) = done(b"HTTP/1.1 200 OK\r\n\r\n", GET11);
        assert_eq!(
            (r.body, r.upstream_reusable, r.close_client),
            (BodyFraming::UntilClose, false, true)
        );
        assert!(out.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn http10_client_gets_dechunked_body() {
        let ctx = ResponseCtx {
            client_http10: true,
            client_keep_alive: true,
            ..GET11
        };
        let (r, out) = done(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            ctx,
        );
        assert!(r.dechunk && r.close_client && !out.contains("chunked"));
        let (r, out) = done(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", ctx);
        assert!(!r.close_client && out.contains("Connection: keep-alive"));
    }

    #[test]
    fn malformed_responses() {
        for (name, input) in [
            ("garbage", &b"HTTP/9 abc\r\n\r\n"[..]),
            (
                "cl and te",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            ("bad cl", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            (
                "two cl",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ),
            ("unasked 101", b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            ("connection lists content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\n"),
            ("connection lists transfer-encoding", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n"),
        ] {
            assert_eq!(run(input, GET11).0, Err(Malformed), "case {name}");
        }
    }
}
