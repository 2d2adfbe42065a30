//! The `[[clusters]]` entries of the config file: raw spanned tables (with `breaker`,
//! `health_check` and `tls`) checked into a `Cluster`; errors name the entry (`clusters[1].lb`)
//! and the line. Main thread.

use serde::Deserialize;
use toml::Spanned;

use super::entry::{dur, err, positive, EntryError, S};
use std::path::PathBuf;

use crate::config::{
    parse_endpoint, CertPaths, Cluster, HealthCheck, ProbeKind, UpstreamProtocol, UpstreamTls,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    name: Spanned<String>,
    endpoints: Spanned<Vec<Spanned<String>>>,
    lb: S<String>,
    max_connections: Option<usize>,
    max_pending: S<usize>,
    resolve_interval: S<String>,
    min_ttl: S<String>,
    max_stale: S<String>,
    failure_statuses: S<Vec<u16>>,
    max_ejection_percent: S<u8>,
    breaker: Option<RawBreaker>,
    health_check: Option<RawHealth>,
    tls: S<RawUpstreamTls>,
    protocol: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreamTls {
    ca: S<String>,
    sni: S<String>,
    verify: S<bool>,
    cert: S<String>,
    key: S<String>,
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

/// Where each file the entry names is written, as (sub-field under `clusters[i]`, span).
pub type FileSpans = Vec<(String, std::ops::Range<usize>)>;

pub fn cluster(i: usize, raw: RawCluster) -> Result<(Cluster, FileSpans), EntryError> {
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
    let mut written = Vec::new();
    for e in raw.endpoints.get_ref() {
        written.push(parse_endpoint(e.get_ref()).map_err(|m| (e.span(), f("endpoints"), m))?);
    }
    if written.is_empty() {
        return err(
            raw.endpoints.span(),
            f("endpoints"),
            "at least one endpoint is required",
        );
    }
    let mut c = Cluster::written(&name, written);
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
    let min_span = raw.min_ttl.as_ref().map(|m| m.span());
    if let Some(d) = positive(raw.min_ttl, || f("min_ttl"))? {
        c.min_ttl = d;
    }
    if c.min_ttl > c.resolve_interval {
        let span = min_span.unwrap_or(raw.name.span());
        return err(
            span,
            f("min_ttl"),
            format!(
                "{}ms is longer than resolve_interval ({}ms): TTLs are clamped to [min_ttl, resolve_interval]",
                c.min_ttl.as_millis(),
                c.resolve_interval.as_millis()
            ),
        );
    }
    c.max_stale = positive(raw.max_stale, || f("max_stale"))?;
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
                ProbeKind::Tcp | ProbeKind::Grpc { .. } => {
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
    let mut spans = FileSpans::new();
    if let Some(t) = raw.tls {
        c.tls = Some(tls(i, t, &mut spans)?);
    }
    if let Some(p) = raw.protocol {
        c.protocol = protocol(&p, c.tls.is_some()).map_err(|m| (p.span(), f("protocol"), m))?;
    }
    Ok((c, spans))
}

/// The `protocol` key, checked against the cluster's `tls` (see `UpstreamProtocol::check`).
fn protocol(p: &Spanned<String>, tls: bool) -> Result<UpstreamProtocol, String> {
    let v: UpstreamProtocol = p.get_ref().parse()?;
    v.check(tls).map(|()| v)
}

/// The `tls` table: files must not be empty, `cert` and `key` come together, `sni` must be a name
/// a certificate can be checked for, and `verify = false` takes no `ca`.
fn tls(
    i: usize,
    raw: Spanned<RawUpstreamTls>,
    spans: &mut FileSpans,
) -> Result<UpstreamTls, EntryError> {
    let f = |k: &str| format!("clusters[{i}].tls.{k}");
    let span = raw.span();
    let raw = raw.into_inner();
    let path = |v: S<String>, k: &str, spans: &mut FileSpans| match v {
        None => Ok(None),
        Some(p) if p.get_ref().is_empty() => err(p.span(), f(k), "empty path"),
        Some(p) => {
            spans.push((format!("tls.{k}"), p.span()));
            Ok(Some(PathBuf::from(p.into_inner())))
        }
    };
    let ca = path(raw.ca, "ca", spans)?;
    let cert = path(raw.cert, "cert", spans)?;
    let key = path(raw.key, "key", spans)?;
    let client = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(CertPaths { cert, key }),
        (Some(_), None) => return err(span, f("key"), "cert needs its key"),
        (None, Some(_)) => return err(span, f("cert"), "key needs its cert"),
    };
    let mut t = UpstreamTls::new(ca);
    t.client = client;
    if let Some(v) = raw.verify {
        if !*v.get_ref() && t.ca.is_some() {
            return err(
                v.span(),
                f("verify"),
                "verify = false checks no certificate: remove ca or verify",
            );
        }
        t.verify = v.into_inner();
    }
    if let Some(sni) = raw.sni {
        crate::tls::server_name(Some(sni.get_ref()), "").map_err(|m| (sni.span(), f("sni"), m))?;
        t.sni = Some(sni.into_inner());
    }
    Ok(t)
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
