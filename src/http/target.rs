//! The request-target (RFC 9112 §3.2): absolute-form split into its authority and the origin-form
//! the upstream receives, the safety rules routing relies on (no dot-segments, no encoded
//! slash), and under `--strict-http` the RFC 3986 character set. Pure byte code, no allocation;
//! the shard thread runs it inside `request::process`.

use super::host;

/// A request-target that passed the checks, as the upstream will receive it: `lead` then `path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'b> {
    /// The authority of an absolute-form target (a valid `uri-host[:port]`, no userinfo).
    pub authority: Option<&'b [u8]>,
    /// Written before `path`: `/` when an absolute-form target has an empty path (`*` for
    /// `OPTIONS http://host`, RFC 9112 §3.2.4); empty otherwise.
    pub lead: &'static [u8],
    /// The origin-form part: path and query (the target as it came for any other form).
    pub path: &'b [u8],
}

impl<'b> Target<'b> {
    /// Parses `raw`; `None` means 400. `options` says the method is OPTIONS, `strict` applies
    /// `--strict-http` (only RFC 3986 characters, no fragment, one of the four forms).
    pub fn parse(raw: &'b [u8], options: bool, strict: bool) -> Option<Target<'b>> {
        let mut t = Target {
            authority: None,
            lead: b"",
            path: raw,
        };
        if let Some(rest) = strip_scheme(raw) {
            let end = rest
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(rest.len());
            let authority = &rest[..end];
            // Userinfo is deprecated in http URIs (RFC 9110 §4.2.4) and hides the real host.
            if authority.contains(&b'@') || !host::is_valid(authority) {
                return None;
            }
            t.authority = Some(authority);
            t.path = &rest[end..];
            if !t.path.starts_with(b"/") {
                t.lead = if options && t.path.is_empty() {
                    b"*"
                } else {
                    b"/"
                };
            }
        }
        if strict && !t.strict_ok(options) {
            return None;
        }
        is_safe_path(t.path).then_some(t)
    }

    /// What routing matches: the origin-form target (for `http://h?q`, `/`).
    pub fn routing(&self) -> &'b [u8] {
        match (self.lead.is_empty(), self.path.is_empty()) {
            (true, _) => self.path,
            (false, true) => self.lead,
            (false, false) => b"/",
        }
    }

    /// Writes the target the upstream receives; a route's rewrite replaces its first `strip`
    /// bytes (of `routing()`) by `prefix`, without doubling a slash.
    pub fn write(&self, out: &mut Vec<u8>, strip: usize, prefix: &[u8]) {
        if strip == 0 || strip > self.routing().len() {
            out.extend_from_slice(self.lead);
            out.extend_from_slice(self.path);
            return;
        }
        out.extend_from_slice(prefix);
        // `routing()` is a prefix of lead + path, so `strip` bytes come off that sequence.
        let (lead, path) = if strip >= self.lead.len() {
            (&b""[..], &self.path[strip - self.lead.len()..])
        } else {
            (&self.lead[strip..], self.path)
        };
        let first = lead.first().or(path.first());
        if prefix.ends_with(b"/") && first == Some(&b'/') {
            if lead.is_empty() {
                out.extend_from_slice(&path[1..]);
            } else {
                out.extend_from_slice(&lead[1..]);
                out.extend_from_slice(path);
            }
        } else {
            out.extend_from_slice(lead);
            out.extend_from_slice(path);
        }
    }

    /// `--strict-http`: origin-form, absolute-form or `*` (OPTIONS), RFC 3986 characters only,
    /// well-formed percent-encoding, no fragment.
    fn strict_ok(&self, options: bool) -> bool {
        let p = self.path;
        let form_ok = self.authority.is_some() || p.starts_with(b"/") || (options && p == b"*");
        if !form_ok {
            return false;
        }
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'%' => {
                    if !(i + 2 < p.len()
                        && p[i + 1].is_ascii_hexdigit()
                        && p[i + 2].is_ascii_hexdigit())
                    {
                        return false;
                    }
                    i += 3;
                }
                b if pchar_or_delim(b) => i += 1,
                _ => return false,
            }
        }
        true
    }
}

/// The rest after `http://` or `https://` (any case), for an absolute-form target.
fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    if target.first() == Some(&b'/') {
        return None; // origin-form, nearly every request
    }
    [&b"http://"[..], b"https://"].into_iter().find_map(|s| {
        (target.len() >= s.len() && target[..s.len()].eq_ignore_ascii_case(s))
            .then(|| &target[s.len()..])
    })
}

/// RFC 3986 path and query characters (pchar, "/", "?"), without "%" (checked by the caller).
fn pchar_or_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
        )
}

