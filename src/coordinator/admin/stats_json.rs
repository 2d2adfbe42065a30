//! `GET /stats.json`: the merged statistics snapshot `/metrics` is rendered from, as one JSON
//! document for the status page and for scripts. Coordinator thread only; the shape is documented
//! in docs/CONTRACT.md ("/stats.json") and only grows (fields are added, never renamed).
//!
//! Counters are totals since start (a reader takes rates from two polls); latencies are quantiles
//! of the whole run in milliseconds, `null` while nothing was recorded; a shard that did not
//! answer the scrape in time has `"reported": false` and `null` for what only it could tell.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::status::ProcessStatus;
use crate::coordinator::state::ShardInfo;
use crate::stats::{Snapshot, BREAKER_STATES, CLASSES};

/// Version of the document's shape (`"schema"`), raised only if a field changes meaning.
pub const SCHEMA: u32 = 1;

/// Everything the document is made of.
pub(in crate::coordinator) struct Inputs<'a> {
    pub(in crate::coordinator) process: &'a ProcessStatus,
    pub(in crate::coordinator) draining: bool,
    pub(in crate::coordinator) shards: &'a [ShardInfo],
    /// One snapshot per shard that answered the scrape.
    pub(in crate::coordinator) snapshots: &'a [Snapshot],
}

/// The `/stats.json` document.
pub(in crate::coordinator) fn render(i: &Inputs<'_>) -> String {
    let mut o = String::with_capacity(8 * 1024);
    let p = i.process;
    let ready = i.shards.iter().filter(|s| s.ready).count();
    let _ = write!(
        o,
        "{{\"schema\":{SCHEMA},\"process\":{{\"version\":{},\"uptime_seconds\":{},\"config_version\":{},\"last_reload\":",
        string(env!("CARGO_PKG_VERSION")),
        num(p.started.elapsed().as_secs_f64()),
        p.config_version,
    );
    match &p.last_reload {
        None => o.push_str("null"),
        Some(r) => {
            let error = r.error.as_deref().map_or("null".into(), string);
            let ok = r.error.is_none();
            let _ = write!(
                o,
                "{{\"at_unix\":{},\"ok\":{ok},\"error\":{error}}}",
                num(r.at_unix)
            );
        }
    }
    let _ = write!(
        o,
        ",\"draining\":{},\"shards\":{},\"shards_ready\":{ready}}}",
        i.draining,
        i.shards.len()
    );
    shards(&mut o, i);
    let merged = Snapshot::merged(i.snapshots);
    clusters(&mut o, &merged);
    routes(&mut o, &merged);
    o.push_str("}\n");
    o
}

fn shards(o: &mut String, i: &Inputs<'_>) {
    o.push_str(",\"shards\":[");
    for (id, s) in i.shards.iter().enumerate() {
        let snap = i
            .snapshots
            .iter()
            .find(|x| x.shards.first().is_some_and(|g| g.id == id));
        let g = snap.and_then(|x| x.shards.first());
        let total: Option<u64> = snap.map(|x| {
            x.routes
                .values()
                .map(|r| r.requests.iter().sum::<u64>())
                .sum()
        });
        let opt = |v: Option<u64>| v.map_or("null".into(), |v| v.to_string());
        let driver = s.driver.map(|d| d.name()).or(g.map(|g| g.driver));
        let _ = write!(
            o,
            "{}{{\"id\":{id},\"core\":{},\"driver\":{},\"ready\":{},\"reported\":{},\"draining\":{},\
             \"connections\":{{\"open\":{},\"active\":{},\"idle\":{},\"asleep\":{},\"tunnel\":{}}},\
             \"accepted\":{},\"requests_in_flight\":{},\"requests_total\":{},\"cpu_seconds\":{},\"log_dropped\":{}}}",
            if id == 0 { "" } else { "," },
            opt(s.core.or(g.and_then(|g| g.core)).map(|c| c as u64)),
            driver.map_or("null".into(), string),
            s.ready,
            g.is_some(),
            g.is_some_and(|g| g.draining) || i.draining,
            s.connections,
            opt(g.map(|g| g.downstream_active)),
            opt(g.map(|g| g.downstream_idle)),
            opt(g.map(|g| g.downstream_asleep)),
            opt(g.map(|g| g.downstream_tunnel)),
            opt(g.map(|g| g.accepted)),
            g.map_or(s.requests as u64, |g| g.in_flight),
            opt(total),
            g.map_or("null".into(), |g| num(g.cpu_seconds)),
            opt(g.map(|g| g.log_dropped)),
        );
    }
    o.push(']');
}

fn clusters(o: &mut String, m: &Snapshot) {
    o.push_str(",\"clusters\":[");
    let mut current: Option<&str> = None;
    for ((cluster, ep), e) in &m.endpoints {
        if current != Some(cluster.as_str()) {
            if current.is_some() {
                o.push_str("]},");
            }
            let _ = write!(o, "{{\"name\":{},\"endpoints\":[", string(cluster));
            current = Some(cluster);
        } else {
            o.push(',');
        }
        let b = e.breaker_shards;
        let _ = write!(
            o,
            "{{\"name\":{},\"healthy\":{},\"healthy_shards\":{},\"shards\":{},\"breaker\":{},\
             \"breaker_shards\":{{\"closed\":{},\"open\":{},\"half_open\":{}}},\"requests\":",
            string(ep),
            e.healthy(),
            e.healthy_shards,
            e.shards,
            string(BREAKER_STATES[usize::from(e.breaker_state())]),
            b[0],
            b[1],
            b[2],
        );
        classes(o, &e.requests);
        let _ = write!(
            o,
            ",\"requests_total\":{},\"failures\":{},\"latency_ms\":",
            e.total_requests(),
            e.failures
        );
        quantiles(o, &e.upstream_latency, &[("p50", 0.5), ("p99", 0.99)]);
        let _ = write!(
            o,
            ",\"pool\":{{\"busy\":{},\"idle\":{},\"waits\":{},\"overflows\":{}}},\"connects\":{},\"reuses\":{}}}",
            e.busy, e.idle, e.pool_waits, e.pool_overflows, e.connects, e.reuses
        );
    }
    if current.is_some() {
        o.push_str("]}");
    }
    o.push(']');
}

