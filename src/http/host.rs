//! The `Host` grammar (RFC 9112 §3.2, RFC 3986 §3.2.2–3.2.3): `uri-host [":" port]`, checked for
//! the Host header and for the authority of an absolute-form target. Pure byte checks, no
//! allocation; the shard thread runs them inside `request::process`.

use std::net::Ipv6Addr;

/// `uri-host [":" port]`: a reg-name (or IPv4 address, a subset of it) or an IP-literal
/// `[...]`, then an optional port of at most 65535 (an empty port after `:` is allowed by RFC
/// 3986). The host itself may not be empty (RFC 9110 §4.2.1: an http URI has a host).
pub fn is_valid(v: &[u8]) -> bool {
    if v.first() != Some(&b'[') {
        return reg_name_and_port(v);
    }
    let Some(close) = v.iter().position(|&b| b == b']') else {
        return false;
    };
    if !ip_literal(&v[1..close]) {
        return false;
    }
    match &v[close + 1..] {
        [] => true,
        [b':', port @ ..] => port_ok(port),
        _ => false,
    }
}

/// `reg-name [":" port]` in one pass over the bytes (the common Host: a name, maybe a port).
fn reg_name_and_port(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        if REG_NAME[usize::from(b)] {
            i += 1;
        } else if b == b':' {
            return i > 0 && port_ok(&v[i + 1..]);
        } else if b == b'%' && i + 2 < v.len() && is_hex(v[i + 1]) && is_hex(v[i + 2]) {
            i += 3;
        } else {
            return false;
        }
    }
    i > 0
}

/// The bytes a reg-name holds as they are: unreserved and sub-delims (`%` escapes aside).
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = unreserved(b as u8) || sub_delim(b as u8);
        b += 1;
    }
    t
};

/// `IPv6address / IPvFuture` between the brackets.
fn ip_literal(v: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = v {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (ver, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !ver.is_empty()
            && ver.iter().all(|&b| is_hex(b))
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| unreserved(b) || sub_delim(b) || b == b':');
    }
    // Only hex digits, ':' and '.' reach the parser, so the text is ASCII.
    v.iter().all(|&b| is_hex(b) || b == b':' || b == b'.')
        && std::str::from_utf8(v).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok())
}

/// `*DIGIT` with a value of at most 65535 (leading zeros allowed, at most 5 digits).
fn port_ok(v: &[u8]) -> bool {
    v.len() <= 5
        && v.iter().all(u8::is_ascii_digit)
        && v.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 65535
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

const fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn valid_hosts() {
        for v in [
            "example.com",
            "EXAMPLE.com:8080",
            "a",
            "localhost:",
            "127.0.0.1",
            "127.0.0.1:80",
            "xn--bcher-kva.example",
            "under_score.example",
            "pct%41encoded",
            "sub!$&'()*+,;=delims",
            "h:0",
            "h:65535",
            "h:00080",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::1]:",
            "[::ffff:10.0.0.1]",
            "[v1.fe80::a+en1]",
        ] {
            assert!(is_valid(v.as_bytes()), "{v:?} should be valid");
        }
    }

    #[test]
    fn invalid_hosts() {
        for v in [
            "",
            ":80",
            "a b",
            "a/b",
            "a@b",
            "user@host:80",
            "a\tb",
            "a\x00b",
            "a\x7fb",
            "h:65536",
            "h:123456",
            "h:8o",
            "h:-1",
            "h:80:81",
            "h?",
            "h#",
            "%4",
            "%zz",
            "h%",
            "[::1",
            "::1",
            "[::1]x",
            "[::1]:80:81",
            "[zz::1]",
            "[1:2:3:4:5:6:7:8:9]",
            "[]",
            "[v1.]",
            "[v.x]",
            "\u{e9}.example",
            "[::1]:65536",
        ] {
            assert!(!is_valid(v.as_bytes()), "{v:?} should be invalid");
        }
    }
}
