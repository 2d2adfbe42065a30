//! The PROXY protocol header (v1 text and v2 binary, as HAProxy's specification defines them) that
//! a load balancer in front of shardgate sends before the first HTTP byte, carrying the original
//! client and destination addresses.
//!
//! Sans-IO and pure: the shard's connection task reads into its connection buffer, calls [`parse`]
//! on the bytes so far, and on `Complete { consumed, .. }` starts HTTP parsing at `consumed`. No
//! allocation, no panics on any input.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The longest v1 line, CRLF included (the specification's bound).
pub const V1_MAX_LEN: usize = 107;
/// The longest v2 header accepted (16-byte fixed part + addresses + TLVs). It fits the smallest
/// connection buffer the config allows (1 KiB), so a `Partial` always has room to complete.
pub const V2_MAX_LEN: usize = 1024;

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";

/// What the bytes so far hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of `consumed` bytes. The addresses are `None` when the sender had none to
    /// give (v1 `UNKNOWN`, v2 `LOCAL`, v2 `AF_UNSPEC`/`AF_UNIX`): use the connection's own.
    Complete {
        consumed: usize,
        source: Option<SocketAddr>,
        destination: Option<SocketAddr>,
    },
    /// Everything so far is a valid beginning of a header; read more.
    Partial,
}

/// Why the header is refused (the proxy answers 400 and closes the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// Not a PROXY header, or one that breaks the specification.
    Invalid,
    /// Well formed, but a version or transport (v2 DGRAM) a TCP proxy cannot use.
    Unsupported,
    /// Longer than [`V1_MAX_LEN`] / [`V2_MAX_LEN`].
    TooLong,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyError::Invalid => "invalid PROXY protocol header",
            ProxyError::Unsupported => "unsupported PROXY protocol version or transport",
            ProxyError::TooLong => "PROXY protocol header too long",
        })
    }
}

impl std::error::Error for ProxyError {}

/// Parses the PROXY header at the start of `buf` (v1 or v2, told apart by the first byte).
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    match buf.first() {
        None => Ok(Parsed::Partial),
        Some(b'P') => v1(buf),
        Some(b'\r') => v2(buf),
        Some(_) => Err(ProxyError::Invalid),
    }
}

// === v1: `PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n` ===

fn v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        let seen = window.strip_suffix(b"\r").unwrap_or(window);
        if !v1_prefix_ok(seen) {
            return Err(ProxyError::Invalid);
        }
        return if buf.len() >= V1_MAX_LEN {
            Err(ProxyError::TooLong)
        } else {
            Ok(Parsed::Partial)
        };
    };
    let (source, destination) = v1_line(&buf[..cr]).ok_or(ProxyError::Invalid)?;
    Ok(Parsed::Complete {
        consumed: cr + 2,
        source,
        destination,
    })
}

/// Source and destination, when the header gives them.
type Addrs = (Option<SocketAddr>, Option<SocketAddr>);

/// A whole line without its CRLF; `None` when invalid.
fn v1_line(line: &[u8]) -> Option<Addrs> {
    let rest = line.strip_prefix(V1_PREFIX)?;
    if rest == b"UNKNOWN" || rest.starts_with(b"UNKNOWN ") {
        // The specification: whatever follows UNKNOWN up to the CRLF is ignored.
        return Some((None, None));
    }
    let (v6, rest) = match rest.split_at_checked(5)? {
        (b"TCP4 ", rest) => (false, rest),
        (b"TCP6 ", rest) => (true, rest),
        _ => return None,
    };
    let mut fields = rest.split(|&b| b == b' ');
    let src = v1_ip(fields.next()?, v6)?;
    let dst = v1_ip(fields.next()?, v6)?;
    let sport = v1_port(fields.next()?)?;
    let dport = v1_port(fields.next()?)?;
    if fields.next().is_some() {
        return None;
    }
    Some((
        Some(SocketAddr::new(src, sport)),
        Some(SocketAddr::new(dst, dport)),
    ))
}

