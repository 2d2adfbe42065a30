//! Request → route: the index of the first route, in file order, whose host, path, methods and
//! headers all match. Pure; runs on a shard thread against the shard's snapshot of the config.
//! [`Router::new`] indexes routes by exact path and by exact host, so [`Router::find`] looks at
//! only the routes that could match, in file order, without allocating.
//!
//! Matching is on the raw bytes of the request target: the query is ignored, nothing is
//! percent-decoded and dot-segments are not removed (normalising is the HTTP layer's job).
//! A `Prefix` matches whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.

use std::collections::HashMap;

use crate::balance::{hash_bytes, hash_bytes_lower, lower8};

// === patterns ===

/// Which `Host` a route serves; case-insensitive, the request's `:port` is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostPattern {
    #[default]
    Any,
    /// One host name, lower case.
    Exact(String),
    /// `*.example.com` is held as `.example.com`: any host ending so, with at least one byte before.
    Suffix(String),
}

impl HostPattern {
    /// `"*"` (any), `"api.example.com"` or `"*.example.com"`.
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        if s == "*" {
            return Ok(HostPattern::Any);
        }
        let (suffix, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if name.is_empty() {
            return Err(format!("empty host name in {s:?}; use \"*\" for any host"));
        }
        if name.contains('*') {
            return Err(format!(
                "{s:?}: '*' is only allowed as a whole first label, as in \"*.example.com\""
            ));
        }
        let ipv6 = !suffix && name.starts_with('[') && name.ends_with(']');
        let ok = |b: u8| {
            b.is_ascii_alphanumeric() || b"-._".contains(&b) || (ipv6 && b":[]".contains(&b))
        };
        if let Some(bad) = name.bytes().find(|&b| !ok(b)) {
            let why = if bad == b':' {
                " (a host pattern has no port)"
            } else {
                ""
            };
            return Err(format!(
                "invalid character {:?} in host {s:?}{why}",
                bad as char
            ));
        }
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        Ok(if suffix {
            HostPattern::Suffix(format!(".{name}"))
        } else {
            HostPattern::Exact(name)
        })
    }

    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => same_bytes_nocase(host, h.as_bytes()),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && same_bytes_nocase(&host[host.len() - s.len()..], s.as_bytes())
            }
        }
    }

    /// Lower case, no trailing dot, `Suffix` with its leading dot: what `matches` expects, even
    /// for a pattern built by hand rather than by `parse`.
    fn normalised(&self) -> HostPattern {
        let clean = |s: &str| s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        match self {
            HostPattern::Any => HostPattern::Any,
            HostPattern::Exact(h) => HostPattern::Exact(clean(h)),
            HostPattern::Suffix(s) => {
                let s = clean(s.trim_start_matches('*'));
                HostPattern::Suffix(if s.starts_with('.') {
                    s
                } else {
                    format!(".{s}")
                })
            }
        }
    }
}

/// Which request paths a route serves (the query is not part of the path).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PathPattern {
    #[default]
    Any,
    Exact(String),
    /// Whole leading segments: `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`; a
    /// pattern ending in `/` matches anything below it.
    Prefix(String),
    Template(Template),
}

/// A path like `/users/{id}/posts`, where `{name}` matches exactly one non-empty segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    /// The pattern's segments after the leading `/`.
    segments: Box<[Segment]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<[u8]>),
    Param(Box<str>),
}

impl PathPattern {
    pub fn exact(s: &str) -> Result<PathPattern, String> {
        check_path(s).map(|()| PathPattern::Exact(s.to_string()))
    }

    pub fn prefix(s: &str) -> Result<PathPattern, String> {
        check_path(s).map(|()| PathPattern::Prefix(s.to_string()))
    }