/// A path routing can trust: no dot-segment (`/./`, `/../`, also %2e-encoded) or encoded slash
/// that an upstream could resolve into a path outside the route that matched.
fn is_safe_path(target: &[u8]) -> bool {
    let path = &target[..target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len())];
    if path.windows(3).any(|w| w.eq_ignore_ascii_case(b"%2f")) {
        return false;
    }
    !path.split(|&b| b == b'/').any(|segment| {
        // "." or "..", each dot possibly written %2e.
        let mut dots = 0;
        let mut rest = segment;
        while !rest.is_empty() {
            if rest[0] == b'.' {
                rest = &rest[1..];
            } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
                rest = &rest[3..];
            } else {
                return false;
            }
            dots += 1;
        }
        (1..=2).contains(&dots)
    })
}

#[cfg(test)]
mod tests {
    use super::Target;

    fn upstream(raw: &str, options: bool, strip: usize, prefix: &str) -> Option<String> {
        let t = Target::parse(raw.as_bytes(), options, false)?;
        let mut out = Vec::new();
        t.write(&mut out, strip, prefix.as_bytes());
        Some(String::from_utf8(out).unwrap())
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        let cases: &[(&str, bool, &str)] = &[
            ("http://h:8080/p?q=1", false, "/p?q=1"),
            ("HTTP://h/", false, "/"),
            ("https://h/a/b", false, "/a/b"),
            ("http://h", false, "/"),
            ("http://h:80", false, "/"),
            ("http://h?q", false, "/?q"),
            ("http://h", true, "*"),
            ("http://h/x", true, "/x"),
            ("http://[::1]:8/x", false, "/x"),
            ("/plain?x", false, "/plain?x"),
            ("*", true, "*"),
        ];
        for (raw, options, want) in cases {
            assert_eq!(
                upstream(raw, *options, 0, "").as_deref(),
                Some(*want),
                "{raw}"
            );
        }
        let t = Target::parse(b"http://h:8080/p", false, false).unwrap();
        assert_eq!(t.authority, Some(&b"h:8080"[..]));
        assert_eq!(t.routing(), b"/p");
        assert_eq!(
            Target::parse(b"http://h?q", false, false)
                .unwrap()
                .routing(),
            b"/"
        );
    }

    #[test]
    fn rewrites_apply_to_the_origin_form() {
        assert_eq!(
            upstream("http://h/api/x", false, 5, "/").as_deref(),
            Some("/x")
        );
        assert_eq!(
            upstream("/api/x", false, 5, "/v2/").as_deref(),
            Some("/v2/x")
        );
        assert_eq!(
            upstream("http://h", false, 1, "/root/").as_deref(),
            Some("/root/")
        );
        assert_eq!(
            upstream("http://h?q", false, 1, "/r").as_deref(),
            Some("/r?q")
        );
    }

    #[test]
    fn refused_targets() {
        for raw in [
            "http://user@h/x",
            "http://u:p@h:80/x",
            "http://@h/x",
            "http:///x",
            "http://h:99999/x",
            "http://a b/x",
            "http://h%zz/x",
            "/public/../admin",
            "/a/./b",
            "/a/..",
            "/a/%2e%2E/b",
            "/a/.%2e/b",
            "/a%2F..%2fb",
            "http://h/a/../b",
        ] {
            assert_eq!(Target::parse(raw.as_bytes(), false, false), None, "{raw}");
        }
    }

    #[test]
    fn safe_targets_pass() {
        for raw in [
            "/a/b.c/..d/...?x=/../",
            "/.well-known/x",
            "*",
            "/x#frag",
            "/a|b",
        ] {
            assert!(
                Target::parse(raw.as_bytes(), false, false).is_some(),
                "{raw}"
            );
        }
    }

    #[test]
    fn strict_refuses_what_rfc_3986_does_not_allow() {
        for raw in [
            "/x#frag",
            "/a|b",
            "/a\"b",
            "/a<b>",
            "/a\\b",
            "/a^b",
            "/a`b",
            "/a{b}",
            "/%zz",
            "/%4",
            "/\u{e9}",
            "foo",
            "h:443",
            "http://h/x#f",
        ] {
            assert!(
                Target::parse(raw.as_bytes(), false, false).is_some(),
                "lenient: {raw}"
            );
            assert_eq!(
                Target::parse(raw.as_bytes(), false, true),
                None,
                "strict: {raw}"
            );
        }
        for raw in ["/a-b._~!$&'()*+,;=:@/?q=%41", "http://h/x?y", "/"] {
            assert!(
                Target::parse(raw.as_bytes(), false, true).is_some(),
                "strict: {raw}"
            );
        }
        assert!(Target::parse(b"*", true, true).is_some());
        assert_eq!(Target::parse(b"*", false, true), None);
    }
}
