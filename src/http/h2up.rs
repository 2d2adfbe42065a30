//! Translation for HTTP/2 upstreams, both ways: the HTTP/1.1 head the pipeline rewrote for the
//! upstream becomes an HTTP/2 request (Host → `:authority`, connection-specific fields dropped,
//! `te` kept only as `te: trailers`), the upstream's HTTP/2 response head becomes an HTTP/1.1 head
//! that `response::process` rewrites like any upstream's (a body of unknown length announced
//! chunked), and trailers move between HTTP/2 header maps and chunked trailer sections. Pure
//! code; the shard's HTTP/2 upstream attempts call it.

use std::mem::MaybeUninit;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri};

use super::{canned, name_is, MAX_HEADERS};

/// Fields that only mean something on one HTTP/1.1 connection (RFC 9113 §8.2.2).
const CONNECTION_FIELDS: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "trailer",
];

/// A head that cannot become an HTTP/2 message (no Host, a field HTTP/2 cannot carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Untranslatable;

/// Whether `name` is dropped on the way to HTTP/2 (`te` is judged by its value).
fn connection_specific(name: &str) -> bool {
    CONNECTION_FIELDS.iter().any(|c| name_is(name, c))
}

/// The HTTP/2 request for the HTTP/1.1 request head at the start of `head` (as the pipeline
/// rewrote it for the upstream), with `scheme` (`http` for h2c, `https` for h2). The Host field
/// becomes `:authority`; `content-length` stays (h2 checks the DATA against it); `te_trailers`
/// (the client's TE listed `trailers`, which the HTTP/1.1 rewrite drops) adds `te: trailers`.
pub fn request(
    head: &[u8],
    scheme: &str,
    te_trailers: bool,
) -> Result<Request<()>, Untranslatable> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        head,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Untranslatable),
    }
    let host = req
        .headers
        .iter()
        .find(|h| name_is(h.name, "host"))
        .map(|h| h.value)
        .ok_or(Untranslatable)?;
    let path = req.path.ok_or(Untranslatable)?;
    let mut uri = Vec::with_capacity(scheme.len() + 3 + host.len() + path.len());
    uri.extend_from_slice(scheme.as_bytes());
    uri.extend_from_slice(b"://");
    uri.extend_from_slice(host);
    uri.extend_from_slice(if path.is_empty() { "/" } else { path }.as_bytes());
    let uri = Uri::from_maybe_shared(bytes::Bytes::from(uri)).map_err(|_| Untranslatable)?;
    let method = http::Method::from_bytes(req.method.ok_or(Untranslatable)?.as_bytes())
        .map_err(|_| Untranslatable)?;
    let mut out = Request::new(());
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    let map = out.headers_mut();
    map.reserve(req.headers.len());
    for h in req.headers.iter() {
        let n = h.name;
        if name_is(n, "host") || connection_specific(n) {
            continue;
        }
        if name_is(n, "te") && !h.value.eq_ignore_ascii_case(b"trailers") {
            continue;
        }
        append(map, n.as_bytes(), h.value)?;
    }
    if te_trailers && !map.contains_key(http::header::TE) {
        map.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    Ok(out)
}

fn append(map: &mut HeaderMap, name: &[u8], value: &[u8]) -> Result<(), Untranslatable> {
    let name = HeaderName::from_bytes(name).map_err(|_| Untranslatable)?;
    let value = HeaderValue::from_bytes(value).map_err(|_| Untranslatable)?;
    map.append(name, value);
    Ok(())
}