    pub fn template(s: &str) -> Result<PathPattern, String> {
        check_path(s)?;
        let mut segments = Vec::new();
        for seg in s[1..].split('/') {
            match seg.strip_prefix('{') {
                None if seg.contains(['{', '}']) => {
                    return Err(format!(
                        "{s:?}: '{{' and '}}' must wrap a whole segment, as in /users/{{id}}"
                    ));
                }
                None => segments.push(Segment::Literal(seg.as_bytes().into())),
                Some(inner) => {
                    let Some(name) = inner.strip_suffix('}') else {
                        return Err(format!("{s:?}: unclosed '{{' in segment {seg:?}"));
                    };
                    if name.is_empty() {
                        return Err(format!("{s:?}: empty parameter name '{{}}'"));
                    }
                    if !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    {
                        return Err(format!("{s:?}: parameter name {name:?} may use only letters, digits, '_' and '-'"));
                    }
                    if segments
                        .iter()
                        .any(|p| matches!(p, Segment::Param(n) if **n == *name))
                    {
                        return Err(format!("{s:?}: duplicate parameter {{{name}}}"));
                    }
                    segments.push(Segment::Param(name.into()));
                }
            }
        }
        Ok(PathPattern::Template(Template {
            source: s.to_string(),
            segments: segments.into(),
        }))
    }

    fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathPattern::Any => true,
            PathPattern::Exact(p) => same_bytes(path, p.as_bytes()),
            PathPattern::Prefix(p) => prefix_matches(p.as_bytes(), path),
            PathPattern::Template(t) => t.matches(path),
        }
    }
}

fn check_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("path {s:?} must start with '/'"));
    }
    if let Some(bad) = s
        .bytes()
        .find(|&b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
    {
        let why = if bad == b'?' {
            " (the query is not matched)"
        } else {
            ""
        };
        return Err(format!(
            "invalid character {:?} in path {s:?}{why}",
            bad as char
        ));
    }
    Ok(())
}

fn prefix_matches(prefix: &[u8], path: &[u8]) -> bool {
    path.len() >= prefix.len()
        && same_bytes(&path[..prefix.len()], prefix)
        && (path.len() == prefix.len() || prefix.ends_with(b"/") || path[prefix.len()] == b'/')
}

impl Template {
    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `{name}`s, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) => Some(&**n),
            Segment::Literal(_) => None,
        })
    }

    fn matches(&self, path: &[u8]) -> bool {
        let Some(rest) = path.strip_prefix(b"/") else {
            return false;
        };
        let mut have = rest.split(|&b| b == b'/');
        let all = self.segments.iter().all(|want| match (want, have.next()) {
            (Segment::Literal(l), Some(seg)) => same_bytes(l, seg),
            (Segment::Param(_), Some(seg)) => !seg.is_empty(),
            (_, None) => false,
        });
        all && have.next().is_none()
    }
}

/// How a header must appear; names compare case-insensitively, values exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    Present,
    Exact(Vec<u8>),
}

/// One route's conditions; all must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatchSpec {
    pub host: HostPattern,
    pub path: PathPattern,
    /// Empty = any; methods are case-sensitive (RFC 9110), so "GET", not "get".
    pub methods: Vec<String>,
    /// (lower-case name, pattern); a header may occur several times, one match is enough.
    pub headers: Vec<(String, HeaderPattern)>,
}

impl MatchSpec {
    /// Everything but the path (the exact-path index has already checked that).
    #[inline(always)]
    fn matches_besides_path(&self, r: &RouteInput, host: &[u8]) -> bool {
        (self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| same_bytes(m.as_bytes(), r.method)))
            && self.host.matches(host)
            && self.headers.iter().all(|(name, want)| {
                r.headers.iter().any(|h| {
                    same_bytes_nocase(h.name.as_bytes(), name.as_bytes())
                        && match want {
                            HeaderPattern::Present => true,
                            HeaderPattern::Exact(v) => same_bytes(h.value, v),
                        }
                })
            })
    }
}

/// What routing looks at in a request head.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    pub method: &'a [u8],
    /// Host header value, may carry :port, may be empty. An absolute-form target's authority
    /// takes its place (RFC 9112 §3.2.2).
    pub host: &'a [u8],
    /// The request target including any ?query, which is ignored for matching.
    pub target: &'a [u8],
    pub headers: &'a [httparse::Header<'a>],
}

// === Router ===

/// Routes of one config version, indexed for `find`.
#[derive(Debug)]
pub struct Router {
    routes: Box<[MatchSpec]>,
    /// Routes with an exact path, by that path.
    by_path: Index,
    /// Routes with an exact host but no exact path, by that host (lower case).
    by_host: Index,
    /// All other routes, ascending.
    rest: Box<[u32]>,
    /// Per route: the path's first eight bytes, masked, must equal this for the route to match.
    leads: Box<[Lead]>,
    /// Some route looks at the host, so `find` must extract it.
    needs_host: bool,
}

