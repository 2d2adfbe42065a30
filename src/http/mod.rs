//! Sans-IO HTTP/1.1: head parsing and validation (httparse + RFC 9112 framing rules; Host and
//! request-target syntax in `host` and `target`; operator head rules in `head_rules`), header
//! rewriting into a reused output buffer, header and cookie lookup (`lookup`), the chunked codec,
//! canned responses, what the proxy needs of gRPC (`grpc`), and the translation of HTTP/2 header blocks to and from HTTP/1.1 heads (`h2`).
//! Pure code: no runtime, no threads; the shard's connection task calls it.

pub mod canned;
pub mod chunked;
pub(crate) mod framing;
pub mod grpc;
pub mod grpc_web;
pub mod h2;
pub mod h2_reason;
pub mod h2up;
pub mod head_rules;
mod host;
pub mod lookup;
pub mod proxy_protocol;
pub mod request;
pub mod response;
pub(crate) mod target;
pub mod trace;
pub mod upgrade;

#[cfg(test)]
mod hardening_tests;

pub use framing::BodyFraming;
pub use head_rules::{HeadRules, Underscores};

/// Headers httparse may fill per head; more is answered 431 (request) or 502 (response).
pub const MAX_HEADERS: usize = 128;

/// What processing a head in the buffer gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Head<T> {
    /// A whole head was parsed and rewritten into the output buffer.
    Complete(T),
    /// More bytes are needed.
    Partial,
}

/// Case-insensitive ASCII comparison of a header name.
#[inline]
pub(crate) fn name_is(name: &str, lower: &str) -> bool {
    name.len() == lower.len() && name.as_bytes().eq_ignore_ascii_case(lower.as_bytes())
}