/// Writes the HTTP/1.1 head of an upstream's HTTP/2 response into `out` (cleared first), for
/// `response::process`: a body without `content-length` (not ended with the head) is announced
/// chunked, which the relay then writes.
pub fn response_head(parts: &http::response::Parts, end_stream: bool, out: &mut Vec<u8>) {
    out.clear();
    let status = parts.status.as_u16();
    let _ = std::io::Write::write_fmt(
        out,
        format_args!("HTTP/1.1 {} {}\r\n", status, canned::reason(status)),
    );
    let mut length = false;
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if connection_specific(n) || n == "te" {
            continue;
        }
        length |= n == "content-length";
        line(out, n.as_bytes(), value.as_bytes());
    }
    let bodiless = end_stream || status == 204 || status == 304 || status < 200;
    if !bodiless && !length {
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

/// Appends the end of a chunked body to `out`: the last chunk, the trailer fields (those HTTP/1.1
/// may carry), the final CRLF.
pub fn chunked_end(trailers: Option<&HeaderMap>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        if !connection_specific(name.as_str()) {
            line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The trailer fields of a chunked body's trailer section (`block`: the lines after the last
/// chunk, through the final CRLF); `None` when there are none. Connection-specific fields are
/// dropped.
pub fn trailers(block: &[u8]) -> Result<Option<HeaderMap>, Untranslatable> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let parsed = match httparse::parse_headers(block, &mut headers) {
        Ok(httparse::Status::Complete((_, h))) => h,
        _ => return Err(Untranslatable),
    };
    if parsed.is_empty() {
        return Ok(None);
    }
    let mut map = HeaderMap::with_capacity(parsed.len());
    for h in parsed.iter() {
        if !connection_specific(h.name) && !name_is(h.name, "te") {
            append(&mut map, h.name.as_bytes(), h.value)?;
        }
    }
    Ok((!map.is_empty()).then_some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_move_host_to_authority_and_drop_connection_fields() {
        let head = b"POST /a?b=1 HTTP/1.1\r\nHost: ex.com:8080\r\nConnection: keep-alive\r\n\
            Keep-Alive: timeout=5\r\nProxy-Connection: x\r\nTransfer-Encoding: chunked\r\n\
            Upgrade: h2c\r\nTE: trailers\r\nX-A: 1\r\nX-A: 2\r\n\r\n";
        let r = request(head, "http", false).unwrap();
        assert_eq!(r.method(), "POST");
        assert_eq!(r.uri(), "http://ex.com:8080/a?b=1");
        assert_eq!(r.headers()["te"], "trailers");
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        for n in [
            "host",
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
        ] {
            assert!(r.headers().get(n).is_none(), "{n}");
        }
        assert!(r.headers().get("upgrade").is_none());
        // `te` with anything but trailers goes.
        let r = request(
            b"GET / HTTP/1.1\r\nhost: h\r\nte: gzip\r\n\r\n",
            "https",
            false,
        )
        .unwrap();
        assert_eq!(r.uri(), "https://h/");
        assert!(r.headers().get("te").is_none());
        // The client's `TE: trailers`, dropped by the HTTP/1.1 rewrite, comes back.
        let r = request(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n", "https", true).unwrap();
        assert_eq!(r.headers()["te"], "trailers");
        // No Host: nothing to put in :authority.
        assert_eq!(
            request(b"GET / HTTP/1.1\r\n\r\n", "http", false).err(),
            Some(Untranslatable)
        );
        assert_eq!(
            request(b"GET / HTTP/1.1\r\n", "http", false).err(),
            Some(Untranslatable)
        );
    }

    #[test]
    fn response_heads_announce_unknown_lengths_chunked() {
        let resp = http::Response::builder()
            .status(201)
            .header("x-b", "1")
            .body(())
            .unwrap();
        let (parts, ()) = resp.into_parts();
        let mut out = Vec::new();
        response_head(&parts, false, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 201 Created\r\nx-b: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        response_head(&parts, true, &mut out);
        assert_eq!(out, b"HTTP/1.1 201 Created\r\nx-b: 1\r\n\r\n");
        let resp = http::Response::builder()
            .status(200)
            .header("content-length", "3")
            .body(())
            .unwrap();
        let (parts, ()) = resp.into_parts();
        response_head(&parts, false, &mut out);
        assert_eq!(out, b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n");
    }

    #[test]
    fn trailers_both_ways() {
        assert_eq!(trailers(b"\r\n").unwrap(), None);
        let t = trailers(b"X-Sum: abc\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(t["x-sum"], "abc");
        assert!(t.get("connection").is_none());
        assert_eq!(trailers(b"X-Sum abc\r\n\r\n").err(), Some(Untranslatable));
        let mut out = Vec::new();
        chunked_end(Some(&t), &mut out);
        assert_eq!(out, b"0\r\nx-sum: abc\r\n\r\n");
        out.clear();
        chunked_end(None, &mut out);
        assert_eq!(out, b"0\r\n\r\n");
    }
}