/// The bytes every path a route matches starts with (up to eight), to turn most non-matching
/// routes away with one comparison before looking at the route itself.
#[derive(Debug, Clone, Copy)]
struct Lead {
    word: u64,
    mask: u64,
}

impl Lead {
    fn of(p: &PathPattern) -> Lead {
        let fixed: &[u8] = match p {
            PathPattern::Any => b"",
            PathPattern::Exact(s) | PathPattern::Prefix(s) => s.as_bytes(),
            PathPattern::Template(t) => t.source.split('{').next().unwrap_or("").as_bytes(),
        };
        let n = fixed.len().min(8);
        Lead {
            word: first8(fixed),
            mask: if n == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * n)) - 1
            },
        }
    }
}

/// The first eight bytes of `s` as a little-endian word, zero-padded.
#[inline(always)]
fn first8(s: &[u8]) -> u64 {
    match s.get(..8) {
        Some(eight) => {
            let mut w = [0u8; 8];
            w.copy_from_slice(eight);
            u64::from_le_bytes(w)
        }
        None => s.iter().rev().fold(0, |w, &b| w << 8 | u64::from(b)),
    }
}

impl Router {
    pub fn new(specs: &[MatchSpec]) -> Router {
        let routes: Box<[MatchSpec]> = specs
            .iter()
            .map(|s| MatchSpec {
                host: s.host.normalised(),
                path: s.path.clone(),
                methods: s.methods.clone(),
                headers: s
                    .headers
                    .iter()
                    .map(|(n, p)| (n.to_ascii_lowercase(), p.clone()))
                    .collect(),
            })
            .collect();
        let (mut paths, mut hosts, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        for (i, r) in routes.iter().enumerate().take(u32::MAX as usize) {
            let i = i as u32;
            match (&r.path, &r.host) {
                (PathPattern::Exact(p), _) => paths.push((p.as_bytes(), i)),
                (_, HostPattern::Exact(h)) => hosts.push((h.as_bytes(), i)),
                _ => rest.push(i),
            }
        }
        Router {
            needs_host: routes.iter().any(|r| r.host != HostPattern::Any),
            leads: routes.iter().map(|r| Lead::of(&r.path)).collect(),
            by_path: Index::new(&paths, false),
            by_host: Index::new(&hosts, true),
            rest: rest.into(),
            routes,
        }
    }

    /// The first route, in file order, that matches.
    pub fn find(&self, r: &RouteInput) -> Option<usize> {
        let t = split_target(r.target);
        let path = &r.target[t.path.clone()];
        let path: &[u8] = if path.is_empty() { b"/" } else { path };
        let host = match (self.needs_host, t.authority) {
            (false, _) => &[][..],
            (true, Some(a)) => host_only(&r.target[a]),
            (true, None) => host_only(r.host),
        };
        let exact = self.by_path.get(path);
        let hosted = self.by_host.get(host);
        let lead = first8(path);
        let full = |id: u32| {
            let (route, want) = (&self.routes[id as usize], self.leads[id as usize]);
            lead & want.mask == want.word
                && route.path.matches(path)
                && route.matches_besides_path(r, host)
        };
        if hosted.is_empty() && self.rest.is_empty() {
            let hit = |&&id: &&u32| self.routes[id as usize].matches_besides_path(r, host);
            return exact.iter().find(hit).map(|&id| id as usize);
        }
        if exact.is_empty() && hosted.is_empty() {
            return self
                .rest
                .iter()
                .find(|&&id| full(id))
                .map(|&id| id as usize);
        }
        // Merge the three ascending lists: the smallest head is the next route in file order.
        let head = |list: &[u32], k: usize| list.get(k).copied().unwrap_or(u32::MAX);
        let (mut a, mut b, mut c) = (0, 0, 0);
        loop {
            let (x, y, z) = (head(exact, a), head(hosted, b), head(&self.rest, c));
            let id = x.min(y).min(z);
            let hit = if id == u32::MAX {
                return None;
            } else if id == x {
                a += 1;
                self.routes[id as usize].matches_besides_path(r, host)
            } else {
                if id == y {
                    b += 1;
                } else {
                    c += 1;
                }
                full(id)
            };
            if hit {
                return Some(id as usize);
            }
        }
    }
}

/// Bytes of target matched by a Prefix pattern (for the lead's prefix rewrite): `target[n..]` is
/// what follows the prefix. None when `p` is not a Prefix or does not match.
pub fn strip_prefix_len(p: &PathPattern, target: &[u8]) -> Option<usize> {
    let PathPattern::Prefix(prefix) = p else {
        return None;
    };
    let path = split_target(target).path;
    prefix_matches(prefix.as_bytes(), &target[path.clone()]).then(|| path.start + prefix.len())
}

/// Where the authority (absolute form only) and the path sit in a request target.
struct Target {
    authority: Option<std::ops::Range<usize>>,
    path: std::ops::Range<usize>,
}

fn split_target(t: &[u8]) -> Target {
    if t.first() == Some(&b'/') {
        return Target {
            authority: None,
            path: 0..query_start(t, 0),
        };
    }
    let scheme = [&b"http://"[..], b"https://"]
        .into_iter()
        .find(|s| t.len() >= s.len() && t[..s.len()].eq_ignore_ascii_case(s));
    let Some(s) = scheme else {
        return Target {
            authority: None,
            path: 0..query_start(t, 0),
        };
    };
    let at = t[s.len()..]
        .iter()
        .position(|b| b"/?#".contains(b))
        .map_or(t.len(), |k| s.len() + k);
    let userinfo = t[s.len()..at]
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(0, |k| k + 1);
    Target {
        authority: Some(s.len() + userinfo..at),
        path: at..query_start(t, at),
    }
}

/// Where the query (or a fragment) starts at or after `from`: the end of the path. Looks at eight
/// bytes at a time.
fn query_start(t: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // High bit set in each byte of `w` equal to `b`; false positives only above a true one.
    let eq = |w: u64, b: u8| {
        let x = w ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & (ONES << 7)
    };
    let mut i = from;
    while let Some(chunk) = t.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let hits = eq(w, b'?') | eq(w, b'#');
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    t[i.min(t.len())..]
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .map_or(t.len(), |k| i + k)
}

/// The host of a `Host` value: without `:port`, brackets kept on an IPv6 literal, no trailing dot.
fn host_only(h: &[u8]) -> &[u8] {
    let h = if h.first() == Some(&b'[') {
        h.iter().position(|&b| b == b']').map_or(h, |k| &h[..=k])
    } else {
        h.iter().rposition(|&b| b == b':').map_or(h, |k| &h[..k])
    };
    h.strip_suffix(b".").unwrap_or(h)
}

// === Index ===

/// `a == b` for the short strings of paths, eight bytes at a time and inline, where a call to
/// `memcmp` would cost more than the comparison.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    same_words::<false>(a, b)
}

