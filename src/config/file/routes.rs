//! The `[[routes]]` entries of the config file: raw spanned tables (match, cluster, rewrite,
//! header edits, direct answer, timeouts, rate limit, retry, upgrades, expect) checked into a
//! `Route`; errors name the entry (`routes[2].path`) and the line. Main thread.

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::entry::{err, positive, spanned, EntryError, S};
use super::headers::{edits, header_name_ok, header_value_ok};
use crate::config::{parse_upgrades, Direct, ExpectMode, RetryPolicy, Route, RouteTimeouts};
use crate::policy::route::{HeaderPattern, HostPattern, MatchSpec, PathPattern};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    name: S<String>,
    host: S<String>,
    path: S<String>,
    path_prefix: S<String>,
    path_template: S<String>,
    methods: S<Vec<String>>,
    headers: S<HashMap<String, String>>,
    headers_present: S<Vec<String>>,
    cluster: S<String>,
    rewrite_prefix: S<String>,
    request_headers_add: S<HashMap<String, String>>,
    request_headers_remove: S<Vec<String>>,
    response_headers_add: S<HashMap<String, String>>,
    response_headers_remove: S<Vec<String>>,
    max_body: S<u64>,
    direct: Option<Spanned<RawDirect>>,
    timeouts: Option<RawRouteTimeouts>,
    rate_limit: Option<Spanned<super::rate_limit::RawRateLimit>>,
    retry: Option<RawRetry>,
    upgrades: S<Vec<String>>,
    expect: S<String>,
    tunnel_idle_timeout: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirect {
    status: u16,
    #[serde(default)]
    body: String,
    content_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouteTimeouts {
    connect: S<String>,
    upstream: S<String>,
    body: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: S<u32>,
    on: S<Vec<String>>,
    budget_ratio: S<f64>,
    budget_min_per_sec: S<u32>,
}

/// Checks route `i`; `clusters` are the names in file order.
pub fn route(
    i: usize,
    raw: RawRoute,
    span: Range<usize>,
    clusters: &[String],
) -> Result<Route, EntryError> {
    let f = |k: &str| format!("routes[{i}].{k}");
    let name = raw.name.map_or(format!("route{i}"), |n| n.into_inner());
    let host = match raw.host {
        None => HostPattern::Any,
        Some(h) => HostPattern::parse(h.get_ref()).map_err(|m| (h.span(), f("host"), m))?,
    };
    let paths = [
        (
            raw.path,
            "path",
            PathPattern::exact as fn(&str) -> Result<PathPattern, String>,
        ),
        (raw.path_prefix, "path_prefix", PathPattern::prefix),
        (raw.path_template, "path_template", PathPattern::template),
    ];
    let mut path = PathPattern::Any;
    let mut written = 0;
    for (v, k, parse) in paths {
        if let Some(v) = v {
            written += 1;
            if written > 1 {
                return err(
                    v.span(),
                    f(k),
                    "give only one of path, path_prefix, path_template",
                );
            }
            path = parse(v.get_ref()).map_err(|m| (v.span(), f(k), m))?;
        }
    }
    let (methods, mspan) = spanned(raw.methods, &span);
    if let Some(m) = methods
        .iter()
        .find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return err(
            mspan,
            f("methods"),
            format!("{m:?} is not an upper-case method name"),
        );
    }
    let mut headers = Vec::new();
    let (exact, hspan) = spanned(raw.headers, &span);
    let mut exact: Vec<_> = exact.into_iter().collect();
    exact.sort();
    for (n, v) in exact {
        if !header_name_ok(&n) {
            return err(hspan, f("headers"), format!("{n:?} is not a header name"));
        }
        headers.push((n.to_ascii_lowercase(), HeaderPattern::Exact(v.into_bytes())));
    }
    let (present, pspan) = spanned(raw.headers_present, &span);
    for n in present {
        if !header_name_ok(&n) {
            return err(
                pspan,
                f("headers_present"),
                format!("{n:?} is not a header name"),
            );
        }
        headers.push((n.to_ascii_lowercase(), HeaderPattern::Present));
    }
    let rewrite_prefix = match raw.rewrite_prefix {
        None => None,
        Some(r) => {
            if !matches!(path, PathPattern::Prefix(_)) {
                return err(r.span(), f("rewrite_prefix"), "needs path_prefix");
            }
            if !r.get_ref().starts_with('/')
                || !header_value_ok(r.get_ref())
                || r.get_ref().contains(' ')
            {
                return err(
                    r.span(),
                    f("rewrite_prefix"),
                    "must start with '/' and hold no spaces",
                );
            }
            Some(r.into_inner())
        }
    };
    let direct = match raw.direct {
        None => None,
        Some(d) => {
            let dspan = d.span();
            let d = d.into_inner();
            if !(200..=599).contains(&d.status) {
                return err(
                    dspan,
                    f("direct.status"),
                    format!("{} is not a status 200..=599", d.status),
                );
            }
            Some(Direct {
                status: d.status,
                body: d.body,
                content_type: d.content_type.unwrap_or_else(|| "text/plain".to_string()),
            })
        }
    };
    let cluster = match raw.cluster {
        None if direct.is_some() => None,
        None if clusters.len() == 1 => Some(0),
        None => {
            return err(
                span,
                f("cluster"),
                "name the cluster (or give a direct response)",
            )
        }
        Some(c) => match clusters.iter().position(|n| n == c.get_ref()) {
            Some(k) => Some(k),
            None => {
                return err(
                    c.span(),
                    f("cluster"),
                    format!("no cluster named {:?}", c.get_ref()),
                )
            }
        },
    };
    let mut timeouts = RouteTimeouts::default();
    if let Some(t) = raw.timeouts {
        timeouts.connect = positive(t.connect, || f("timeouts.connect"))?;
        timeouts.upstream = positive(t.upstream, || f("timeouts.upstream"))?;
        timeouts.body = positive(t.body, || f("timeouts.body"))?;
    }
    let rate_limit = match raw.rate_limit {
        None => None,
        Some(r) => Some(super::rate_limit::check(r.into_inner(), f)?),
    };
    let mut retry = RetryPolicy::default();
    if let Some(r) = raw.retry {
        if let Some(a) = r.attempts {
            if *a.get_ref() > 5 {
                return err(a.span(), f("retry.attempts"), "at most 5");
            }
            retry.attempts = a.into_inner();
        }
        if let Some(on) = r.on {
            retry
                .set_on(on.get_ref())
                .map_err(|m| (on.span(), f("retry.on"), m))?;
        }
        if let Some(b) = r.budget_ratio {
            if !(0.0..=1.0).contains(b.get_ref()) {
                return err(b.span(), f("retry.budget_ratio"), "must be between 0 and 1");
            }
            retry.budget_ratio = b.into_inner();
        }
        if let Some(m) = r.budget_min_per_sec {
            retry.budget_min_per_sec = m.into_inner();
        }
    }
    let upgrades = match raw.upgrades {
        None => None,
        Some(u) => Some(parse_upgrades(u.get_ref()).map_err(|m| (u.span(), f("upgrades"), m))?),
    };
    let expect = match raw.expect {
        None => None,
        Some(e) => Some(ExpectMode::parse(e.get_ref()).map_err(|m| (e.span(), f("expect"), m))?),
    };
    let tunnel_idle_timeout = positive(raw.tunnel_idle_timeout, || f("tunnel_idle_timeout"))?;
    Ok(Route {
        name,
        matches: MatchSpec {
            host,
            path,
            methods,
            headers,
        },
        cluster,
        rewrite_prefix,
        request_headers: edits(
            raw.request_headers_add,
            raw.request_headers_remove,
            span.clone(),
            |k| f(&format!("request_headers_{k}")),
        )?,
        response_headers: edits(
            raw.response_headers_add,
            raw.response_headers_remove,
            span,
            |k| f(&format!("response_headers_{k}")),
        )?,
        timeouts,
        max_body: raw.max_body.map(|m| m.into_inner()),
        direct,
        rate_limit,
        retry,
        upgrades,
        expect,
        tunnel_idle_timeout,
    })
}
