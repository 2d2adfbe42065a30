//! Operator-chosen rules for request heads beyond RFC 9112's musts: what happens to header names
//! with underscores (`underscores_in_headers`) and `--strict-http`, which refuses the leniencies
//! RFC 9112 only allows. Carried by value in each request's `Forwarding`; the shard thread checks
//! them inside `request::process`, at the cost of a byte scan of names (and of the head when
//! strict).

/// What a header whose name holds `_` becomes. CGI/WSGI servers map `_` and `-` to the same
/// variable, so `X_Forwarded_For` could shadow the `X-Forwarded-For` the proxy sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Underscores {
    /// Not forwarded, silently (as nginx does by default).
    #[default]
    Drop,
    /// Forwarded like any other header.
    Pass,
    /// The request is answered 400.
    Reject,
}

impl Underscores {
    pub const HELP: &'static str = "drop, pass or reject";

    pub fn parse(s: &str) -> Option<Underscores> {
        match s {
            "drop" => Some(Underscores::Drop),
            "pass" => Some(Underscores::Pass),
            "reject" => Some(Underscores::Reject),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Underscores::Drop => "drop",
            Underscores::Pass => "pass",
            Underscores::Reject => "reject",
        }
    }
}

/// The head rules one request is checked against (from the config version it started with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeadRules {
    pub underscores: Underscores,
    /// `--strict-http`: 400 for bare LF line endings, empty lines before the request line, and
    /// targets outside RFC 3986 (or with a fragment). What httparse and the framing rules refuse
    /// anyway (obs-fold, NUL/CR in values, a whitespace-led first header line, duplicate
    /// Content-Length) is refused in both modes.
    pub strict: bool,
}

/// What to do with one header, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameVerdict {
    Keep,
    Drop,
    Refuse,
}

impl HeadRules {
    /// The verdict for a header name (a byte scan for `_`).
    #[inline]
    pub fn name(&self, name: &str) -> NameVerdict {
        // A plain loop: names are short, a memchr call costs more than it saves.
        if !name.bytes().any(|b| b == b'_') {
            return NameVerdict::Keep;
        }
        match self.underscores {
            Underscores::Drop => NameVerdict::Drop,
            Underscores::Pass => NameVerdict::Keep,
            Underscores::Reject => NameVerdict::Refuse,
        }
    }

    /// Under `--strict-http`, the raw head (request line to the empty line) uses CRLF only and
    /// starts with the request line. Always true when not strict.
    pub fn raw_head_ok(&self, head: &[u8]) -> bool {
        if !self.strict {
            return true;
        }
        if matches!(head.first(), Some(b'\r' | b'\n')) {
            return false;
        }
        // httparse refuses a CR not followed by LF, so every LF must follow a CR.
        let mut from = 0;
        while let Some(i) = head[from..].iter().position(|&b| b == b'\n') {
            let at = from + i;
            if at == 0 || head[at - 1] != b'\r' {
                return false;
            }
            from = at + 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_mode() {
        let drop = HeadRules::default();
        assert_eq!(drop.name("X-Forwarded-For"), NameVerdict::Keep);
        assert_eq!(drop.name("X_Forwarded_For"), NameVerdict::Drop);
        let pass = HeadRules {
            underscores: Underscores::Pass,
            ..drop
        };
        assert_eq!(pass.name("Transfer_Encoding"), NameVerdict::Keep);
        let reject = HeadRules {
            underscores: Underscores::Reject,
            ..drop
        };
        assert_eq!(reject.name("a_b"), NameVerdict::Refuse);
        assert_eq!(reject.name("a-b"), NameVerdict::Keep);
        for m in [Underscores::Drop, Underscores::Pass, Underscores::Reject] {
            assert_eq!(Underscores::parse(m.name()), Some(m));
        }
        assert_eq!(Underscores::parse("Drop"), None);
    }

    #[test]
    fn raw_head_line_endings() {
        let strict = HeadRules {
            strict: true,
            ..HeadRules::default()
        };
        assert!(strict.raw_head_ok(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        for bad in [
            &b"GET / HTTP/1.1\nHost: h\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: h\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n\n",
            b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            assert!(!strict.raw_head_ok(bad), "{}", String::from_utf8_lossy(bad));
            assert!(HeadRules::default().raw_head_ok(bad));
        }
    }
}