/// `a.eq_ignore_ascii_case(b)`, eight bytes at a time.
#[inline(always)]
fn same_bytes_nocase(a: &[u8], b: &[u8]) -> bool {
    same_words::<true>(a, b)
}

#[inline(always)]
fn same_words<const FOLD: bool>(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let fold = |w: u64| if FOLD { lower8(w) } else { w };
    if n < 8 {
        // Up to seven bytes in one word: the first and last four, or bytes 0, n/2 and n - 1.
        let word = |s: &[u8]| match n {
            0 => 0,
            1..=3 => u64::from(s[0]) | u64::from(s[n / 2]) << 8 | u64::from(s[n - 1]) << 16,
            _ => {
                let (mut lo, mut hi) = ([0u8; 4], [0u8; 4]);
                lo.copy_from_slice(&s[..4]);
                hi.copy_from_slice(&s[n - 4..]);
                u64::from(u32::from_le_bytes(lo)) | u64::from(u32::from_le_bytes(hi)) << 32
            }
        };
        return fold(word(a)) == fold(word(b));
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        fold(u64::from_le_bytes(w))
    };
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8) // the last eight, overlapping those already compared
}

/// A static open-addressing table from byte strings to ascending route ids, laid out flat so a
/// lookup touches one slot, then the key and the ids side by side.
#[derive(Debug)]
struct Index {
    /// Power-of-two many slots, at most half of them used.
    slots: Box<[Slot]>,
    /// Every key, end to end.
    keys: Box<[u8]>,
    /// Every key's route ids, end to end.
    ids: Box<[u32]>,
    /// Keys compare ASCII case-insensitively (hosts).
    fold_case: bool,
}

