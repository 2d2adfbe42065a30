//! Route conditions: host, path and header patterns (`HostPattern`, `PathPattern` with its
//! `Template` rewrite, `HeaderPattern`), one route's `MatchSpec`, and what routing reads of a
//! request (`RouteInput`). Parsed at config load (main thread), matched on a shard thread.

use super::index::{same_bytes, same_bytes_nocase};
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

    pub(super) fn matches(&self, host: &[u8]) -> bool {
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
    pub(super) fn normalised(&self) -> HostPattern {
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

    pub(super) fn matches(&self, path: &[u8]) -> bool {
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

pub(super) fn prefix_matches(prefix: &[u8], path: &[u8]) -> bool {
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

    pub(super) fn matches(&self, path: &[u8]) -> bool {
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
    pub(super) fn matches_besides_path(&self, r: &RouteInput, host: &[u8]) -> bool {
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
