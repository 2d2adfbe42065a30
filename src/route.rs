//! Request → route: the index of the first route, in file order, whose host, path, methods and
//! headers all match. Pure; runs on a shard thread against the shard's snapshot of the config.
//! [`Router::new`] indexes routes by exact path and by exact host, so [`Router::find`] looks at
//! only the routes that could match, in file order, without allocating.
//!
//! Matching is on the raw bytes of the request target: the query is ignored, nothing is
//! percent-decoded and dot-segments are not removed (normalising is the HTTP layer's job).
//! A `Prefix` matches whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.

use std::collections::HashMap;

use crate::balance::{hash_bytes, hash_bytes_lower};

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
        let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b) || (ipv6 && b":[]".contains(&b));
        if let Some(bad) = name.bytes().find(|&b| !ok(b)) {
            let why = if bad == b':' { " (a host pattern has no port)" } else { "" };
            return Err(format!("invalid character {:?} in host {s:?}{why}", bad as char));
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
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h.as_bytes()),
            HostPattern::Suffix(s) => {
                host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
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
                HostPattern::Suffix(if s.starts_with('.') { s } else { format!(".{s}") })
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
                    return Err(format!("{s:?}: '{{' and '}}' must wrap a whole segment, as in /users/{{id}}"));
                }
                None => segments.push(Segment::Literal(seg.as_bytes().into())),
                Some(inner) => {
                    let Some(name) = inner.strip_suffix('}') else {
                        return Err(format!("{s:?}: unclosed '{{' in segment {seg:?}"));
                    };
                    if name.is_empty() {
                        return Err(format!("{s:?}: empty parameter name '{{}}'"));
                    }
                    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                        return Err(format!("{s:?}: parameter name {name:?} may use only letters, digits, '_' and '-'"));
                    }
                    if segments.iter().any(|p| matches!(p, Segment::Param(n) if **n == *name)) {
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
            PathPattern::Exact(p) => path == p.as_bytes(),
            PathPattern::Prefix(p) => prefix_matches(p.as_bytes(), path),
            PathPattern::Template(t) => t.matches(path),
        }
    }
}

fn check_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') {
        return Err(format!("path {s:?} must start with '/'"));
    }
    if let Some(bad) = s.bytes().find(|&b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#') {
        let why = if bad == b'?' { " (the query is not matched)" } else { "" };
        return Err(format!("invalid character {:?} in path {s:?}{why}", bad as char));
    }
    Ok(())
}

