//! Trusted proxies (`trusted_proxies` in the config) and the real client address behind them.
//!
//! `Cidr` and `Trusted` are built once from the config by the main thread and read by every shard
//! through the shared `Arc<Config>`; [`client_ip`] runs on the shard that serves the request, once
//! per request, without allocating. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the IPv4
//! address they carry, both in lists and in addresses looked up.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network (`10.0.0.0/8`, `::1/128`) or a single host (`127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// IPv4 (`net` holds the 32-bit address in its low bits) or IPv6.
    v4: bool,
    /// The network address; host bits are zero (parsing rejects anything else).
    net: u128,
    /// Leading bits that must match: 0..=32 for IPv4, 0..=128 for IPv6.
    prefix: u8,
}

/// Why a `trusted_proxies` entry is not a network; the config prefixes `FILE:LINE:COL: field: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CidrError {}

// === impl Cidr ===

impl Cidr {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v4, bits) = key(ip);
        v4 == self.v4 && bits & mask(self.v4, self.prefix) == self.net
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            CidrError(format!(
                "{s:?} is not an IP address or network (like 10.0.0.0/8, ::1/128 or 127.0.0.1)"
            ))
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => parse_prefix(p, max).ok_or_else(|| {
                CidrError(format!(
                    "{s:?}: the prefix length must be a number from 0 to {max}"
                ))
            })?,
        };
        let (mut v4, mut net) = match ip {
            IpAddr::V4(a) => (true, u128::from(u32::from(a))),
            IpAddr::V6(a) => (false, u128::from(a)),
        };
        let mut prefix = prefix;
        // ::ffff:0:0/96 and narrower is IPv4 space written the IPv6 way.
        if !v4 && prefix >= 96 && net >> 32 == 0xffff {
            (v4, net, prefix) = (true, net & 0xffff_ffff, prefix - 96);
        }
        if net & !mask(v4, prefix) != 0 {
            let cidr = Cidr {
                v4,
                net: net & mask(v4, prefix),
                prefix,
            };
            return Err(CidrError(format!(
                "{s:?} has bits set past the prefix length; the network is {cidr}"
            )));
        }
        Ok(Cidr { v4, net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v4 {
            write!(f, "{}/{}", Ipv4Addr::from(self.net as u32), self.prefix)
        } else {
            write!(f, "{}/{}", Ipv6Addr::from(self.net), self.prefix)
        }
    }
}

/// Digits only (no sign, no leading zero), at most `max`.
fn parse_prefix(p: &str, max: u8) -> Option<u8> {
    let canonical = !p.is_empty()
        && p.len() <= 3
        && p.bytes().all(|b| b.is_ascii_digit())
        && (p.len() == 1 || !p.starts_with('0'));
    let n: u8 = p.parse().ok().filter(|_| canonical)?;
    (n <= max).then_some(n)
}