fn v1_ip(field: &[u8], v6: bool) -> Option<IpAddr> {
    let text = std::str::from_utf8(field).ok()?;
    if v6 {
        Ipv6Addr::from_str(text).ok().map(IpAddr::V6)
    } else {
        // std rejects leading zeros and short forms ("1.2.3", "01.2.3.4").
        Ipv4Addr::from_str(text).ok().map(IpAddr::V4)
    }
}

/// A decimal port: 1 to 5 digits, no sign, no leading zero, at most 65535.
fn v1_port(field: &[u8]) -> Option<u16> {
    let ok = (1..=5).contains(&field.len())
        && field.iter().all(u8::is_ascii_digit)
        && (field.len() == 1 || field[0] != b'0');
    if !ok {
        return None;
    }
    let value = field
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value).ok()
}

/// Whether `seen` (no CRLF yet) can still become a valid line, so garbage fails early.
fn v1_prefix_ok(seen: &[u8]) -> bool {
    let n = seen.len().min(V1_PREFIX.len());
    if seen[..n] != V1_PREFIX[..n] {
        return false;
    }
    let rest = &seen[n..];
    if rest.contains(&b'\r') || rest.contains(&b'\n') {
        return false;
    }
    const TOKENS: [&[u8]; 3] = [b"TCP4 ", b"TCP6 ", b"UNKNOWN"];
    let Some(token) = TOKENS
        .iter()
        .find(|t| t.starts_with(rest) || rest.starts_with(t))
    else {
        return false;
    };
    match rest.get(token.len()..) {
        None | Some([]) => true,
        Some(after) if *token == b"UNKNOWN" => after[0] == b' ',
        Some(addrs) => {
            addrs.iter().filter(|&&b| b == b' ').count() <= 3
                && addrs
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':' | b' '))
        }
    }
}

// === v2: signature, version/command, family/transport, length, addresses, TLVs ===

const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
const AF_UNSPEC: u8 = 0x0;
const AF_INET: u8 = 0x1;
const AF_INET6: u8 = 0x2;
const AF_UNIX: u8 = 0x3;
const STREAM: u8 = 0x1;

