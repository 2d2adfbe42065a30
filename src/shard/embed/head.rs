//! The request head a library request goes upstream with: request line (the route's prefix
//! rewrite applied), `Host` (the request's, else the endpoint as written), the caller's fields
//! less hop-by-hop and framing ones, the route's request header edits, and the framing of the
//! body (`Content-Length` or chunked). Written into the request's reused head buffer. Embedding
//! thread.

use std::io::Write;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;

use super::body::{Body, Kind};
use crate::config::Route;
use crate::http::framing::is_hop_by_hop;
use crate::http::target::Target as RequestTarget;
use crate::policy::route::strip_prefix_len;

/// Writes the head of `parts` with `body`'s framing, as `route` edits it, for endpoint
/// `endpoint` (its `Host` when the request names none) into `out`.
pub fn write(out: &mut Vec<u8>, parts: &Parts, body: &Body, route: Option<&Route>, endpoint: &str) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = target_of(parts).as_bytes();
    // The route's prefix rewrite, written as the proxy writes it.
    let rewrite = route.and_then(|r| {
        let prefix = r.rewrite_prefix.as_deref()?;
        let strip = strip_prefix_len(&r.matches.path, target)?;
        Some((strip, prefix.as_bytes()))
    });
    match (
        rewrite,
        RequestTarget::parse(target, parts.method == http::Method::OPTIONS, false),
    ) {
        (Some((strip, prefix)), Some(parsed)) => parsed.write(out, strip, prefix),
        _ => out.extend_from_slice(target),
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    match host_of(parts) {
        Some(h) => out.extend_from_slice(h),
        None => out.extend_from_slice(crate::config::discovery::host_port(endpoint).as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    let edits = route.map(|r| &r.request_headers);
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if name == HOST
            || name == CONTENT_LENGTH
            || name == TRANSFER_ENCODING
            || name == CONNECTION
            || is_hop_by_hop(n)
        {
            continue;
        }
        if let Some(e) = edits {
            if e.remove.iter().any(|r| r == n)
                || e.add.iter().any(|(a, _)| a.eq_ignore_ascii_case(n))
            {
                continue;
            }
        }
        line(out, n.as_bytes(), value.as_bytes());
    }
    if let Some(e) = edits {
        for (n, v) in &e.add {
            line(out, n.as_bytes(), v.as_bytes());
        }
    }
    match body.kind() {
        Kind::Empty if !method_has_body(parts) => {}
        Kind::Empty => out.extend_from_slice(b"content-length: 0\r\n"),
        Kind::Full(b) => {
            let _ = write!(out, "content-length: {}\r\n", b.len());
        }
        Kind::Stream {
            length: Some(n), ..
        } => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Kind::Stream { length: None, .. } => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The request target in origin form (`/path?query`).
pub fn target_of(parts: &Parts) -> &str {
    parts.uri.path_and_query().map_or("/", |p| p.as_str())
}

/// The `Host` header, else the URI's authority.
pub fn host_of(parts: &Parts) -> Option<&[u8]> {
    parts
        .headers
        .get(HOST)
        .map(|h| h.as_bytes())
        .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes()))
}

/// POST, PUT and PATCH announce an empty body (`Content-Length: 0`), as clients do.
fn method_has_body(parts: &Parts) -> bool {
    matches!(
        parts.method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}