/// One key: its hash, and where its bytes and its ids sit. No ids = a free slot.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    hash: u64,
    key_at: u32,
    key_len: u32,
    ids_at: u32,
    ids_len: u32,
}

const INDEX_SEED: u64 = 0x726f_7574_6573_2121;

impl Index {
    fn new(keyed: &[(&[u8], u32)], fold_case: bool) -> Index {
        let mut grouped: Vec<(&[u8], Vec<u32>)> = Vec::new();
        let mut seen: HashMap<&[u8], usize> = HashMap::new();
        for &(key, id) in keyed {
            let n = *seen.entry(key).or_insert_with(|| {
                grouped.push((key, Vec::new()));
                grouped.len() - 1
            });
            grouped[n].1.push(id);
        }
        // Offsets are u32: keys beyond 4 GiB of key bytes (no real config) are left out.
        let mut total = 0usize;
        grouped.retain(|(key, _)| {
            total = total.saturating_add(key.len());
            total <= u32::MAX as usize
        });
        let size = (grouped.len() * 2).next_power_of_two();
        let mut index = Index {
            slots: vec![Slot::default(); size].into(),
            keys: grouped
                .iter()
                .flat_map(|(k, _)| k.iter().copied())
                .collect(),
            ids: grouped
                .iter()
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect(),
            fold_case,
        };
        let (mut key_at, mut ids_at) = (0, 0);
        for (key, ids) in &grouped {
            let hash = index.hash(key);
            let mut s = hash as usize & (size - 1);
            while index.slots[s].ids_len != 0 {
                s = (s + 1) & (size - 1);
            }
            index.slots[s] = Slot {
                hash,
                key_at: key_at as u32,
                key_len: key.len() as u32,
                ids_at: ids_at as u32,
                ids_len: ids.len() as u32,
            };
            key_at += key.len();
            ids_at += ids.len();
        }
        index
    }

    #[inline(always)]
    fn hash(&self, key: &[u8]) -> u64 {
        match self.fold_case {
            true => hash_bytes_lower(INDEX_SEED, key),
            false => hash_bytes(INDEX_SEED, key),
        }
    }

    /// Route ids stored under `key`, ascending; empty when none.
    #[inline(always)]
    fn get(&self, key: &[u8]) -> &[u32] {
        if self.ids.is_empty() {
            return &[];
        }
        let mask = self.slots.len() - 1;
        let h = self.hash(key);
        let mut s = h as usize & mask;
        loop {
            let slot = self.slots[s];
            if slot.ids_len == 0 {
                return &[];
            }
            if slot.hash == h {
                let at = slot.key_at as usize;
                let stored = &self.keys[at..at + slot.key_len as usize];
                let same = match self.fold_case {
                    true => same_bytes_nocase(stored, key),
                    false => same_bytes(stored, key),
                };
                if same {
                    let at = slot.ids_at as usize;
                    return &self.ids[at..at + slot.ids_len as usize];
                }
            }
            s = (s + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, path: PathPattern) -> MatchSpec {
        MatchSpec {
            host: HostPattern::parse(host).unwrap(),
            path,
            ..MatchSpec::default()
        }
    }

    fn input<'a>(method: &'a str, host: &'a str, target: &'a str) -> RouteInput<'a> {
        RouteInput {
            method: method.as_bytes(),
            host: host.as_bytes(),
            target: target.as_bytes(),
            headers: &[],
        }
    }

    fn find(router: &Router, host: &str, target: &str) -> Option<usize> {
        router.find(&input("GET", host, target))
    }