fn v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::Invalid);
    }
    let local = match buf.get(12) {
        None => return Ok(Parsed::Partial),
        Some(&ver_cmd) if ver_cmd >> 4 != 2 => return Err(ProxyError::Unsupported),
        Some(&ver_cmd) => match ver_cmd & 0x0f {
            CMD_LOCAL => true,
            CMD_PROXY => false,
            _ => return Err(ProxyError::Invalid),
        },
    };
    let Some(&fam) = buf.get(13) else {
        return Ok(Parsed::Partial);
    };
    let (family, transport) = (fam >> 4, fam & 0x0f);
    // LOCAL: the specification says the family is ignored.
    if !local && (family > AF_UNIX || transport > 2) {
        return Err(ProxyError::Invalid);
    }
    let Some(len) = buf.get(14..16) else {
        return Ok(Parsed::Partial);
    };
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let total = 16 + len;
    if total > V2_MAX_LEN {
        return Err(ProxyError::TooLong);
    }
    let Some(body) = buf.get(16..total) else {
        return Ok(Parsed::Partial);
    };
    let complete = |source, destination| {
        Ok(Parsed::Complete {
            consumed: total,
            source,
            destination,
        })
    };
    if local {
        return complete(None, None);
    }
    let addr_len = match family {
        // No address block whose length we know; TLVs can't be told apart either.
        AF_UNSPEC => return complete(None, None),
        AF_INET => 12,
        AF_INET6 => 36,
        // AF_UNIX (families past it were rejected above).
        _ => 216,
    };
    if (family == AF_INET || family == AF_INET6) && transport != STREAM {
        return Err(ProxyError::Unsupported);
    }
    let (addrs, tlvs) = body.split_at_checked(addr_len).ok_or(ProxyError::Invalid)?;
    if !tlvs_ok(tlvs) {
        return Err(ProxyError::Invalid);
    }
    match family {
        AF_INET => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::from(be32(&addrs[at..at + 4])));
            let port = |at: usize| u16::from_be_bytes([addrs[at], addrs[at + 1]]);
            complete(
                Some(SocketAddr::new(ip(0), port(8))),
                Some(SocketAddr::new(ip(4), port(10))),
            )
        }
        AF_INET6 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&addrs[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([addrs[at], addrs[at + 1]]);
            complete(
                Some(SocketAddr::new(ip(0), port(32))),
                Some(SocketAddr::new(ip(16), port(34))),
            )
        }
        // AF_UNIX: a path is no use as a client address.
        _ => complete(None, None),
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// TLVs (type, 16-bit length, value) must tile the rest of the header exactly; their contents are
/// skipped.
fn tlvs_ok(mut tlvs: &[u8]) -> bool {
    while !tlvs.is_empty() {
        let Some(head) = tlvs.get(..3) else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([head[1], head[2]]));
        let Some(rest) = tlvs.get(3 + len..) else {
            return false;
        };
        tlvs = rest;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    fn complete(consumed: usize, src: &str, dst: &str) -> Result<Parsed, ProxyError> {
        Ok(Parsed::Complete {
            consumed,
            source: sa(src),
            destination: sa(dst),
        })
    }

    fn no_addrs(consumed: usize) -> Result<Parsed, ProxyError> {
        Ok(Parsed::Complete {
            consumed,
            source: None,
            destination: None,
        })
    }

    /// A v2 header: signature, ver_cmd, fam, length, then `rest`.
    fn v2h(ver_cmd: u8, fam: u8, rest: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([ver_cmd, fam]);
        h.extend((rest.len() as u16).to_be_bytes());
        h.extend(rest);
        h
    }

    const LOCAL_1000: &str = "127.0.0.1:1000";
    const LOCAL_80: &str = "127.0.0.2:80";
    const DB8_1: &str = "[2001:db8::1]:443";
    const DB8_2: &str = "[2001:db8::2]:8443";

    /// LOCAL_1000 → LOCAL_80 as an AF_INET address block.
    const INET_ADDRS: [u8; 12] = [127, 0, 0, 1, 127, 0, 0, 2, 0x03, 0xe8, 0, 80];

    fn inet6_addrs() -> Vec<u8> {
        let mut a = Vec::new();
        a.extend("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        a.extend("2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        a.extend(443u16.to_be_bytes());
        a.extend(8443u16.to_be_bytes());
        a
    }

    #[test]
    fn v1_accepts() {
        let max = [&b"PROXY UNKNOWN "[..], &[b'f'; 91], b"\r\n"].concat();
        assert_eq!(max.len(), V1_MAX_LEN);
        let cases: &[(&str, &[u8], Result<Parsed, ProxyError>)] = &[
            (
                "tcp4",
                b"PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n",
                complete(45, "192.0.2.1:12345", "198.51.100.7:443"),
            ),
            (
                "tcp6",
                b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
                complete(36, "[2001:db8::1]:1", "[::1]:65535"),
            ),
            (
                "tcp6 with embedded ipv4",
                b"PROXY TCP6 ::ffff:10.0.0.1 ::1 0 80\r\n",
                complete(37, "[::ffff:10.0.0.1]:0", "[::1]:80"),
            ),
            (
                "http follows",
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n",
                complete(32, "1.2.3.4:1", "5.6.7.8:2"),
            ),
            ("unknown bare", b"PROXY UNKNOWN\r\n", no_addrs(15)),
            (
                "unknown, rest ignored",
                b"PROXY UNKNOWN \x01\xff\r\n",
                no_addrs(18),
            ),
            ("unknown at the maximum length", &max, no_addrs(107)),
            (
                "unknown, anything so far",
                b"PROXY UNKNOWN \x01\xff",
                Ok(Parsed::Partial),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse(input), *want, "{name}");
        }
    }

    #[test]
    fn v1_rejects() {
        use ProxyError::{Invalid, TooLong};
        #[rustfmt::skip]
        let cases: &[(&str, &[u8], ProxyError)] = &[
            ("tcp4 with ipv6 address", b"PROXY TCP4 ::1 ::1 1 2\r\n", Invalid),
            ("tcp6 with ipv4 address", b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", Invalid),
            ("port too big", b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", Invalid),
            ("port leading zero", b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", Invalid),
            ("port sign", b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n", Invalid),
            ("octet leading zero", b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", Invalid),
            ("short ipv4", b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", Invalid),
            ("missing port", b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", Invalid),
            ("extra field", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", Invalid),
            ("double space", b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", Invalid),
            ("trailing space", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", Invalid),
            ("lower case proto", b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", Invalid),
            ("udp", b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", Invalid),
            ("unknownx", b"PROXY UNKNOWNX\r\n", Invalid),
            ("bare lf", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", Invalid),
            ("cr without lf", b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", Invalid),
            ("no space after PROXY", b"PROXYTCP4", Invalid),
            ("letters in an address so far", b"PROXY TCP4 1.2.x", Invalid),
            ("five fields so far", b"PROXY TCP4 1 2 3 4 ", Invalid),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse(input), Err(*want), "{name}");
        }
        let long =
            |fill: usize, end: &[u8]| [&b"PROXY UNKNOWN "[..], &vec![b'a'; fill], end].concat();
        let too_long = [
            ("no crlf in 107 bytes", long(100, b"")),
            ("crlf one byte past 107", long(92, b"\r\n")),
            (
                "tcp4 with 107 bytes of digits",
                [&b"PROXY TCP4 "[..], &[b'1'; 96]].concat(),
            ),
        ];
        for (name, input) in &too_long {
            assert_eq!(parse(input), Err(TooLong), "{name}");
        }
    }

    #[test]
    fn v2_byte_exact() {
        let inet: &[u8] = &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, // version 2, PROXY
            0x11, // AF_INET, STREAM
            0x00, 0x0c, // 12 bytes follow
            192, 0, 2, 1, // source
            198, 51, 100, 7, // destination
            0x30, 0x39, // 12345
            0x01, 0xbb, // 443
        ];
        let local: &[u8] = &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00,
            0x00, 0x00,
        ];
        assert_eq!(
            parse(inet),
            complete(28, "192.0.2.1:12345", "198.51.100.7:443")
        );
        assert_eq!(parse(local), no_addrs(16));
    }

    #[test]
    fn v2_accepts() {
        // NOOP with 2 bytes, then ALPN with none.
        let tlvs = [INET_ADDRS.as_slice(), &[0x04, 0, 2, 0xaa, 0xbb, 0x01, 0, 0]].concat();
        let (local, unspec, unix) = (v2h(0x20, 0x00, &[]), v2h(0x21, 0x00, &[1, 2]), [0; 216]);
        let cases = [
            (
                "inet",
                v2h(0x21, 0x11, &INET_ADDRS),
                complete(28, LOCAL_1000, LOCAL_80),
            ),
            (
                "inet6",
                v2h(0x21, 0x21, &inet6_addrs()),
                complete(52, DB8_1, DB8_2),
            ),
            (
                "tlvs skipped",
                v2h(0x21, 0x11, &tlvs),
                complete(36, LOCAL_1000, LOCAL_80),
            ),
            ("local", local, no_addrs(16)),
            (
                "local ignores family and body",
                v2h(0x20, 0x11, &INET_ADDRS),
                no_addrs(28),
            ),
            (
                "local ignores a bad family",
                v2h(0x20, 0xff, &[]),
                no_addrs(16),
            ),
            ("unspec", unspec, no_addrs(18)),
            ("unix", v2h(0x21, 0x31, &unix), no_addrs(232)),
            (
                "exactly the limit",
                v2h(0x20, 0x00, &[0; V2_MAX_LEN - 16]),
                no_addrs(V2_MAX_LEN),
            ),
        ];
        for (name, input, want) in &cases {
            assert_eq!(parse(input), *want, "{name}");
        }
    }

    #[test]
    fn v2_rejects() {
        use ProxyError::{Invalid, TooLong, Unsupported};
        let cut_tlv = [INET_ADDRS.as_slice(), &[0x04, 0, 2, 0xaa]].concat();
        let long_tlv = [INET_ADDRS.as_slice(), &[0x04, 0, 5, 0]].concat();
        let mut declared_max = v2h(0x21, 0x11, &[]);
        declared_max[14..16].copy_from_slice(&[0xff, 0xff]);
        let cases = [
            ("unix too short", v2h(0x21, 0x31, &[0; 215]), Invalid),
            (
                "inet too short",
                v2h(0x21, 0x11, &INET_ADDRS[..11]),
                Invalid,
            ),
            ("inet6 too short", v2h(0x21, 0x21, &INET_ADDRS), Invalid),
            ("truncated tlv", v2h(0x21, 0x11, &cut_tlv), Invalid),
            ("tlv header cut", v2h(0x21, 0x11, &cut_tlv[..14]), Invalid),
            (
                "tlv length past the end",
                v2h(0x21, 0x11, &long_tlv),
                Invalid,
            ),
            ("command 2", v2h(0x22, 0x11, &INET_ADDRS), Invalid),
            ("family 4", v2h(0x21, 0x41, &INET_ADDRS), Invalid),
            ("transport 3", v2h(0x21, 0x13, &INET_ADDRS), Invalid),
            ("dgram", v2h(0x21, 0x12, &INET_ADDRS), Unsupported),
            (
                "inet, unspec transport",
                v2h(0x21, 0x10, &INET_ADDRS),
                Unsupported,
            ),
            ("version 1", v2h(0x11, 0x11, &INET_ADDRS), Unsupported),
            ("version 3", v2h(0x31, 0x11, &INET_ADDRS), Unsupported),
            (
                "one byte over the limit",
                v2h(0x21, 0x11, &[0; V2_MAX_LEN - 15]),
                TooLong,
            ),
            ("declared 65535, not yet sent", declared_max, TooLong),
        ];
        for (name, input, want) in &cases {
            assert_eq!(parse(input), Err(*want), "{name}");
        }
    }

    #[test]
    fn every_truncation_is_partial() {
        let inputs: Vec<(&str, Vec<u8>)> = vec![
            (
                "v1 tcp4",
                b"PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n".to_vec(),
            ),
            (
                "v1 tcp6",
                b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n".to_vec(),
            ),
            ("v1 unknown", b"PROXY UNKNOWN\r\n".to_vec()),
            ("v2 inet", v2h(0x21, 0x11, &INET_ADDRS)),
            ("v2 inet6", v2h(0x21, 0x21, &inet6_addrs())),
            ("v2 local", v2h(0x20, 0x00, &[])),
            (
                "v2 tlvs",
                v2h(0x21, 0x11, &[INET_ADDRS.as_slice(), &[4, 0, 1, 0]].concat()),
            ),
        ];
        for (name, full) in &inputs {
            for len in 0..full.len() {
                assert_eq!(
                    parse(&full[..len]),
                    Ok(Parsed::Partial),
                    "{name} cut at {len}"
                );
            }
            let mut more = full.clone();
            more.extend(b"GET / HTTP/1.1\r\n\r\n");
            match parse(&more) {
                Ok(Parsed::Complete { consumed, .. }) => assert_eq!(consumed, full.len(), "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_invalid() {
        let cases: &[(&str, &[u8])] = &[
            ("http request", b"GET / HTTP/1.1\r\n"),
            ("tls hello", &[0x16, 0x03, 0x01, 0x02, 0x00]),
            ("lower case proxy", b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            ("P then garbage", b"PX"),
            ("crlf only", b"\r\n\r\n\r\n"),
            ("signature off by one byte", b"\r\n\r\n\0\r\nQUIT\r"),
            ("nul", b"\0"),
        ];
        for (name, input) in cases {
            assert_eq!(parse(input), Err(ProxyError::Invalid), "{name}");
        }
        // No input of any byte value panics or claims more than it was given.
        let mut state = 0x2545_f491_u32;
        for len in 0..300 {
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            for prefix in [&b"PROXY "[..], &V2_SIGNATURE[..], &b""[..]] {
                let input = [prefix, &buf].concat();
                if let Ok(Parsed::Complete { consumed, .. }) = parse(&input) {
                    assert!(consumed <= input.len());
                }
            }
        }
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            ProxyError::Invalid.to_string(),
            "invalid PROXY protocol header"
        );
        assert_eq!(
            ProxyError::TooLong.to_string(),
            "PROXY protocol header too long"
        );
        assert_eq!(
            ProxyError::Unsupported.to_string(),
            "unsupported PROXY protocol version or transport"
        );
    }
}
