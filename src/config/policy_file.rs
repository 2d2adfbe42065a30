//! The `[[clusters]]`, `[[routes]]` and `[[listeners]]` tables of the config file: raw spanned
//! types and their checks into validated `Cluster`/`Route`/`Listener`. Errors name the entry
//! (`routes[2].path`) and the line it is written on.

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::cluster::{parse_endpoint, Cluster, HealthCheck, ProbeKind};
use super::route::{Direct, HeaderEdits, RateKey, RateLimit, RetryPolicy, Route, RouteTimeouts};
use super::{parse_duration, parse_listen, Listener};
use crate::route::{HeaderPattern, HostPattern, MatchSpec, PathPattern};

type S<T> = Option<Spanned<T>>;

/// An error in an entry: (span, field, message).
pub type EntryError = (Range<usize>, String, String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    addr: Spanned<String>,
    #[serde(default)]
    proxy_protocol: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    name: Spanned<String>,
    endpoints: Spanned<Vec<Spanned<String>>>,
    lb: S<String>,
    max_connections: Option<usize>,
    max_pending: S<usize>,
    resolve_interval: S<String>,
    failure_statuses: S<Vec<u16>>,
    max_ejection_percent: S<u8>,
    breaker: Option<RawBreaker>,
    health_check: Option<RawHealth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failures: S<u32>,
    open_timeout: S<String>,
    max_open_timeout: S<String>,
    half_open_requests: S<u32>,
    successes: S<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    check: Spanned<String>,
    interval: S<String>,
    timeout: S<String>,
    rise: S<u32>,
    fall: S<u32>,
    expect: S<String>,
}

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
    rate_limit: Option<Spanned<RawRateLimit>>,
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
struct RawRateLimit {
    rate: Spanned<String>,
    burst: Option<u32>,
    key: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: S<u32>,
    on: S<Vec<String>>,
    budget_ratio: S<f64>,
    budget_min_per_sec: S<u32>,
}

fn err<T>(span: Range<usize>, field: String, msg: impl Into<String>) -> Result<T, EntryError> {
    Err((span, field, msg.into()))
}

fn dur(
    v: S<String>,
    field: impl Fn() -> String,
) -> Result<Option<std::time::Duration>, EntryError> {
    match v {
        None => Ok(None),
        Some(v) => parse_duration(v.get_ref())
            .map(Some)
            .map_err(|m| (v.span(), field(), m)),
    }
}

/// A duration that must be greater than zero.
fn positive(
    v: S<String>,
    field: impl Fn() -> String,
) -> Result<Option<std::time::Duration>, EntryError> {
    let span = v.as_ref().map(|v| v.span());
    match dur(v, &field)? {
        Some(d) if d.is_zero() => Err((
            span.unwrap_or(0..0),
            field(),
            "must be greater than 0".into(),
        )),
        d => Ok(d),
    }
}

impl RawListener {
    /// Where the entry's address is written.
    pub fn addr_span(&self) -> Range<usize> {
        self.addr.span()
    }
}

pub fn listener(i: usize, raw: RawListener) -> Result<Listener, EntryError> {
    let addr = parse_listen(raw.addr.get_ref())
        .map_err(|m| (raw.addr.span(), format!("listeners[{i}].addr"), m))?;
    Ok(Listener {
        addr,
        proxy_protocol: raw.proxy_protocol,
    })
}

pub fn cluster(i: usize, raw: RawCluster) -> Result<Cluster, EntryError> {
    let f = |k: &str| format!("clusters[{i}].{k}");
    let name = raw.name.get_ref().clone();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return err(
            raw.name.span(),
            f("name"),
            "use letters, digits, '-', '_' or '.'",
        );
    }
    let mut endpoints = Vec::new();
    for e in raw.endpoints.get_ref() {
        endpoints.push(parse_endpoint(e.get_ref()).map_err(|m| (e.span(), f("endpoints"), m))?);
    }
    if endpoints.is_empty() {
        return err(
            raw.endpoints.span(),
            f("endpoints"),
            "at least one endpoint is required",
        );
    }
    let mut c = Cluster::new(&name, endpoints);
    if let Some(lb) = raw.lb {
        c.lb = lb.get_ref().parse().map_err(|m| (lb.span(), f("lb"), m))?;
    }
    if let Some(n) = raw.max_connections {
        c.max_connections = n;
    }
    if let Some(n) = raw.max_pending {
        if *n.get_ref() == 0 {
            return err(n.span(), f("max_pending"), "must be at least 1");
        }
        c.max_pending = n.into_inner();
    }
    if let Some(d) = positive(raw.resolve_interval, || f("resolve_interval"))? {
        c.resolve_interval = d;
    }
    if let Some(s) = raw.failure_statuses {
        if let Some(bad) = s.get_ref().iter().find(|s| !(500..=599).contains(*s)) {
            return err(
                s.span(),
                f("failure_statuses"),
                format!("{bad} is not a 5xx status"),
            );
        }
        c.failure_statuses = s.into_inner();
    }
    if let Some(p) = raw.max_ejection_percent {
        if *p.get_ref() > 100 {
            return err(p.span(), f("max_ejection_percent"), "must be 0..=100");
        }
        c.max_ejection_percent = p.into_inner();
    }
    if let Some(b) = raw.breaker {
        let bc = &mut c.breaker;
        for (slot, v, k) in [
            (&mut bc.failures, b.failures, "breaker.failures"),
            (
                &mut bc.half_open_requests,
                b.half_open_requests,
                "breaker.half_open_requests",
            ),
            (&mut bc.successes, b.successes, "breaker.successes"),
        ] {
            if let Some(v) = v {
                if *v.get_ref() == 0 {
                    return err(v.span(), f(k), "must be at least 1");
                }
                *slot = v.into_inner();
            }
        }
        if let Some(d) = dur(b.open_timeout, || f("breaker.open_timeout"))? {
            bc.open_timeout = d;
        }
        if let Some(d) = dur(b.max_open_timeout, || f("breaker.max_open_timeout"))? {
            bc.max_open_timeout = d;
        }
        bc.max_open_timeout = bc.max_open_timeout.max(bc.open_timeout);
    }
    if let Some(h) = raw.health_check {
        let kind = HealthCheck::parse_kind(h.check.get_ref())
            .map_err(|m| (h.check.span(), f("health_check.check"), m))?;
        let mut hc = HealthCheck::new(kind);
        if let Some(d) = positive(h.interval, || f("health_check.interval"))? {
            hc.interval = d;
        }
        if let Some(d) = positive(h.timeout, || f("health_check.timeout"))? {
            hc.timeout = d;
        }
        for (slot, v, k) in [
            (&mut hc.rise, h.rise, "health_check.rise"),
            (&mut hc.fall, h.fall, "health_check.fall"),
        ] {
            if let Some(v) = v {
                if *v.get_ref() == 0 {
                    return err(v.span(), f(k), "must be at least 1");
                }
                *slot = v.into_inner();
            }
        }
        if let Some(e) = h.expect {
            let range = parse_status_range(e.get_ref())
                .map_err(|m| (e.span(), f("health_check.expect"), m))?;
            match &mut hc.kind {
                ProbeKind::Http { expect, .. } => *expect = range,
                ProbeKind::Tcp => {
                    return err(
                        e.span(),
                        f("health_check.expect"),
                        "only http checks have a status",
                    )
                }
            }
        }
        c.health = Some(hc);
    }
    Ok(c)
}