    #[test]
    fn host_patterns_parse() {
        let cases = [
            ("*", Ok(HostPattern::Any)),
            (
                "API.Example.com",
                Ok(HostPattern::Exact("api.example.com".into())),
            ),
            ("example.com.", Ok(HostPattern::Exact("example.com".into()))),
            (
                "*.Example.com",
                Ok(HostPattern::Suffix(".example.com".into())),
            ),
            ("[::1]", Ok(HostPattern::Exact("[::1]".into()))),
            ("", Err("empty host")),
            ("*.", Err("empty host")),
            ("a*.example.com", Err("'*' is only allowed")),
            ("*.*.example.com", Err("'*' is only allowed")),
            ("example.com:80", Err("no port")),
            ("exa mple.com", Err("invalid character")),
        ];
        for (text, want) in cases {
            match (HostPattern::parse(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn host_matching_ignores_case_and_port() {
        let cases = [
            ("api.example.com", "API.example.COM:8443", true),
            ("api.example.com", "api.example.com.", true),
            ("api.example.com", "api.example.org", false),
            ("api.example.com", "", false),
            ("*.example.com", "a.b.Example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "badexample.com", false),
            ("[::1]", "[::1]:8080", true),
            ("*", "", true),
        ];
        for (pattern, host, want) in cases {
            let r = Router::new(&[spec(pattern, PathPattern::Any)]);
            assert_eq!(find(&r, host, "/") == Some(0), want, "{pattern} vs {host}");
        }
    }

    #[test]
    fn path_patterns_reject_bad_input() {
        type Parse = fn(&str) -> Result<PathPattern, String>;
        let cases: [(Parse, &str, &str); 11] = [
            (PathPattern::exact, "users", "must start with '/'"),
            (PathPattern::prefix, "", "must start with '/'"),
            (PathPattern::exact, "/a?b=1", "query is not matched"),
            (PathPattern::prefix, "/a b", "invalid character"),
            (PathPattern::template, "/users/{}", "empty parameter"),
            (PathPattern::template, "/users/{id", "unclosed"),
            (PathPattern::template, "/users/id}", "whole segment"),
            (PathPattern::template, "/users/x{id}", "whole segment"),
            (
                PathPattern::template,
                "/a/{id}/b/{id}",
                "duplicate parameter",
            ),
            (PathPattern::template, "/a/{i{d}}", "may use only"),
            (PathPattern::template, "/a/{i.d}", "may use only"),
        ];
        for (parse, text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let t = PathPattern::template("/users/{id}/posts/{post_id}").unwrap();
        let PathPattern::Template(t) = t else {
            unreachable!()
        };
        assert_eq!(t.names().collect::<Vec<_>>(), ["id", "post_id"]);
        assert_eq!(t.source(), "/users/{id}/posts/{post_id}");
    }

    #[test]
    fn path_matching() {
        let exact = PathPattern::exact;
        let prefix = PathPattern::prefix;
        let template = PathPattern::template;
        let cases: [(Result<PathPattern, String>, &str, bool); 20] = [
            (exact("/health"), "/health", true),
            (exact("/health"), "/health?full=1", true),
            (exact("/health"), "/health/", false),
            (exact("/health"), "/Health", false),
            (prefix("/api"), "/api", true),
            (prefix("/api"), "/api/v1/users", true),
            (prefix("/api"), "/api?x", true),
            (prefix("/api"), "/apix", false),
            (prefix("/api/"), "/api/x", true),
            (prefix("/api/"), "/api", false),
            (prefix("/"), "/anything", true),
            (template("/users/{id}/posts"), "/users/42/posts", true),
            (
                template("/users/{id}/posts"),
                "/users/42/posts?page=2",
                true,
            ),
            (template("/users/{id}/posts"), "/users//posts", false),
            (template("/users/{id}/posts"), "/users/42/posts/", false),
            (template("/users/{id}/posts"), "/users/42", false),
            (template("/users/{id}/posts"), "/users/4/2/posts", false),
            (template("/users/{id}"), "/users/42", true),
            (template("/"), "/", true),
            (exact("/"), "http://example.com?q", true),
        ];
        for (pattern, target, want) in cases {
            let r = Router::new(&[spec("*", pattern.clone().unwrap())]);
            assert_eq!(
                find(&r, "", target) == Some(0),
                want,
                "{pattern:?} vs {target}"
            );
        }
    }

    #[test]
    fn leads_reject_only_non_matching_paths() {
        let cases = [
            (PathPattern::Any, "", true),
            (PathPattern::prefix("/api").unwrap(), "/api", true),
            (PathPattern::prefix("/api").unwrap(), "/ap", false),
            (
                PathPattern::prefix("/static/assets").unwrap(),
                "/static/b",
                true,
            ), // only 8 bytes
            (
                PathPattern::prefix("/static/assets").unwrap(),
                "/statiX/assets",
                false,
            ),
            (PathPattern::template("/u/{id}").unwrap(), "/u/7", true),
            (PathPattern::template("/u/{id}").unwrap(), "/v/7", false),
            (PathPattern::template("/{id}").unwrap(), "/7", true),
        ];
        for (pattern, path, want) in cases {
            let lead = Lead::of(&pattern);
            let got = first8(path.as_bytes()) & lead.mask == lead.word;
            assert_eq!(got, want, "{pattern:?} {path}");
        }
    }

    #[test]
    fn methods_and_headers() {
        let s = MatchSpec {
            methods: vec!["GET".into(), "HEAD".into()],
            headers: vec![
                ("X-Canary".into(), HeaderPattern::Exact(b"yes".to_vec())),
                ("authorization".into(), HeaderPattern::Present),
            ],
            ..MatchSpec::default()
        };
        let r = Router::new(&[s]);
        let h = |name, value| httparse::Header { name, value };
        let cases: [(&str, &[httparse::Header], bool); 6] = [
            (
                "GET",
                &[h("x-canary", b"yes"), h("Authorization", b"x")],
                true,
            ),
            (
                "HEAD",
                &[
                    h("X-CANARY", b"no"),
                    h("x-canary", b"yes"),
                    h("authorization", b""),
                ],
                true,
            ),
            (
                "get",
                &[h("x-canary", b"yes"), h("authorization", b"x")],
                false,
            ),
            (
                "POST",
                &[h("x-canary", b"yes"), h("authorization", b"x")],
                false,
            ),
            (
                "GET",
                &[h("x-canary", b"YES"), h("authorization", b"x")],
                false,
            ),
            ("GET", &[h("x-canary", b"yes")], false),
        ];
        for (method, headers, want) in cases {
            let got = r.find(&RouteInput {
                headers,
                ..input(method, "", "/")
            });
            assert_eq!(got == Some(0), want, "{method} {headers:?}");
        }
    }

    #[test]
    fn first_match_in_file_order_across_indexes() {
        let e = |p: &str| PathPattern::exact(p).unwrap();
        let pre = |p: &str| PathPattern::prefix(p).unwrap();
        let r = Router::new(&[
            spec("*", e("/a")),                        // 0: exact path
            spec("api.example.com", pre("/v1")),       // 1: exact host
            spec("*", pre("/v1")),                     // 2: rest
            spec("api.example.com", e("/v1/x")),       // 3: exact path after broader routes
            spec("*.example.com", PathPattern::Any),   // 4: rest
            spec("api.example.com", PathPattern::Any), // 5: exact host
            spec("*", e("/a")),                        // 6: shadowed by 0
        ]);
        let cases = [
            ("x.org", "/a", Some(0)),
            ("api.example.com", "/a", Some(0)),
            ("api.example.com", "/v1/x", Some(1)),
            ("other.org", "/v1/x", Some(2)),
            ("www.example.com", "/b", Some(4)),
            ("API.example.com:443", "/b", Some(4)),
            ("other.org", "/b", None),
        ];
        for (host, target, want) in cases {
            assert_eq!(find(&r, host, target), want, "{host} {target}");
        }
        let r = Router::new(&[
            spec("api.example.com", PathPattern::Any),
            spec("*", e("/z")),
        ]);
        assert_eq!(find(&r, "api.example.com", "/z"), Some(0));
        assert_eq!(find(&r, "b.example.com", "/z"), Some(1));
    }

    #[test]
    fn many_exact_routes_and_duplicates() {
        let specs: Vec<MatchSpec> = (0..200)
            .map(|i| spec("*", PathPattern::exact(&format!("/r/{}", i % 100)).unwrap()))
            .collect();
        let r = Router::new(&specs);
        for i in 0..100 {
            assert_eq!(find(&r, "", &format!("/r/{i}")), Some(i));
        }
        assert_eq!(find(&r, "", "/r/100"), None);
        assert_eq!(Router::new(&[]).find(&input("GET", "h", "/")), None);
    }

    #[test]
    fn absolute_form_target_uses_its_authority() {
        let r = Router::new(&[spec("api.example.com", PathPattern::exact("/x").unwrap())]);
        let cases = [
            ("other.org", "http://api.example.com/x", true),
            (
                "api.example.com",
                "HTTPS://user@api.example.com:8443/x?y",
                true,
            ),
            ("api.example.com", "http://other.org/x", false),
            ("api.example.com", "/x", true),
        ];
        for (host, target, want) in cases {
            assert_eq!(find(&r, host, target) == Some(0), want, "{host} {target}");
        }
    }

    #[test]
    fn hand_built_patterns_are_normalised() {
        let r = Router::new(&[MatchSpec {
            host: HostPattern::Suffix("*.Example.com".into()),
            headers: vec![("X-A".into(), HeaderPattern::Present)],
            ..MatchSpec::default()
        }]);
        let headers = [httparse::Header {
            name: "x-a",
            value: b"",
        }];
        let got = r.find(&RouteInput {
            headers: &headers,
            ..input("GET", "w.example.com", "/")
        });
        assert_eq!(got, Some(0));
    }

    #[test]
    fn strip_prefix_len_covers_the_prefix() {
        let pre = |p: &str| PathPattern::prefix(p).unwrap();
        let cases = [
            (pre("/api"), "/api/users?x", Some(4)),
            (pre("/api"), "/api", Some(4)),
            (pre("/api/"), "/api/users", Some(5)),
            (pre("/api"), "/apix", None),
            (pre("/api"), "http://h/api/u", Some(12)),
            (PathPattern::exact("/api").unwrap(), "/api", None),
            (PathPattern::Any, "/api", None),
        ];
        for (pattern, target, want) in cases {
            assert_eq!(
                strip_prefix_len(&pattern, target.as_bytes()),
                want,
                "{pattern:?} {target}"
            );
        }
    }

    #[test]
    fn query_start_finds_the_first_question_mark_or_hash() {
        let long = "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for len in 0..long.len() {
            for mark in ["?", "#", "??", "#?", "?#"] {
                let t = format!("{}{mark}x?y", &long[..len]);
                assert_eq!(query_start(t.as_bytes(), 0), len, "{t}");
                assert_eq!(query_start(&t.as_bytes()[..len], 0), len, "{t}");
            }
        }
        assert_eq!(query_start(b"/a?b", 5), 4);
    }

    #[test]
    fn same_bytes_is_equality_with_and_without_case() {
        let words = [
            "",
            "/",
            "/a",
            "/ab",
            "/abc",
            "/abcd",
            "/abcde",
            "/abcdef",
            "/abcdefg",
            "/abcdefgh",
            "/abcdefghijklmno",
            "/abcdefghijklmnop",
            "/abcdefghijklmnopqrstuvwxyz",
        ];
        for a in words {
            for b in words {
                assert_eq!(same_bytes(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
                let upper = b.to_ascii_uppercase();
                let nocase = same_bytes_nocase(a.as_bytes(), upper.as_bytes());
                assert_eq!(nocase, a.eq_ignore_ascii_case(&upper), "{a} {upper}");
                let mut c = a.as_bytes().to_vec();
                if let Some(last) = c.last_mut() {
                    *last ^= 1;
                    assert!(!same_bytes(a.as_bytes(), &c), "{a}");
                    c[0] ^= 2;
                    assert!(!same_bytes(&c, a.as_bytes()), "{a}");
                }
            }
        }
        let unlike: [(&[u8], &[u8]); 6] = [
            (b"GET", b"gEU"),
            (b"/a/b/c", b"/a/c/c"),
            (b"@[\\]^", b"`{|}~"),
            (b"@@@@[[[[]]]]", b"````{{{{}}}}"),
            (
                b"\xc1\xc1\xc1\xc1\xc1\xc1\xc1\xc1",
                b"\xe1\xe1\xe1\xe1\xe1\xe1\xe1\xe1",
            ),
            (b"\xc1", b"\xe1"),
        ];
        for (a, b) in unlike {
            assert!(!same_bytes_nocase(a, b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn odd_targets_do_not_panic() {
        let r = Router::new(&[
            spec("*.a", PathPattern::template("/{x}").unwrap()),
            spec("b", PathPattern::prefix("/").unwrap()),
        ]);
        for target in [
            "",
            "*",
            "?",
            "http://",
            "https://@",
            "http://[::1",
            "//",
            "/?#",
        ] {
            for host in ["", ":", "[", "[::1]:", "a.", ".a"] {
                let _ = find(&r, host, target);
                let _ = strip_prefix_len(&PathPattern::prefix("/").unwrap(), target.as_bytes());
            }
        }
    }
}
