//! Finding one value in a parsed request's header fields: a header by name, a cookie by name.
//! Pure code; the shard's admission calls it for `hash:header:` and `hash:cookie:` balancing.
//!
//! Cookies are read as RFC 6265 §4.2.1 writes them and §5.4 has user agents send them:
//! `name=value` pairs joined by `; `, with no whitespace around `=`. So each pair is trimmed of
//! the whitespace around it (the space of the `; ` separator, and tabs or doubled spaces a lenient
//! client adds), the name is compared exactly (case-sensitive, not trimmed inside the pair: in
//! `a = 1` the name is `a `, which is not a cookie name, so that pair is never cookie `a`) and
//! the value is taken as written (a cookie-octet is never whitespace, so the pair trim has already
//! removed any trailing space). Every `Cookie` field is searched in order: HTTP/1.1 clients send
//! one, HTTP/2 clients may split it into several (RFC 9113 §8.2.3). The first match wins.

use httparse::Header;

use super::name_is;

/// The value of the first header named `name` (compared case-insensitively; `name` in lower
/// case), as received.
pub fn header_value<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| name_is(h.name, name))
        .map(|h| h.value)
}

/// The value of the first cookie named `name` in any `Cookie` header (see the module doc).
pub fn cookie_value<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .filter(|h| name_is(h.name, "cookie"))
        .find_map(|h| cookie_in(h.value, name))
}

/// The value of cookie `name` in one `Cookie` header value (`a=1; b=2`).
fn cookie_in<'b>(value: &'b [u8], name: &str) -> Option<&'b [u8]> {
    value.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'b>(name: &'b str, value: &'b [u8]) -> Header<'b> {
        Header { name, value }
    }

    #[test]
    fn cookie_value_finds_the_named_cookie() {
        type Case<'a> = (&'a str, &'a [u8], &'a str, Option<&'a [u8]>);
        let cases: [Case; 14] = [
            (
                "named among others",
                b"a=1; sid=xyz; b=2",
                "sid",
                Some(b"xyz"),
            ),
            (
                "first occurrence wins",
                b"sid=first;sid=second",
                "sid",
                Some(b"first"),
            ),
            ("names are case-sensitive", b"SID=1", "sid", None),
            ("a pair without '='", b"nosuch", "nosuch", None),
            ("empty header", b"", "a", None),
            ("empty value", b"a=; b=2", "a", Some(b"")),
            ("value keeps '='", b"t=a=b==", "t", Some(b"a=b==")),
            (
                "quoted value as written",
                b"q=\"x y\"",
                "q",
                Some(b"\"x y\""),
            ),
            (
                "tabs and spaces around a pair",
                b"a=1;\t sid=x \t; b=2",
                "sid",
                Some(b"x"),
            ),
            ("no space after ';'", b"a=1;sid=x", "sid", Some(b"x")),
            ("space before '=' is not the name", b"sid =x", "sid", None),
            (
                "space after '=' is not the value",
                b"sid= x; sid=y",
                "sid",
                Some(b" x"),
            ),
            (
                "a name that only ends like it",
                b"xsid=1; sid=2",
                "sid",
                Some(b"2"),
            ),
            ("empty pairs skipped", b";; sid=1;", "sid", Some(b"1")),
        ];
        for (what, value, name, want) in cases {
            assert_eq!(cookie_in(value, name), want, "{what}: {value:?} {name}");
            let headers = [h("Cookie", value)];
            assert_eq!(cookie_value(&headers, name), want, "{what} (header)");
        }
    }

    #[test]
    fn cookie_value_searches_every_cookie_header_in_order() {
        let headers = [
            h("Host", b"sid=host"),
            h("cookie", b"a=1"),
            h("X-Cookie", b"sid=other"),
            h("COOKIE", b"b=2; sid=second"),
            h("Cookie", b"sid=third"),
        ];
        assert_eq!(cookie_value(&headers, "sid"), Some(&b"second"[..]));
        assert_eq!(cookie_value(&headers, "a"), Some(&b"1"[..]));
        assert_eq!(cookie_value(&headers, "c"), None);
        assert_eq!(cookie_value(&[], "sid"), None);
    }

    #[test]
    fn header_value_is_the_first_case_insensitive_match() {
        let headers = [
            h("Host", b"x"),
            h("X-User", b"alice"),
            h("x-user", b"bob"),
            h("X-Users", b"carol"),
        ];
        assert_eq!(header_value(&headers, "x-user"), Some(&b"alice"[..]));
        assert_eq!(header_value(&headers, "x-users"), Some(&b"carol"[..]));
        assert_eq!(header_value(&headers, "x-use"), None);
        assert_eq!(header_value(&[], "x-user"), None);
    }
}
