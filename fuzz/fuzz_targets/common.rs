//! Checks shared by the head targets: what any head the proxy writes must look like on the wire.
#![allow(dead_code)]

/// Headers accepted when re-parsing an emitted head. Larger than `shardgate::http::MAX_HEADERS`
/// on purpose: the proxy adds up to six headers of its own to what it accepted.
pub const REPARSE_HEADERS: usize = 256;

/// Panics unless `head` is a well-formed HTTP/1.1 head as bytes: it ends with the one blank line,
/// every line ends with CRLF (no bare CR, no bare LF), no line is an obs-fold continuation and no
/// blank line hides inside it (which would end the head early and turn the rest into a body or
/// another message).
pub fn assert_wire_head(head: &[u8], input: &[u8]) {
    assert!(head.ends_with(b"\r\n\r\n"), "head does not end with CRLFCRLF\ninput: {}\nhead: {}", esc(input), esc(head));
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && head[i - 1] == b'\r', "bare LF at {i}\ninput: {}\nhead: {}", esc(input), esc(head)),
            b'\r' => assert!(head.get(i + 1) == Some(&b'\n'), "bare CR at {i}\ninput: {}\nhead: {}", esc(input), esc(head)),
            _ => {}
        }
    }
    let body = &head[..head.len() - 2]; // every line of the head, each with its CRLF
    let mut lines = body.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or(b"");
    assert!(first.len() > 1, "empty start line\ninput: {}\nhead: {}", esc(input), esc(head));
    for line in lines {
        assert!(line.len() > 1, "blank line inside the head\ninput: {}\nhead: {}", esc(input), esc(head));
        assert!(
            !matches!(line[0], b' ' | b'\t'),
            "obs-fold (line starts with whitespace)\ninput: {}\nhead: {}",
            esc(input),
            esc(head)
        );
    }
}

/// Framing headers of a re-parsed head, read the way a strict recipient (RFC 9112 §6.3) reads them.
#[derive(Debug, Default)]
pub struct WireFraming {
    /// Values of every Content-Length header, trimmed.
    pub content_lengths: Vec<Vec<u8>>,
    /// Number of Transfer-Encoding headers.
    pub te_headers: usize,
    /// The last coding over all Transfer-Encoding headers is `chunked`.
    pub te_chunked_last: bool,
    /// Number of Host headers.
    pub hosts: usize,
    /// Tokens of every Connection header, lower-cased.
    pub connection: Vec<Vec<u8>>,
}

impl WireFraming {
    pub fn of(headers: &[httparse::Header<'_>]) -> WireFraming {
        let mut w = WireFraming::default();
        for h in headers {
            if h.name.eq_ignore_ascii_case("content-length") {
                w.content_lengths.push(trim(h.value).to_vec());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                w.te_headers += 1;
                for c in h.value.split(|&b| b == b',').map(trim).filter(|c| !c.is_empty()) {
                    w.te_chunked_last = c.eq_ignore_ascii_case(b"chunked");
                }
            } else if h.name.eq_ignore_ascii_case("host") {
                w.hosts += 1;
            } else if h.name.eq_ignore_ascii_case("connection") {
                for t in h.value.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty()) {
                    w.connection.push(t.to_ascii_lowercase());
                }
            }
        }
        w
    }

    /// The single Content-Length as a number, if there is exactly one and it is 1*DIGIT.
    pub fn single_length(&self) -> Option<u64> {
        match self.content_lengths.as_slice() {
            [v] if !v.is_empty() && v.len() <= 19 && v.iter().all(u8::is_ascii_digit) => {
                std::str::from_utf8(v).ok()?.parse().ok()
            }
            _ => None,
        }
    }

    pub fn connection_has(&self, token: &[u8]) -> bool {
        self.connection.iter().any(|t| t == token)
    }
}

pub fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |i| i + 1);
    &v[start..end]
}

/// Bytes as an escaped string for panic messages.
pub fn esc(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}
