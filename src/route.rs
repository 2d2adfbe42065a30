//! Request → route: the index of the first route, in file order, whose host, path, methods and
//! headers all match. Pure; runs on a shard thread against the shard's snapshot of the config.
//! [`Router::new`] indexes routes by exact path and by exact host, so [`Router::find`] looks at
//! only the routes that could match, in file order, without allocating.
//!
//! Matching is on the raw bytes of the request target: the query is ignored, nothing is
//! percent-decoded and dot-segments are not removed (normalising is the HTTP layer's job).
//! A `Prefix` matches whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.

use std::collections::HashMap;

use crate::hash::{hash_bytes, hash_bytes_lower, lower8};

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
mod tests;
