//! The types of a request head's pass (`process` in `request.rs`): what it needs (`Forwarding`),
//! what routing sees and decides (`Parsed`, `Plan`), what it gives back (`Request`, `RequestId`,
//! `Method`) or refuses (`Reject`). Plain data; the shard thread that owns the connection uses it.

use std::net::IpAddr;

use crate::http::head_rules::HeadRules;
use crate::http::BodyFraming;

/// The request methods the proxy treats specially; the rest pass through by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Other,
}

impl Method {
    pub(super) fn from_name(m: &str) -> Method {
        match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: safe to send twice (retry on a fresh connection).
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// What the connection task needs to know about a validated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the head in the input buffer; the body (if any) starts here.
    pub head_len: usize,
    pub method: Method,
    pub http10: bool,
    pub body: BodyFraming,
    /// The client asked to keep the connection open after this exchange.
    pub keep_alive: bool,
    /// A protocol upgrade the route allows (WebSocket) went upstream: tunnel after a 101.
    pub upgrade: bool,
    /// `Expect: 100-continue` on a request with a body, from an HTTP/1.1 client.
    pub expect_continue: bool,
    /// The expectation went upstream (route `expect = "forward"`): its 100 is awaited.
    pub expect_forwarded: bool,
    /// The plan said to answer locally: no upstream head was written.
    pub answer_locally: bool,
    /// `TE` lists `trailers`: dropped from the HTTP/1.1 upstream head (hop-by-hop), kept as
    /// `te: trailers` for an HTTP/2 upstream (gRPC needs it).
    pub te_trailers: bool,
    /// The request id sent upstream (the client's, up to 64 bytes, or the generated one).
    pub request_id: RequestId,
    /// The W3C trace id (32 hex digits) when the request carries or started a trace.
    pub trace_id: Option<[u8; 32]>,
}

/// A request id kept by value, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    bytes: [u8; 64],
    len: u8,
}

impl RequestId {
    pub(super) fn new(v: &[u8]) -> RequestId {
        let len = v.len().min(64);
        let mut bytes = [0; 64];
        bytes[..len].copy_from_slice(&v[..len]);
        RequestId {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// What routing sees of a valid request head, before anything is written upstream.
pub struct Parsed<'b> {
    pub method: &'b [u8],
    /// The origin-form target (an absolute-form target's path and query, `/` when empty).
    pub target: &'b [u8],
    /// The Host header (empty when absent).
    pub host: &'b [u8],
    pub headers: &'b [httparse::Header<'b>],
    pub content_length: Option<u64>,
}

/// What the route decided about the head the upstream receives.
pub struct Plan<'p> {
    /// The caller answers itself (direct response, 404, 413, 429): write nothing upstream.
    pub answer_locally: bool,
    /// Path rewrite: replace the first `strip` bytes of the target by `prefix`.
    pub strip: usize,
    pub prefix: &'p [u8],
    /// Headers set on the request (replacing same-named ones) and removed (lower-case names).
    pub add: &'p [(String, String)],
    pub remove: &'p [String],
    /// `Upgrade` protocols forwarded (lower-case; see http/upgrade.rs).
    pub upgrades: &'p [String],
    /// Send `Expect: 100-continue` upstream instead of answering it here.
    pub forward_expect: bool,
    /// Start a trace when the request carries no valid `traceparent`.
    pub trace_start: bool,
    /// The span id this hop forwards with, and the trace id a started trace gets.
    pub span_id: u64,
    pub new_trace: u128,
}

impl Plan<'_> {
    /// Forward unchanged (tests, and routes without edits).
    pub fn forward() -> Plan<'static> {
        Plan {
            answer_locally: false,
            strip: 0,
            prefix: b"",
            add: &[],
            remove: &[],
            upgrades: &[],
            forward_expect: false,
            trace_start: false,
            span_id: 1,
            new_trace: 1,
        }
    }
}

/// Why a request head is refused; each maps to one canned response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    BadRequest,
    UriTooLong,
    HeadersTooLarge,
    NotImplemented,
    ExpectationFailed,
}

impl Reject {
    /// The status the client gets before the connection closes.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest => 400,
            Reject::UriTooLong => 414,
            Reject::HeadersTooLarge => 431,
            Reject::NotImplemented => 501,
            Reject::ExpectationFailed => 417,
        }
    }

    /// The canned response carrying `status()`.
    pub fn response(self) -> &'static [u8] {
        crate::http::canned::response(self.status())
    }
}

/// Per-request facts the rewritten head carries.
pub struct Forwarding<'a> {
    pub client_ip: IpAddr,
    /// Written as X-Request-Id when the client sent none (32 hex digits).
    pub request_id: u128,
    /// Host sent upstream when an HTTP/1.0 client sent none.
    pub fallback_host: &'a [u8],
    /// Underscored header names and `--strict-http` (from the request's config version).
    pub rules: HeadRules,
    /// The client spoke TLS to us: `X-Forwarded-Proto: https`.
    pub https: bool,
    /// The verified client certificate as an `X-Forwarded-Client-Cert` value (mTLS).
    pub client_cert: Option<&'a [u8]>,
    /// The client is a trusted proxy: the `X-Forwarded-Client-Cert` it sent is kept (otherwise it
    /// is dropped, so a client cannot claim a certificate it did not present).
    pub trusted_peer: bool,
}
