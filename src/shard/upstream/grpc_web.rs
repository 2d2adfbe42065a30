//! The gRPC-Web bridge on an HTTP/2 upstream attempt (`application/grpc-web[-text][+proto]` from
//! an HTTP/1.1 or HTTP/2 client, gRPC to the upstream): the request goes up as gRPC (content type,
//! `te: trailers`; a `-text` body base64-decoded as it streams, its length dropped), and the
//! answer comes back as gRPC-Web: its content type, its DATA as is (base64 for `-text`), and its
//! trailers as the trailer frame at the end of the body instead of HTTP trailers. The sans-IO
//! codec is http/grpc_web.rs. Shard thread, on the request's task.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderValue};

use crate::http::grpc;
use crate::http::grpc_web::{self, BadBase64, TextDecoder, Web};

/// Rewrites the upstream request of a gRPC-Web call into gRPC; `None` (untouched) for others.
pub fn request(req: &mut http::Request<()>) -> Option<Web> {
    let h = req.headers_mut();
    let ct = h.get(CONTENT_TYPE)?;
    let web = grpc_web::classify(ct.as_bytes())?;
    let up = HeaderValue::from_bytes(&grpc_web::upstream_content_type(ct.as_bytes())).ok()?;
    h.insert(CONTENT_TYPE, up);
    h.insert(TE, HeaderValue::from_static("trailers"));
    if web == Web::Text {
        // The decoded body is shorter than the base64 the client announced.
        h.remove(CONTENT_LENGTH);
    }
    Some(web)
}

/// Rewrites the response head for the gRPC-Web client when the upstream answered gRPC (its
/// content type, no length: the trailer frame is added). Returns whether the body is bridged.
pub fn response(web: Option<Web>, h: &mut HeaderMap) -> Option<Web> {
    let web = web?;
    if !h
        .get(CONTENT_TYPE)
        .is_some_and(|v| grpc::is_grpc(v.as_bytes()))
    {
        return None;
    }
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(grpc_web::response_content_type(web)),
    );
    h.remove(CONTENT_LENGTH);
    Some(web)
}

/// A request body chunk on its way up: a `-text` one decoded (what a split group leaves is kept
/// for the next chunk).
pub fn up(dec: &mut Option<TextDecoder>, chunk: Bytes) -> Result<Bytes, BadBase64> {
    match dec {
        None => Ok(chunk),
        Some(d) => {
            let mut out = Vec::with_capacity(chunk.len() / 4 * 3 + 3);
            d.feed(&chunk, &mut out)?;
            Ok(Bytes::from(out))
        }
    }
}

/// The request body's decoder state for `web` (`None`: bytes pass as they are).
pub fn decoder(web: Option<Web>) -> Option<TextDecoder> {
    (web == Some(Web::Text)).then(TextDecoder::default)
}

/// A response DATA chunk on its way down: as is, or base64 for `-text`.
pub fn down(web: Web, chunk: Bytes) -> Bytes {
    match web {
        Web::Binary => chunk,
        Web::Text => {
            let mut out = Vec::with_capacity(chunk.len().div_ceil(3) * 4);
            grpc_web::encode_text(&chunk, &mut out);
            Bytes::from(out)
        }
    }
}

/// The trailer frame that ends a bridged body (base64 for `-text`).
pub fn trailer_frame(web: Web, trailers: Option<&HeaderMap>) -> Bytes {
    let mut frame = Vec::new();
    let fields = trailers
        .into_iter()
        .flatten()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    grpc_web::trailer_frame(fields, &mut frame);
    down(web, Bytes::from(frame))
}

/// The `grpc-status` in a bridged answer's head (trailers-only) or trailers, as counted.
pub fn status(h: Option<&HeaderMap>) -> Option<u8> {
    h?.get("grpc-status")
        .map(|v| grpc::status_code(v.as_bytes()))
}
