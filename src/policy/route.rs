//! Request → route: the index of the first route, in file order, whose host, path, methods and
//! headers all match. Pure; runs on a shard thread against the shard's snapshot of the config.
//! [`Router::new`] indexes routes by exact path and by exact host, so [`Router::find`] looks at
//! only the routes that could match, in file order, without allocating.
//!
//! Matching is on the raw bytes of the request target: the query is ignored, nothing is
//! percent-decoded and dot-segments are not removed (normalising is the HTTP layer's job).
//! A `Prefix` matches whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.

mod index;
mod pattern;

use index::Index;
use pattern::prefix_matches;
pub use pattern::{HeaderPattern, HostPattern, MatchSpec, PathPattern, RouteInput, Template};

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
            PathPattern::Template(t) => t.source().split('{').next().unwrap_or("").as_bytes(),
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

#[cfg(test)]
mod tests;