/// `200`, `2xx`, or `200-399`.
fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?}: use a status (200), a class (2xx) or a range (200-399)");
    let num = |t: &str| t.parse::<u16>().ok().filter(|n| (100..=599).contains(n));
    if let Some(c) = s.strip_suffix("xx") {
        let c = c
            .parse::<u16>()
            .ok()
            .filter(|c| (1..=5).contains(c))
            .ok_or_else(bad)?;
        return Ok((c * 100, c * 100 + 99));
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?);
        return if a <= b { Ok((a, b)) } else { Err(bad()) };
    }
    let n = num(s).ok_or_else(bad)?;
    Ok((n, n))
}

fn header_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers that frame or route the message: a route may not add or remove them.
fn framing_header(n: &str) -> bool {
    const FRAMING: [&str; 9] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "host",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-connection",
    ];
    FRAMING.iter().any(|f| n.eq_ignore_ascii_case(f))
}

fn header_value_ok(v: &str) -> bool {
    v.bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

/// The value and where it is written (the entry's span when absent).
fn spanned<T: Default>(v: S<T>, entry: &Range<usize>) -> (T, Range<usize>) {
    match v {
        Some(v) => {
            let span = v.span();
            (v.into_inner(), span)
        }
        None => (T::default(), entry.clone()),
    }
}

fn edits(
    add: S<HashMap<String, String>>,
    remove: S<Vec<String>>,
    entry: Range<usize>,
    field: impl Fn(&str) -> String,
) -> Result<HeaderEdits, EntryError> {
    let mut e = HeaderEdits::default();
    let (add, span) = spanned(add, &entry);
    let mut add: Vec<_> = add.into_iter().collect();
    add.sort();
    for (n, v) in add {
        if !header_name_ok(&n) || !header_value_ok(&v) {
            return err(
                span,
                field("add"),
                format!("{n:?}: {v:?} is not a valid header"),
            );
        }
        if framing_header(&n) {
            return err(
                span,
                field("add"),
                format!("{n:?} frames the message and cannot be set"),
            );
        }
        e.add.push((n, v));
    }
    let (remove, span) = spanned(remove, &entry);
    for n in remove {
        if !header_name_ok(&n) || framing_header(&n) {
            return err(
                span,
                field("remove"),
                format!("{n:?} is not a header name a route may remove"),
            );
        }
        e.remove.push(n.to_ascii_lowercase());
    }
    Ok(e)
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
        Some(r) => {
            let rspan = r.span();
            let r = r.into_inner();
            let rate = r
                .rate
                .get_ref()
                .parse()
                .map_err(|m| (r.rate.span(), f("rate_limit.rate"), m))?;
            let key = match r.key {
                None => RateKey::ClientIp,
                Some(k) => {
                    RateKey::parse(k.get_ref()).map_err(|m| (k.span(), f("rate_limit.key"), m))?
                }
            };
            let burst = r.burst.unwrap_or(0);
            let _ = rspan;
            Some(RateLimit { rate, burst, key })
        }
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
        Some(u) => {
            Some(super::parse_upgrades(u.get_ref()).map_err(|m| (u.span(), f("upgrades"), m))?)
        }
    };
    let expect = match raw.expect {
        None => None,
        Some(e) => {
            Some(super::ExpectMode::parse(e.get_ref()).map_err(|m| (e.span(), f("expect"), m))?)
        }
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
