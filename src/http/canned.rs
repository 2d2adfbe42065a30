//! Responses shardgate writes itself (errors and `100 Continue`): static bytes, no allocation.
//! Each has a short text body and `Connection: close`; the connection closes after it.

macro_rules! canned {
    ($code:literal, $reason:literal, $len:literal, $body:literal) => {
        concat!(
            "HTTP/1.1 ",
            $code,
            " ",
            $reason,
            "\r\n",
            "Content-Type: text/plain\r\n",
            "Content-Length: ",
            $len,
            "\r\n",
            "Connection: close\r\n\r\n",
            $body
        )
        .as_bytes()
    };
}

pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Plain HTTP sent to a TLS listener (as nginx answers it), before the connection closes.
pub const PLAIN_HTTP_TO_TLS: &[u8] = canned!(
    "400",
    "Bad Request",
    "52",
    "plain HTTP request sent to a TLS port: use https://\n"
);

/// 503s that say why: every endpoint is unhealthy or its breaker open.
pub const NO_ENDPOINT: &[u8] = canned!("503", "Service Unavailable", "20", "no healthy upstream\n");
/// A gRPC request routed to a cluster that speaks HTTP/1.1 to its endpoints (no trailers).
pub const GRPC_OVER_H1: &[u8] = canned!(
    "502",
    "Bad Gateway",
    "66",
    "cluster speaks HTTP/1.1 only: gRPC needs protocol = \"h2c\" or \"h2\"\n"
);
/// An HTTP/1.1 `Upgrade` (WebSocket) routed to a cluster that speaks HTTP/2.
pub const UPGRADE_OVER_H2: &[u8] = canned!(
    "501",
    "Not Implemented",
    "71",
    "cluster speaks HTTP/2: it cannot carry an HTTP/1.1 upgrade (WebSocket)\n"
);
/// The cluster's per-shard connection limit is reached.
pub const CLUSTER_FULL: &[u8] = canned!(
    "503",
    "Service Unavailable",
    "34",
    "upstream connection limit reached\n"
);
/// The cluster's per-shard pending-request limit is reached.
pub const PENDING_FULL: &[u8] = canned!(
    "503",
    "Service Unavailable",
    "35",
    "too many pending upstream requests\n"
);
/// The upstream's TLS certificate failed verification (unknown CA, wrong name, expired).
pub const UPSTREAM_CERT_REJECTED: &[u8] = canned!(
    "502",
    "Bad Gateway",
    "30",
    "upstream certificate rejected\n"
);
/// The TLS handshake with the upstream failed for another reason (an alert, no common cipher).
pub const UPSTREAM_TLS_FAILED: &[u8] = canned!(
    "502",
    "Bad Gateway",
    "30",
    "upstream TLS handshake failed\n"
);
/// The upstream wants a client certificate: the cluster has none (`tls.cert`), or it refused it.
pub const UPSTREAM_CLIENT_CERT_REFUSED: &[u8] = canned!(
    "502",
    "Bad Gateway",
    "74",
    "upstream refused the client certificate (none configured, or not trusted)\n"
);

/// The reason phrase shardgate writes for a status it generates.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// The canned response for `status` (500 for a code without one).
pub fn response(status: u16) -> &'static [u8] {
    match status {
        400 => canned!("400", "Bad Request", "12", "bad request\n"),
        404 => canned!("404", "Not Found", "10", "not found\n"),
        408 => canned!("408", "Request Timeout", "23", "request header timeout\n"),
        413 => canned!("413", "Content Too Large", "23", "request body too large\n"),
        414 => canned!("414", "URI Too Long", "22", "request line too long\n"),
        417 => canned!(
            "417",
            "Expectation Failed",
            "24",
            "unsupported expectation\n"
        ),
        431 => canned!(
            "431",
            "Request Header Fields Too Large",
            "33",
            "request header section too large\n"
        ),
        501 => canned!("501", "Not Implemented", "16", "not implemented\n"),
        502 => canned!("502", "Bad Gateway", "16", "upstream failed\n"),
        503 => canned!(
            "503",
            "Service Unavailable",
            "33",
            "no upstream connection available\n"
        ),
        504 => canned!("504", "Gateway Timeout", "19", "upstream timed out\n"),
        _ => canned!("500", "Internal Server Error", "15", "internal error\n"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lengths_match_bodies() {
        for code in [400, 404, 408, 413, 414, 417, 431, 501, 502, 503, 504, 500] {
            let text = std::str::from_utf8(super::response(code)).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {code} ")), "{head}");
            assert!(
                head.contains(&format!("Content-Length: {}", body.len())),
                "{head}"
            );
            assert!(head.contains("Connection: close"));
        }
        for bytes in [
            super::NO_ENDPOINT,
            super::CLUSTER_FULL,
            super::PENDING_FULL,
            super::PLAIN_HTTP_TO_TLS,
            super::UPSTREAM_CERT_REJECTED,
            super::UPSTREAM_TLS_FAILED,
            super::UPSTREAM_CLIENT_CERT_REFUSED,
            super::GRPC_OVER_H1,
            super::UPGRADE_OVER_H2,
        ] {
            let text = std::str::from_utf8(bytes).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("Content-Length: {}", body.len())),
                "{head}"
            );
        }
    }
}