/// The address as (is IPv4, bits), with IPv4-mapped IPv6 taken as IPv4.
fn key(ip: IpAddr) -> (bool, u128) {
    match ip.to_canonical() {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

/// The network mask of `prefix` leading ones, in the family's width.
fn mask(v4: bool, prefix: u8) -> u128 {
    let width = if v4 { 32 } else { 128 };
    let all = if v4 { u128::from(u32::MAX) } else { u128::MAX };
    match u32::from(width - prefix.min(width)) {
        128 => 0,
        host => all & !((1u128 << host) - 1),
    }
}

// === impl Trusted ===

/// The proxies whose `X-Forwarded-For` entries are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted {
    list: Vec<Cidr>,
}

impl Trusted {
    pub fn new(list: Vec<Cidr>) -> Self {
        Trusted { list }
    }

    /// Whether `ip` is inside any trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.list.iter().any(|c| c.contains(ip))
    }

    /// No proxy is trusted: the client is always the connection's peer.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

// === client_ip ===

/// The client address: `peer` unless it is trusted, in which case walk X-Forwarded-For values (all
/// header instances, comma lists, in order) from the right, skipping trusted addresses; the first
/// untrusted one is the client; garbage entries stop the walk (return the last trusted hop).
///
/// Empty list elements are skipped. An entry is an IP address, optionally with a port
/// (`1.2.3.4:80`, `[2001:db8::1]:443`, `[2001:db8::1]`); anything else is garbage. When every
/// entry is trusted the leftmost one is the client. IPv4-mapped IPv6 results come back as IPv4.
pub fn client_ip(peer: IpAddr, trusted: &Trusted, xff_values: &[&[u8]]) -> IpAddr {
    let mut hop = peer.to_canonical();
    if !trusted.contains(hop) {
        return hop;
    }
    for value in xff_values.iter().rev() {
        for entry in value.rsplit(|&b| b == b',') {
            let entry = entry.trim_ascii();
            if entry.is_empty() {
                continue;
            }
            let Some(ip) = parse_hop(entry) else {
                return hop;
            };
            hop = ip.to_canonical();
            if !trusted.contains(hop) {
                return hop;
            }
        }
    }
    hop
}

/// One X-Forwarded-For entry (already trimmed): an address, optionally with a port.
fn parse_hop(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    if let Some(bracketed) = text.strip_prefix('[') {
        let (v6, after) = bracketed.split_once(']')?;
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(is_port) {
            return None;
        }
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let (v4, port) = text.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    v4.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(p: &str) -> bool {
    (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &[&str]) -> Trusted {
        Trusted::new(list.iter().map(|c| c.parse().unwrap()).collect())
    }

    #[test]
    fn cidr_parses() {
        let cases = [
            ("ipv4 network", "10.0.0.0/8", "10.0.0.0/8"),
            ("ipv4 host", "127.0.0.1", "127.0.0.1/32"),
            ("ipv4 everything", "0.0.0.0/0", "0.0.0.0/0"),
            ("ipv6 host with prefix", "::1/128", "::1/128"),
            ("ipv6 host", "2001:db8::1", "2001:db8::1/128"),
            ("ipv6 network", "2001:db8::/32", "2001:db8::/32"),
            ("ipv6 everything", "::/0", "::/0"),
            (
                "mapped network is ipv4",
                "::ffff:10.0.0.0/104",
                "10.0.0.0/8",
            ),
            ("mapped host is ipv4", "::ffff:192.0.2.1", "192.0.2.1/32"),
            ("wider than mapped stays ipv6", "::/95", "::/95"),
        ];
        for (name, input, shown) in cases {
            let cidr: Cidr = input.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cidr.to_string(), shown, "{name}");
        }
    }

    #[test]
    fn cidr_rejects() {
        const NOT_IP: &str =
            " is not an IP address or network (like 10.0.0.0/8, ::1/128 or 127.0.0.1)";
        const V4_PREFIX: &str = ": the prefix length must be a number from 0 to 32";
        const V6_PREFIX: &str = ": the prefix length must be a number from 0 to 128";
        const HOST_BITS: &str = " has bits set past the prefix length; the network is ";
        let cases = [
            ("host bits", "10.0.0.1/8", HOST_BITS, "10.0.0.0/8"),
            (
                "ipv6 host bits",
                "2001:db8::1/32",
                HOST_BITS,
                "2001:db8::/32",
            ),
            (
                "mapped host bits",
                "::ffff:10.0.0.1/104",
                HOST_BITS,
                "10.0.0.0/8",
            ),
            ("ipv4 prefix too long", "10.0.0.0/33", V4_PREFIX, ""),
            ("ipv6 prefix too long", "::/129", V6_PREFIX, ""),
            ("empty prefix", "10.0.0.0/", V4_PREFIX, ""),
            ("signed prefix", "10.0.0.0/+8", V4_PREFIX, ""),
            ("leading zero prefix", "10.0.0.0/08", V4_PREFIX, ""),
            ("two slashes", "10.0.0.0/8/8", V4_PREFIX, ""),
            ("hostname", "proxy.local", NOT_IP, ""),
            ("empty", "", NOT_IP, ""),
            ("spaces", " 10.0.0.0/8", NOT_IP, ""),
            ("short ipv4", "10.0/16", NOT_IP, ""),
        ];
        for (name, input, message, network) in cases {
            let e = input.parse::<Cidr>().expect_err(name);
            assert_eq!(
                e.to_string(),
                format!("{input:?}{message}{network}"),
                "{name}"
            );
        }
    }

    #[test]
    fn contains() {
        let cases = [
            ("inside ipv4", "10.0.0.0/8", "10.255.1.2", true),
            ("outside ipv4", "10.0.0.0/8", "11.0.0.1", false),
            ("ipv4 host", "127.0.0.1", "127.0.0.1", true),
            ("ipv4 host neighbour", "127.0.0.1", "127.0.0.2", false),
            ("everything ipv4", "0.0.0.0/0", "203.0.113.9", true),
            ("ipv4 list, ipv6 address", "0.0.0.0/0", "::1", false),
            ("ipv6 list, ipv4 address", "::/0", "10.0.0.1", false),
            (
                "ipv6 list, mapped address",
                "::/0",
                "::ffff:10.0.0.1",
                false,
            ),
            (
                "mapped address in ipv4 list",
                "10.0.0.0/8",
                "::ffff:10.0.0.1",
                true,
            ),
            (
                "ipv4 address in mapped list",
                "::ffff:10.0.0.0/104",
                "10.1.2.3",
                true,
            ),
            ("ipv6 inside", "2001:db8::/32", "2001:db8:ffff::1", true),
            ("ipv6 outside", "2001:db8::/32", "2001:db9::1", false),
            ("ipv6 host", "::1/128", "::1", true),
            ("compat address is not ipv4", "0.0.0.1", "::1", false),
        ];
        for (name, cidr, addr, want) in cases {
            assert_eq!(trusted(&[cidr]).contains(ip(addr)), want, "{name}");
        }
        assert!(Trusted::default().is_empty(), "default is empty");
        assert!(!trusted(&["::1"]).is_empty(), "one entry is not empty");
        assert!(
            !Trusted::default().contains(ip("127.0.0.1")),
            "empty trusts nobody"
        );
    }

    #[test]
    fn client_ip_walks_forwarded_for() {
        let t = trusted(&["10.0.0.0/8", "2001:db8::/32"]);
        let cases: &[(&str, &str, &[&[u8]], &str)] = &[
            (
                "untrusted peer ignores xff",
                "203.0.113.1",
                &[b"1.1.1.1"],
                "203.0.113.1",
            ),
            ("trusted peer, no xff", "10.0.0.1", &[], "10.0.0.1"),
            ("one hop", "10.0.0.1", &[b"1.1.1.1"], "1.1.1.1"),
            (
                "trusted hops skipped",
                "10.0.0.1",
                &[b"1.1.1.1, 10.0.0.7, 10.0.0.8"],
                "1.1.1.1",
            ),
            (
                "spoofed left entry ignored",
                "10.0.0.1",
                &[b"6.6.6.6, 1.1.1.1, 10.0.0.7"],
                "1.1.1.1",
            ),
            (
                "headers in order",
                "10.0.0.1",
                &[b"6.6.6.6, 1.1.1.1", b"10.0.0.7", b"10.0.0.8"],
                "1.1.1.1",
            ),
            (
                "last header's untrusted wins",
                "10.0.0.1",
                &[b"1.1.1.1", b"2.2.2.2"],
                "2.2.2.2",
            ),
            (
                "all trusted: leftmost",
                "10.0.0.1",
                &[b"10.0.0.5, 10.0.0.6"],
                "10.0.0.5",
            ),
            (
                "garbage stops at last trusted",
                "10.0.0.1",
                &[b"1.1.1.1, unknown, 10.0.0.9"],
                "10.0.0.9",
            ),
            (
                "garbage first returns peer",
                "10.0.0.1",
                &[b"1.1.1.1, _hidden"],
                "10.0.0.1",
            ),
            (
                "non-utf8 is garbage",
                "10.0.0.1",
                &[b"1.1.1.1, \xff\xfe"],
                "10.0.0.1",
            ),
            (
                "empty elements skipped",
                "10.0.0.1",
                &[b"1.1.1.1,, \t ,10.0.0.2,"],
                "1.1.1.1",
            ),
            (
                "empty header skipped",
                "10.0.0.1",
                &[b"1.1.1.1", b""],
                "1.1.1.1",
            ),
            (
                "tabs and spaces",
                "10.0.0.1",
                &[b" \t1.1.1.1 \t"],
                "1.1.1.1",
            ),
            ("ipv4 with port", "10.0.0.1", &[b"1.1.1.1:8080"], "1.1.1.1"),
            (
                "bad port is garbage",
                "10.0.0.1",
                &[b"1.1.1.1:99999"],
                "10.0.0.1",
            ),
            (
                "empty port is garbage",
                "10.0.0.1",
                &[b"1.1.1.1:"],
                "10.0.0.1",
            ),
            ("ipv6", "10.0.0.1", &[b"2001:db9::1"], "2001:db9::1"),
            (
                "bracketed ipv6",
                "10.0.0.1",
                &[b"[2001:db9::1]"],
                "2001:db9::1",
            ),
            (
                "bracketed ipv6 with port",
                "10.0.0.1",
                &[b"[2001:db9::1]:443"],
                "2001:db9::1",
            ),
            (
                "bracket junk is garbage",
                "10.0.0.1",
                &[b"[2001:db9::1]x"],
                "10.0.0.1",
            ),
            (
                "trusted ipv6 peer",
                "2001:db8::5",
                &[b"1.1.1.1, 2001:db8::6"],
                "1.1.1.1",
            ),
            (
                "mapped peer is trusted ipv4",
                "::ffff:10.0.0.1",
                &[b"1.1.1.1"],
                "1.1.1.1",
            ),
            (
                "mapped hop is trusted",
                "10.0.0.1",
                &[b"1.1.1.1, ::ffff:10.9.9.9"],
                "1.1.1.1",
            ),
            (
                "mapped client comes back ipv4",
                "10.0.0.1",
                &[b"::ffff:1.1.1.1"],
                "1.1.1.1",
            ),
            (
                "mapped untrusted peer comes back ipv4",
                "::ffff:1.2.3.4",
                &[b"5.5.5.5"],
                "1.2.3.4",
            ),
        ];
        for (name, peer, xff, want) in cases {
            assert_eq!(client_ip(ip(peer), &t, xff), ip(want), "{name}");
        }
    }

    #[test]
    fn nobody_trusted_means_peer() {
        assert_eq!(
            client_ip(ip("10.0.0.1"), &Trusted::default(), &[b"1.1.1.1"]),
            ip("10.0.0.1")
        );
    }
}