fn routes(o: &mut String, m: &Snapshot) {
    o.push_str(",\"routes\":[");
    for (n, (name, r)) in m.routes.iter().enumerate() {
        let _ = write!(
            o,
            "{}{{\"name\":{},\"requests\":",
            if n == 0 { "" } else { "," },
            string(name)
        );
        classes(o, &r.requests);
        let _ = write!(
            o,
            ",\"requests_total\":{},\"rate_limited\":{},\"retries\":{},\"retry_budget_exhausted\":{},\"latency_ms\":",
            r.requests.iter().sum::<u64>(),
            r.rate_limited,
            r.retries,
            r.budget_exhausted
        );
        quantiles(o, &r.latency, &[("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]);
        o.push('}');
    }
    o.push(']');
}

/// `{"1xx":n,…,"5xx":n}`.
fn classes(o: &mut String, counts: &[u64; 5]) {
    o.push('{');
    for (n, (class, count)) in CLASSES.iter().zip(counts).enumerate() {
        let _ = write!(o, "{}\"{class}\":{count}", if n == 0 { "" } else { "," });
    }
    o.push('}');
}

/// `{"p50":ms,…}` with `null` values while the histogram is empty.
fn quantiles(o: &mut String, h: &Histogram<u64>, qs: &[(&str, f64)]) {
    o.push('{');
    for (n, (name, q)) in qs.iter().enumerate() {
        let v = match h.is_empty() {
            true => "null".into(),
            false => num(h.value_at_quantile(*q) as f64 / 1e3),
        };
        let _ = write!(o, "{}\"{name}\":{v}", if n == 0 { "" } else { "," });
    }
    o.push('}');
}

/// A JSON number (finite; anything else is `null`), at most microsecond precision.
fn num(v: f64) -> String {
    if v.is_finite() {
        let r = (v * 1e6).round() / 1e6;
        format!("{r}")
    } else {
        "null".into()
    }
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::{ShardMeta, ShardStats, BREAKER_OPEN};

    fn meta(id: usize) -> ShardMeta {
        ShardMeta {
            id,
            core: Some(id),
            driver: "epoll",
            draining: false,
            connections: 1,
            requests: 0,
        }
    }

    #[test]
    fn document_parses_and_merges_shards() {
        let (a, b) = (ShardStats::new(), ShardStats::new());
        a.route("api\"x").record(200, Duration::from_millis(2));
        b.route("api\"x").record(503, Duration::from_millis(40));
        a.endpoint("web", "10.0.0.1:80")
            .record(200, Duration::from_millis(1));
        b.endpoint("web", "10.0.0.1:80").set_breaker(BREAKER_OPEN);
        b.endpoint("web", "10.0.0.2:80");
        b.endpoint("api", "10.0.0.3:80");
        let snaps = [a.snapshot(meta(0)), b.snapshot(meta(1))];
        let mut process = ProcessStatus::default();
        process.note_reload(&Err("x.toml:1:1: \"bad\"\n".into()));
        let shards = vec![ShardInfo::default(); 3];
        let text = render(&Inputs {
            process: &process,
            draining: false,
            shards: &shards,
            snapshots: &snaps,
        });
        let v: serde_json::Value = serde_json::from_str(&text).expect(&text);
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["process"]["last_reload"]["ok"], false);
        assert_eq!(
            v["process"]["last_reload"]["error"],
            "x.toml:1:1: \"bad\"\n"
        );
        assert_eq!(v["shards"].as_array().unwrap().len(), 3);
        assert_eq!(v["shards"][1]["requests_total"], 1);
        assert_eq!(v["shards"][2]["reported"], false);
        assert!(v["shards"][2]["cpu_seconds"].is_null());
        let clusters = v["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[0]["name"], "api");
        let web = &clusters[1]["endpoints"];
        assert_eq!(web.as_array().unwrap().len(), 2);
        assert_eq!(web[0]["breaker"], "open");
        assert_eq!(web[0]["breaker_shards"]["open"], 1);
        assert_eq!(web[0]["requests"]["2xx"], 1);
        assert!(web[1]["latency_ms"]["p99"].is_null());
        let route = &v["routes"][0];
        assert_eq!(route["name"], "api\"x");
        assert_eq!(route["requests_total"], 2);
        assert_eq!(route["requests"]["5xx"], 1);
        let (p50, p99) = (
            route["latency_ms"]["p50"].as_f64(),
            route["latency_ms"]["p99"].as_f64(),
        );
        assert!(p50.unwrap() >= 1.9 && p99.unwrap() >= 39.9, "{route}");
    }

    #[test]
    fn empty_process_is_valid_json() {
        let process = ProcessStatus::default();
        let text = render(&Inputs {
            process: &process,
            draining: true,
            shards: &[],
            snapshots: &[],
        });
        let v: serde_json::Value = serde_json::from_str(&text).expect(&text);
        assert_eq!(v["process"]["draining"], true);
        assert!(v["process"]["last_reload"].is_null());
        assert_eq!(v["clusters"], serde_json::json!([]));
    }
}
