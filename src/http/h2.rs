//! Translation between HTTP/2 header blocks (the `http` types `h2` gives and takes) and HTTP/1.1
//! heads, so that an HTTP/2 stream goes through the same parser, router and rewriter as an
//! HTTP/1.1 request: the request's pseudo-headers and fields become an HTTP/1.1 head
//! (`:authority` → Host, split cookies joined, a body of unknown length sent chunked), and an
//! HTTP/1.1 response head (the upstream's, as `response::process` rewrote it, or a canned one)
//! becomes an HTTP/2 response without connection-specific fields. Also the client preface that
//! selects HTTP/2 on an h2c listener. Pure code; the shard's HTTP/2 stream tasks call it.

use std::mem::MaybeUninit;

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::{name_is, MAX_HEADERS};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection on an h2c listener say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// The whole preface: HTTP/2 with prior knowledge.
    H2,
    /// Anything else: HTTP/1.1.
    Http1,
    /// A prefix of the preface so far: read more.
    Partial,
}

/// Classifies the first bytes a client sent.
pub fn preface(data: &[u8]) -> Preface {
    let n = data.len().min(PREFACE.len());
    if data[..n] != PREFACE[..n] {
        Preface::Http1
    } else if n == PREFACE.len() {
        Preface::H2
    } else {
        Preface::Partial
    }
}

/// Writes the HTTP/1.1 head of an HTTP/2 request into `out` (cleared first). `end_stream`: the
/// request has no body (END_STREAM on its HEADERS). A body without `content-length` is announced
/// as chunked, which the relay then writes. `expect` is dropped (HTTP/2 flow control does its
/// job); connection-specific fields never reach here (`h2` refuses them as malformed).
pub fn request_head(parts: &http::request::Parts, end_stream: bool, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = parts.uri.authority();
    if let Some(a) = authority {
        line(out, b"host", a.as_str().as_bytes());
    }
    let mut length = false;
    let mut cookies = 0;
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if (authority.is_some() && n == "host") || n == "expect" {
            continue;
        }
        if n == "cookie" {
            // RFC 9113 §8.2.3: split cookie fields are joined with "; " for HTTP/1.1.
            out.extend_from_slice(if cookies == 0 { b"cookie: " } else { b"; " });
            out.extend_from_slice(value.as_bytes());
            cookies += 1;
            continue;
        }
        if cookies > 0 {
            out.extend_from_slice(b"\r\n");
            cookies = -1;
        }
        length |= n == "content-length";
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if cookies > 0 {
        out.extend_from_slice(b"\r\n");
    }
    if !end_stream && !length {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// An HTTP/1.1 response head that cannot become an HTTP/2 response (never one the proxy wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Untranslatable;

/// The HTTP/2 response for the HTTP/1.1 response head at the start of `head` (a whole head, as
/// `response::process` or `canned` wrote it), and the head's length (a canned response's body
/// follows it). Connection-specific fields are dropped (RFC 9113 §8.2.2).
pub fn response(head: &[u8]) -> Result<(Response<()>, usize), Untranslatable> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        head,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(Untranslatable),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(Untranslatable)?;
    let mut out = Response::new(());
    *out.status_mut() = status;
    let map = out.headers_mut();
    map.reserve(resp.headers.len());
    for h in resp.headers.iter() {
        let n = h.name;
        if [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "te",
            "trailer",
        ]
        .iter()
        .any(|c| name_is(n, c))
        {
            continue;
        }
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| Untranslatable)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| Untranslatable)?;
        map.append(name, value);
    }
    Ok((out, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(req: http::Request<()>, end_stream: bool) -> String {
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        request_head(&parts, end_stream, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn preface_cases() {
        assert_eq!(preface(PREFACE), Preface::H2);
        assert_eq!(
            preface(&[PREFACE.as_slice(), b"\0\0"].concat()),
            Preface::H2
        );
        assert_eq!(preface(b"PRI * HTTP/2"), Preface::Partial);
        assert_eq!(preface(b""), Preface::Partial);
        assert_eq!(preface(b"GET / HTTP/1.1\r\n"), Preface::Http1);
        assert_eq!(preface(b"PRI * HTTP/1.1\r\n"), Preface::Http1);
    }

    #[test]
    fn request_heads() {
        let r = http::Request::get("http://ex.com/a?b=1")
            .header("accept", "*/*")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("x-after", "y")
            .header("expect", "100-continue")
            .body(())
            .unwrap();
        assert_eq!(
            head(r, true),
            "GET /a?b=1 HTTP/1.1\r\nhost: ex.com\r\naccept: */*\r\ncookie: a=1; b=2\r\n\
             x-after: y\r\n\r\n"
        );
        // A body of unknown length goes chunked; a Host field loses to :authority.
        let r = http::Request::post("http://ex.com/up")
            .header("host", "other")
            .body(())
            .unwrap();
        assert_eq!(
            head(r, false),
            "POST /up HTTP/1.1\r\nhost: ex.com\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let r = http::Request::put("http://ex.com/")
            .header("content-length", "5")
            .header("cookie", "only=1")
            .body(())
            .unwrap();
        assert_eq!(
            head(r, false),
            "PUT / HTTP/1.1\r\nhost: ex.com\r\ncontent-length: 5\r\ncookie: only=1\r\n\r\n"
        );
        // Without :authority the Host field is kept as sent.
        let r = http::Request::get("/x")
            .header("host", "h")
            .body(())
            .unwrap();
        assert_eq!(head(r, true), "GET /x HTTP/1.1\r\nhost: h\r\n\r\n");
    }

    #[test]
    fn responses_drop_connection_fields() {
        let (r, len) = response(
            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\
              Transfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\nok",
        )
        .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["content-length"], "2");
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        assert!(r.headers().get("connection").is_none());
        assert!(r.headers().get("transfer-encoding").is_none());
        assert_eq!(len, 106);
        let (r, len) = response(crate::http::canned::response(413)).unwrap();
        assert_eq!(r.status(), 413);
        assert!(len < crate::http::canned::response(413).len());
        assert_eq!(response(b"HTTP/1.1 200 OK\r\n").err(), Some(Untranslatable));
    }
}
