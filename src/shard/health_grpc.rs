//! The gRPC health check (`check = "grpc"` or `"grpc:SERVICE"`): one call of the standard
//! `grpc.health.v1.Health/Check` over HTTP/2 on a connection of its own (h2c with prior
//! knowledge, or the cluster's TLS), passed when the answer is `grpc-status: 0` with
//! `HealthCheckResponse.status = SERVING`. The protobuf messages are one field each, so they
//! are written and read here by hand (no protoc step, no protobuf crate). Shard thread, on the
//! probe's task.

use std::pin::pin;

use bytes::Bytes;
use http::{HeaderMap, Request};

use super::upstream::stream::UpStream;

/// The method every gRPC server with health checking serves.
const PATH: &str = "/grpc.health.v1.Health/Check";
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;
/// More response bytes than a health answer can take: not a health service.
const MAX_ANSWER: usize = 1024;

/// Runs the check on a connected stream; `None` when the call itself failed.
pub async fn check(s: UpStream, authority: &str, service: &str) -> Option<bool> {
    let tls = matches!(s, UpStream::Tls { .. });
    let io = monoio_compat::StreamWrapper::new(s);
    let (client, conn) = h2::client::handshake(io).await.ok()?;
    let conn = pin!(conn);
    let call = pin!(call(client, tls, authority, service));
    // The connection is driven while the call runs and dropped (closed) when it ends.
    monoio::select! {
        verdict = call => verdict,
        _ = conn => None,
    }
}

async fn call(
    client: h2::client::SendRequest<Bytes>,
    tls: bool,
    authority: &str,
    service: &str,
) -> Option<bool> {
    let scheme = if tls { "https" } else { "http" };
    let req = Request::post(format!("{scheme}://{authority}{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "shardgate-health")
        .body(())
        .ok()?;
    let mut client = client.ready().await.ok()?;
    let (resp, mut body) = client.send_request(req, false).ok()?;
    body.send_data(Bytes::from(request_message(service)), true)
        .ok()?;
    let resp = resp.await.ok()?;
    if resp.status() != 200 {
        return Some(false);
    }
    // Trailers-only: the status is in the head and no message follows.
    if let Some(done) = grpc_ok(resp.headers()) {
        if !done {
            return Some(false);
        }
    }
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.ok()?;
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
        if got.len() > MAX_ANSWER {
            return Some(false);
        }
    }
    let trailers = body.trailers().await.ok()?.unwrap_or_default();
    Some(grpc_ok(&trailers) == Some(true) && serving(&got))
}

/// `Some(true)` for `grpc-status: 0`, `Some(false)` for another status, `None` without one.
fn grpc_ok(h: &HeaderMap) -> Option<bool> {
    h.get("grpc-status").map(|v| v.as_bytes() == b"0")
}

/// `HealthCheckRequest { service = 1 }` in a gRPC message frame (uncompressed).
fn request_message(service: &str) -> Vec<u8> {
    let mut pb = Vec::with_capacity(service.len() + 4);
    if !service.is_empty() {
        pb.push(0x0a); // field 1, length-delimited
        put_varint(&mut pb, service.len() as u64);
        pb.extend_from_slice(service.as_bytes());
    }
    let mut out = Vec::with_capacity(5 + pb.len());
    out.push(0);
    out.extend_from_slice(&(pb.len() as u32).to_be_bytes());
    out.extend_from_slice(&pb);
    out
}

/// Whether a gRPC message frame holds `HealthCheckResponse { status = SERVING }`.
fn serving(frame: &[u8]) -> bool {
    let Some((&[0, a, b, c, d], pb)) = frame.split_first_chunk::<5>() else {
        return false;
    };
    if u32::from_be_bytes([a, b, c, d]) as usize != pb.len() {
        return false;
    }
    // The last `status` field wins (protobuf); other fields are skipped.
    let mut status = 0;
    let mut rest = pb;
    while let Some((key, r)) = varint(rest) {
        rest = r;
        match (key >> 3, key & 7) {
            (1, 0) => {
                let Some((v, r)) = varint(rest) else {
                    return false;
                };
                status = v;
                rest = r;
            }
            (_, 0) => match varint(rest) {
                Some((_, r)) => rest = r,
                None => return false,
            },
            (_, 2) => match varint(rest) {
                Some((n, r)) if (n as usize) <= r.len() => rest = &r[n as usize..],
                _ => return false,
            },
            _ => return false,
        }
    }
    rest.is_empty() && status == SERVING
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frames() {
        assert_eq!(request_message(""), [0, 0, 0, 0, 0]);
        assert_eq!(
            request_message("a.B"),
            [0, 0, 0, 0, 5, 0x0a, 3, b'a', b'.', b'B']
        );
        let long = "x".repeat(200);
        let m = request_message(&long);
        assert_eq!(&m[..8], &[0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
    }

    #[test]
    fn serving_answers() {
        assert!(serving(&[0, 0, 0, 0, 2, 0x08, 1]));
        assert!(!serving(&[0, 0, 0, 0, 2, 0x08, 2]), "NOT_SERVING");
        assert!(!serving(&[0, 0, 0, 0, 0]), "UNKNOWN (the default)");
        assert!(
            !serving(&[0, 0, 0, 0, 3, 0x08, 1]),
            "length beyond the frame"
        );
        assert!(!serving(&[1, 0, 0, 0, 2, 0x08, 1]), "compressed");
        assert!(!serving(&[]));
        // An unknown string field before it is skipped.
        assert!(serving(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1]));
        assert!(!serving(&[0, 0, 0, 0, 2, 0x08, 0x81]), "a cut varint");
    }
}
