//! What the proxy itself needs to know of gRPC (RFC-less: the gRPC over HTTP/2 protocol text):
//! whether a request is gRPC (`content-type: application/grpc*`, gRPC-Web excluded), the
//! `grpc-timeout` header as a duration, the `grpc-status` an HTTP status the proxy generated
//! stands for (mapped as Envoy maps it), and the percent-encoding of `grpc-message`. Pure code;
//! the shard's HTTP/2 stream tasks call it.

use std::time::Duration;

/// gRPC status codes the proxy produces itself.
pub mod code {
    pub const UNKNOWN: u8 = 2;
    pub const DEADLINE_EXCEEDED: u8 = 4;
    pub const PERMISSION_DENIED: u8 = 7;
    pub const RESOURCE_EXHAUSTED: u8 = 8;
    pub const UNIMPLEMENTED: u8 = 12;
    pub const INTERNAL: u8 = 13;
    pub const UNAVAILABLE: u8 = 14;
    pub const UNAUTHENTICATED: u8 = 16;
}

/// A `content-type` that makes a request gRPC: `application/grpc` alone or with a `+format` or
/// `;params` suffix. gRPC-Web (`application/grpc-web…`) is not gRPC on the wire.
pub fn is_grpc(content_type: &[u8]) -> bool {
    const BASE: &[u8] = b"application/grpc";
    content_type.len() >= BASE.len()
        && content_type[..BASE.len()].eq_ignore_ascii_case(BASE)
        && matches!(content_type.get(BASE.len()), None | Some(b'+' | b';'))
}

/// A `grpc-status` value as the code counted: anything but a code gRPC defines (0–16) is 2,
/// UNKNOWN.
pub fn status_code(v: &[u8]) -> u8 {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<u8>().ok())
        .filter(|&c| c <= 16)
        .unwrap_or(2)
}

/// The `grpc-timeout` header: 1–8 ASCII digits and a unit (H, M, S, m, u, n). `None` when it
/// is malformed (gRPC servers then ignore it; so does the proxy).
pub fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The gRPC status a response the proxy generated with this HTTP status stands for, as Envoy
/// maps it: no route (404) → UNIMPLEMENTED; 429, 502, 503, 504 (breaker open, no healthy
/// upstream, pool full, timeouts) → UNAVAILABLE; 400 → INTERNAL; 401 → UNAUTHENTICATED;
/// 403 → PERMISSION_DENIED; 413 → RESOURCE_EXHAUSTED; anything else → UNKNOWN.
pub fn status_for_http(status: u16) -> u8 {
    match status {
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => code::UNAVAILABLE,
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        413 => code::RESOURCE_EXHAUSTED,
        _ => code::UNKNOWN,
    }
}

/// Appends `msg` percent-encoded as `grpc-message` wants it: bytes outside printable ASCII and
/// `%` itself become `%XX`.
pub fn encode_message(msg: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in msg {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc(b"application/grpc"));
        assert!(is_grpc(b"application/grpc+proto"));
        assert!(is_grpc(b"Application/GRPC;charset=x"));
        assert!(!is_grpc(b"application/grpc-web"));
        assert!(!is_grpc(b"application/grpc-web+proto"));
        assert!(!is_grpc(b"application/grpcx"));
        assert!(!is_grpc(b"application/json"));
        assert!(!is_grpc(b""));
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout(b"99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout(b"5n"), Some(Duration::from_nanos(5)));
        for bad in [
            &b""[..],
            b"S",
            b"123456789S",
            b"10",
            b"1x",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(
                parse_timeout(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn envoy_status_mapping() {
        let map = [
            (404, 12),
            (429, 14),
            (502, 14),
            (503, 14),
            (504, 14),
            (400, 13),
            (401, 16),
            (403, 7),
            (413, 8),
            (500, 2),
            (431, 2),
        ];
        for (http, grpc) in map {
            assert_eq!(status_for_http(http), grpc, "{http}");
        }
    }

    #[test]
    fn message_percent_encoding() {
        let mut out = Vec::new();
        encode_message("no healthy upstream: 100% é\n".as_bytes(), &mut out);
        assert_eq!(out, b"no healthy upstream: 100%25 %C3%A9%0A");
    }
}
