//! Message framing rules shared by requests and responses (RFC 9112 §6): Content-Length and
//! Transfer-Encoding validation, and the hop-by-hop list from the Connection header.

use super::name_is;

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding, ending with a zero chunk and trailers.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// Why framing headers are unacceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// Ambiguous or invalid framing: 400 for a request, 502 for a response.
    Invalid,
    /// A transfer coding we do not know: 501 for a request.
    UnknownCoding,
}

/// Framing headers gathered while scanning a head.
#[derive(Debug, Default)]
pub struct FramingScan {
    content_length: Option<u64>,
    content_length_count: u32,
    te_seen: bool,
    /// The final transfer coding seen so far is `chunked`.
    te_chunked_last: bool,
    te_error: Option<FramingError>,
    /// A coding other than `chunked` was named (allowed in responses, 501 in requests).
    te_other: bool,
}

/// Codings that may precede a final `chunked` in a response (relayed as they are). A request
/// naming any of them is answered 501: the proxy would relay a body whose end it did not check
/// against the coding the upstream decodes.
const KNOWN_CODINGS: [&str; 4] = ["gzip", "x-gzip", "deflate", "compress"];

impl FramingScan {
    /// Feeds one header; returns true when it was a framing header.
    pub fn header(&mut self, name: &str, value: &[u8]) -> bool {
        if name_is(name, "content-length") {
            self.content_length_count += 1;
            self.content_length = parse_content_length(value);
            true
        } else if name_is(name, "transfer-encoding") {
            self.transfer_encoding(value);
            true
        } else {
            false
        }
    }

    fn transfer_encoding(&mut self, value: &[u8]) {
        self.te_seen = true;
        for coding in value.split(|&b| b == b',') {
            let coding = trim(coding);
            if coding.is_empty() {
                continue;
            }
            if self.te_chunked_last {
                // Anything after chunked, including a second chunked, is invalid.
                self.te_error.get_or_insert(FramingError::Invalid);
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.te_chunked_last = true;
            } else if KNOWN_CODINGS
                .iter()
                .any(|k| coding.eq_ignore_ascii_case(k.as_bytes()))
            {
                self.te_chunked_last = false;
                self.te_other = true;
            } else {
                self.te_chunked_last = false;
                self.te_other = true;
                self.te_error = Some(FramingError::UnknownCoding);
            }
        }
    }

    /// Request framing: TE and CL together, bad CL, or TE not ending in chunked are errors (400,
    /// RFC 9112 §6.3); any coding besides the one final `chunked`, across all Transfer-Encoding
    /// fields, is 501 (RFC 9112 §6.1), so nothing reaches the upstream.
    pub fn request(&self, http10: bool) -> Result<BodyFraming, FramingError> {
        if self.te_seen {
            if let Some(e) = self.te_error {
                return Err(e);
            }
            if self.content_length_count > 0 || !self.te_chunked_last || http10 {
                return Err(FramingError::Invalid);
            }
            if self.te_other {
                return Err(FramingError::UnknownCoding);
            }
            return Ok(BodyFraming::Chunked);
        }
        match (self.content_length_count, self.content_length) {
            (0, _) => Ok(BodyFraming::None),
            (1, Some(0)) => Ok(BodyFraming::None),
            (1, Some(n)) => Ok(BodyFraming::Length(n)),
            _ => Err(FramingError::Invalid),
        }
    }

    /// Response framing for a response that may carry a body.
    pub fn response(&self) -> Result<BodyFraming, FramingError> {
        if self.te_seen {
            if self.te_error.is_some() || self.content_length_count > 0 || !self.te_chunked_last {
                return Err(FramingError::Invalid);
            }
            return Ok(BodyFraming::Chunked);
        }
        match (self.content_length_count, self.content_length) {
            (0, _) => Ok(BodyFraming::UntilClose),
            (1, Some(0)) => Ok(BodyFraming::None),
            (1, Some(n)) => Ok(BodyFraming::Length(n)),
            _ => Err(FramingError::Invalid),
        }
    }
}

/// Strict Content-Length: 1*DIGIT, no sign, no list, no overflow.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    let v = trim(value);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &v[start..end]
}

/// Tokens of a Connection header and the header names it makes hop-by-hop.
#[derive(Debug, Default)]
pub struct ConnectionTokens<'a> {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// Other listed names (stripped when forwarding).
    pub listed: [&'a [u8]; 16],
    pub listed_len: usize,
    /// More names than `listed` holds: the message is refused rather than half-stripped.
    pub overflow: bool,
}

impl<'a> ConnectionTokens<'a> {
    pub fn add(&mut self, value: &'a [u8]) {
        for token in value.split(|&b| b == b',') {
            let token = trim(token);
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if !token.is_empty() {
                if self.listed_len == self.listed.len() {
                    self.overflow = true;
                } else {
                    self.listed[self.listed_len] = token;
                    self.listed_len += 1;
                }
            }
        }
    }