fn prefix_matches(prefix: &[u8], path: &[u8]) -> bool {
    path.starts_with(prefix)
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
            (Segment::Literal(l), Some(seg)) => **l == *seg,
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
    fn matches_besides_path(&self, r: &RouteInput, host: &[u8]) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m.as_bytes() == r.method))
            && self.host.matches(host)
            && self.headers.iter().all(|(name, want)| {
                r.headers.iter().any(|h| {
                    h.name.as_bytes().eq_ignore_ascii_case(name.as_bytes())
                        && match want {
                            HeaderPattern::Present => true,
                            HeaderPattern::Exact(v) => h.value == &v[..],
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
    /// Some route looks at the host, so `find` must extract it.
    needs_host: bool,
}

impl Router {
    pub fn new(specs: &[MatchSpec]) -> Router {
        let routes: Box<[MatchSpec]> = specs
            .iter()
            .map(|s| MatchSpec {
                host: s.host.normalised(),
                path: s.path.clone(),
                methods: s.methods.clone(),
                headers: s.headers.iter().map(|(n, p)| (n.to_ascii_lowercase(), p.clone())).collect(),
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
        let mut exact = self.by_path.get(path);
        let mut hosted = if self.by_host.is_empty() { &[][..] } else { self.by_host.get(host) };
        let mut rest = &self.rest[..];
        loop {
            // The smallest head of the three ascending lists is the next route in file order.
            let (id, from) = [exact.first(), hosted.first(), rest.first()]
                .into_iter()
                .enumerate()
                .filter_map(|(k, id)| Some((*id?, k)))
                .min()?;
            let route = &self.routes[id as usize];
            let hit = match from {
                0 => {
                    exact = &exact[1..];
                    route.matches_besides_path(r, host)
                }
                1 => {
                    hosted = &hosted[1..];
                    route.path.matches(path) && route.matches_besides_path(r, host)
                }
                _ => {
                    rest = &rest[1..];
                    route.path.matches(path) && route.matches_besides_path(r, host)
                }
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
    let end_of = |from: usize, stop: &[u8]| {
        t[from..].iter().position(|b| stop.contains(b)).map_or(t.len(), |k| from + k)
    };
    let scheme = [&b"http://"[..], b"https://"]
        .into_iter()
        .find(|s| t.len() >= s.len() && t[..s.len()].eq_ignore_ascii_case(s));
    match scheme {
        None => Target {
            authority: None,
            path: 0..end_of(0, b"?#"),
        },
        Some(s) => {
            let at = end_of(s.len(), b"/?#");
            let userinfo = t[s.len()..at].iter().rposition(|&b| b == b'@').map_or(0, |k| k + 1);
            Target {
                authority: Some(s.len() + userinfo..at),
                path: at..end_of(at, b"?#"),
            }
        }
    }
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

/// A static open-addressing table from byte strings to ascending route ids.
#[derive(Debug)]
struct Index {
    /// Power-of-two many slots, each an entry number or `EMPTY`.
    slots: Box<[u32]>,
    entries: Box<[Entry]>,
    /// Keys compare ASCII case-insensitively (hosts).
    fold_case: bool,
}

#[derive(Debug)]
struct Entry {
    hash: u64,
    key: Box<[u8]>,
    ids: Box<[u32]>,
}

const EMPTY: u32 = u32::MAX;
const INDEX_SEED: u64 = 0x726f_7574_6573_2121;

impl Index {
    fn new(keyed: &[(&[u8], u32)], fold_case: bool) -> Index {
        let hash = |k: &[u8]| if fold_case { hash_bytes_lower(INDEX_SEED, k) } else { hash_bytes(INDEX_SEED, k) };
        let mut grouped: Vec<(&[u8], Vec<u32>)> = Vec::new();
        let mut seen: HashMap<&[u8], usize> = HashMap::new();
        for &(key, id) in keyed {
            let n = *seen.entry(key).or_insert_with(|| {
                grouped.push((key, Vec::new()));
                grouped.len() - 1
            });
            grouped[n].1.push(id);
        }
        let entries: Vec<Entry> = grouped
            .into_iter()
            .map(|(key, ids)| Entry { hash: hash(key), key: key.into(), ids: ids.into() })
            .collect();
        let size = (entries.len() * 2).next_power_of_two();
        let mut slots = vec![EMPTY; size];
        for (n, e) in entries.iter().enumerate() {
            let mut s = e.hash as usize & (size - 1);
            while slots[s] != EMPTY {
                s = (s + 1) & (size - 1);
            }
            slots[s] = n as u32;
        }
        Index { slots: slots.into(), entries: entries.into(), fold_case }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Route ids stored under `key`, ascending; empty when none.
    fn get(&self, key: &[u8]) -> &[u32] {
        let mask = self.slots.len() - 1;
        let (h, eq): (u64, fn(&[u8], &[u8]) -> bool) = if self.fold_case {
            (hash_bytes_lower(INDEX_SEED, key), <[u8]>::eq_ignore_ascii_case)
        } else {
            (hash_bytes(INDEX_SEED, key), |a, b| a == b)
        };
        let mut s = h as usize & mask;
        loop {
            let Some(e) = self.entries.get(self.slots[s] as usize) else {
                return &[];
            };
            if e.hash == h && eq(&e.key, key) {
                return &e.ids;
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
            ("API.Example.com", Ok(HostPattern::Exact("api.example.com".into()))),
            ("example.com.", Ok(HostPattern::Exact("example.com".into()))),
            ("*.Example.com", Ok(HostPattern::Suffix(".example.com".into()))),
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
        let cases: [(fn(&str) -> Result<PathPattern, String>, &str, &str); 11] = [
            (PathPattern::exact, "users", "must start with '/'"),
            (PathPattern::prefix, "", "must start with '/'"),
            (PathPattern::exact, "/a?b=1", "query is not matched"),
            (PathPattern::prefix, "/a b", "invalid character"),
            (PathPattern::template, "/users/{}", "empty parameter"),
            (PathPattern::template, "/users/{id", "unclosed"),
            (PathPattern::template, "/users/id}", "whole segment"),
            (PathPattern::template, "/users/x{id}", "whole segment"),
            (PathPattern::template, "/a/{id}/b/{id}", "duplicate parameter"),
            (PathPattern::template, "/a/{i{d}}", "may use only"),
            (PathPattern::template, "/a/{i.d}", "may use only"),
        ];
        for (parse, text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let t = PathPattern::template("/users/{id}/posts/{post_id}").unwrap();
        let PathPattern::Template(t) = t else { unreachable!() };
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
            (template("/users/{id}/posts"), "/users/42/posts?page=2", true),
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
            assert_eq!(find(&r, "", target) == Some(0), want, "{pattern:?} vs {target}");
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
            ("GET", &[h("x-canary", b"yes"), h("Authorization", b"x")], true),
            ("HEAD", &[h("X-CANARY", b"no"), h("x-canary", b"yes"), h("authorization", b"")], true),
            ("get", &[h("x-canary", b"yes"), h("authorization", b"x")], false),
            ("POST", &[h("x-canary", b"yes"), h("authorization", b"x")], false),
            ("GET", &[h("x-canary", b"YES"), h("authorization", b"x")], false),
            ("GET", &[h("x-canary", b"yes")], false),
        ];
        for (method, headers, want) in cases {
            let got = r.find(&RouteInput { headers, ..input(method, "", "/") });
            assert_eq!(got == Some(0), want, "{method} {headers:?}");
        }
    }

    #[test]
    fn first_match_in_file_order_across_indexes() {
        let e = |p: &str| PathPattern::exact(p).unwrap();
        let pre = |p: &str| PathPattern::prefix(p).unwrap();
        let r = Router::new(&[
            spec("*", e("/a")),                      // 0: exact path
            spec("api.example.com", pre("/v1")),    // 1: exact host
            spec("*", pre("/v1")),                   // 2: rest
            spec("api.example.com", e("/v1/x")),    // 3: exact path after broader routes
            spec("*.example.com", PathPattern::Any), // 4: rest
            spec("api.example.com", PathPattern::Any), // 5: exact host
            spec("*", e("/a")),                      // 6: shadowed by 0
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
            ("api.example.com", "HTTPS://user@api.example.com:8443/x?y", true),
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
        let headers = [httparse::Header { name: "x-a", value: b"" }];
        let got = r.find(&RouteInput { headers: &headers, ..input("GET", "w.example.com", "/") });
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
            assert_eq!(strip_prefix_len(&pattern, target.as_bytes()), want, "{pattern:?} {target}");
        }
    }

    #[test]
    fn odd_targets_do_not_panic() {
        let r = Router::new(&[
            spec("*.a", PathPattern::template("/{x}").unwrap()),
            spec("b", PathPattern::prefix("/").unwrap()),
        ]);
        for target in ["", "*", "?", "http://", "https://@", "http://[::1", "//", "/?#"] {
            for host in ["", ":", "[", "[::1]:", "a.", ".a"] {
                let _ = find(&r, host, target);
                let _ = strip_prefix_len(&PathPattern::prefix("/").unwrap(), target.as_bytes());
            }
        }
    }
}