    /// Connection lists a header that frames the message or names its target: dropping it as
    /// hop-by-hop would let the two sides frame the message differently (request smuggling).
    /// Also true when Connection lists too many names to strip them all.
    pub fn must_refuse(&self) -> bool {
        self.overflow
            || ["content-length", "transfer-encoding", "host"]
                .iter()
                .any(|h| self.lists(h))
    }

    /// True when `name` was listed in Connection (so it must not be forwarded).
    pub fn lists(&self, name: &str) -> bool {
        self.listed[..self.listed_len]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Headers that never cross the proxy (RFC 9110 §7.6.1), apart from Transfer-Encoding and
/// Upgrade which the caller handles, as it relays chunked bodies and tunnels upgrades.
pub fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
    ]
    .iter()
    .any(|h| name_is(name, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Result<BodyFraming, FramingError> {
        let mut s = FramingScan::default();
        for (n, v) in headers {
            s.header(n, v.as_bytes());
        }
        s.request(false)
    }

    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Result<BodyFraming, FramingError>,
    );

    #[test]
    fn request_framing_table() {
        use BodyFraming::*;
        use FramingError::*;
        let cases: &[Case] = &[
            ("no body", &[], Ok(None)),
            ("length", &[("Content-Length", "12")], Ok(Length(12))),
            ("zero length", &[("content-length", "0")], Ok(None)),
            ("chunked", &[("Transfer-Encoding", "chunked")], Ok(Chunked)),
            (
                "gzip then chunked",
                &[("Transfer-Encoding", "gzip, chunked")],
                Err(UnknownCoding),
            ),
            (
                "split te headers",
                &[
                    ("Transfer-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked"),
                ],
                Err(UnknownCoding),
            ),
            (
                "chunked in two fields",
                &[("Transfer-Encoding", ""), ("Transfer-Encoding", "chunked")],
                Ok(Chunked),
            ),
            (
                "deflate, gzip then chunked",
                &[("Transfer-Encoding", "deflate,gzip , chunked")],
                Err(UnknownCoding),
            ),
            (
                "cl and te",
                &[("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
                Err(Invalid),
            ),
            (
                "duplicate cl",
                &[("Content-Length", "3"), ("Content-Length", "3")],
                Err(Invalid),
            ),
            ("plus sign", &[("Content-Length", "+5")], Err(Invalid)),
            ("negative", &[("Content-Length", "-1")], Err(Invalid)),
            ("list", &[("Content-Length", "5, 5")], Err(Invalid)),
            ("inner space", &[("Content-Length", "5 5")], Err(Invalid)),
            ("letters", &[("Content-Length", "abc")], Err(Invalid)),
            ("empty", &[("Content-Length", "")], Err(Invalid)),
            (
                "overflow",
                &[("Content-Length", "99999999999999999999")],
                Err(Invalid),
            ),
            (
                "chunked not last",
                &[("Transfer-Encoding", "chunked, gzip")],
                Err(Invalid),
            ),
            (
                "chunked twice",
                &[("Transfer-Encoding", "chunked, chunked")],
                Err(Invalid),
            ),
            ("gzip only", &[("Transfer-Encoding", "gzip")], Err(Invalid)),
            (
                "unknown coding",
                &[("Transfer-Encoding", "foo")],
                Err(UnknownCoding),
            ),
            (
                "unknown then chunked",
                &[("Transfer-Encoding", "foo, chunked")],
                Err(UnknownCoding),
            ),
        ];
        for (name, headers, want) in cases {
            assert_eq!(&req(headers), want, "case {name}");
        }
    }

    #[test]
    fn te_on_http10_is_invalid() {
        let mut s = FramingScan::default();
        s.header("Transfer-Encoding", b"chunked");
        assert_eq!(s.request(true), Err(FramingError::Invalid));
    }

    /// Responses keep the RFC 9112 §6.3 reading: known codings before a final chunked are relayed.
    #[test]
    fn response_relays_known_codings_before_chunked() {
        let mut s = FramingScan::default();
        s.header("Transfer-Encoding", b"gzip, chunked");
        assert_eq!(s.response(), Ok(BodyFraming::Chunked));
        let mut s = FramingScan::default();
        s.header("Transfer-Encoding", b"gzip");
        assert_eq!(s.response(), Err(FramingError::Invalid));
    }

    #[test]
    fn response_without_length_reads_until_close() {
        assert_eq!(
            FramingScan::default().response(),
            Ok(BodyFraming::UntilClose)
        );
    }

    #[test]
    fn connection_tokens() {
        let mut t = ConnectionTokens::default();
        t.add(b"keep-alive, X-Foo ,Upgrade");
        assert!(t.keep_alive && t.upgrade && !t.close);
        assert!(t.lists("x-foo"));
        assert!(!t.lists("x-bar"));
        assert!(!t.must_refuse());
        let mut t = ConnectionTokens::default();
        let many: Vec<String> = (0..17).map(|i| format!("x-{i}")).collect();
        let many = many.join(",");
        t.add(many.as_bytes());
        assert!(t.overflow && t.must_refuse());
    }
}
