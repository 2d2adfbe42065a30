//! Unit tests of the Prometheus exposition (`render.rs`): every family declared and every line
//! parsed back, label escapes round-tripped, histogram buckets cumulative. Test thread only.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::stats::{ShardMeta, ShardStats, BREAKER_OPEN};

const FAMILIES: [(&str, &str); 46] = [
    ("shardgate_route_requests_total", "counter"),
    ("shardgate_request_duration_seconds", "histogram"),
    ("shardgate_request_duration_quantile_seconds", "gauge"),
    ("shardgate_route_rate_limited_total", "counter"),
    ("shardgate_route_retries_total", "counter"),
    ("shardgate_route_retry_budget_exhausted_total", "counter"),
    ("shardgate_route_grpc_requests_total", "counter"),
    ("shardgate_route_upgrades_refused_total", "counter"),
    ("shardgate_upstream_requests_total", "counter"),
    ("shardgate_upstream_duration_seconds", "histogram"),
    ("shardgate_upstream_duration_quantile_seconds", "gauge"),
    ("shardgate_upstream_connections", "gauge"),
    ("shardgate_upstream_connects_total", "counter"),
    ("shardgate_upstream_reuses_total", "counter"),
    ("shardgate_upstream_tls_handshakes_total", "counter"),
    ("shardgate_upstream_tls_failures_total", "counter"),
    ("shardgate_upstream_pool_waits_total", "counter"),
    ("shardgate_upstream_pool_overflows_total", "counter"),
    ("shardgate_upstream_failures_total", "counter"),
    ("shardgate_upstream_new_connection_ratio", "gauge"),
    ("shardgate_upstream_breaker_state", "gauge"),
    ("shardgate_upstream_breaker_shards", "gauge"),
    ("shardgate_upstream_breaker_transitions_total", "counter"),
    ("shardgate_upstream_healthy", "gauge"),
    ("shardgate_upstream_http2_connections", "gauge"),
    ("shardgate_upstream_http2_streams", "gauge"),
    ("shardgate_upstream_http2_goaways_total", "counter"),
    ("shardgate_upstream_http2_refused_streams_total", "counter"),
    ("shardgate_shard_info", "gauge"),
    ("shardgate_downstream_connections", "gauge"),
    ("shardgate_shard_cpu_seconds_total", "counter"),
    ("shardgate_downstream_accepted_total", "counter"),
    ("shardgate_downstream_requests_total", "counter"),
    ("shardgate_downstream_protocol_connections", "gauge"),
    ("shardgate_downstream_http2_goaways_total", "counter"),
    ("shardgate_downstream_http2_streams", "gauge"),
    ("shardgate_kits_allocated_total", "counter"),
    ("shardgate_requests_in_flight", "gauge"),
    ("shardgate_shard_draining", "gauge"),
    ("shardgate_drain_connections_left", "gauge"),
    ("shardgate_drain_requests_left", "gauge"),
    ("shardgate_access_log_dropped_buffers_total", "counter"),
    ("shardgate_tls_handshakes_total", "counter"),
    ("shardgate_tls_handshake_duration_seconds", "histogram"),
    ("shardgate_tls_handshakes_resumed_total", "counter"),
    ("shardgate_tls_ticket_key_generation", "gauge"),
];

/// One parsed sample line: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);
/// A series' labels without `le`, and its `(le, count)` buckets.
type Buckets = BTreeMap<Vec<(String, String)>, Vec<(String, f64)>>;

/// Parses `name{a="x",b="y"} value`, undoing the label escapes; panics on anything else.
fn parse(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("name");
    let name = &line[..name_end];
    assert!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{line}"
    );
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            let eq = rest.find("=\"").expect("label=");
            let label = rest[..eq].to_string();
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let end = loop {
                match chars.next().expect("unterminated label value") {
                    (_, '\\') => match chars.next().expect("escape").1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => panic!("bad escape \\{c} in {line}"),
                    },
                    (i, '"') => break eq + 2 + i + 1,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(label, value);
            rest = &rest[end..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else {
                rest = rest.strip_prefix('}').expect("closing brace");
                break;
            }
        }
    }
    let value = rest.strip_prefix(' ').expect("space before value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    (name.to_string(), labels, value)
}

fn meta(id: usize) -> ShardMeta {
    ShardMeta {
        id,
        core: None,
        driver: "epoll",
        draining: id == 1,
        connections: 3,
        requests: 1,
    }
}

fn two_shards() -> Vec<Snapshot> {
    let hostile = "we\"ird\\route\nname";
    let (a, b) = (ShardStats::new(), ShardStats::new());
    for (i, ms) in [1u64, 2, 7, 30, 400, 2_000, 20_000].into_iter().enumerate() {
        let s = if i % 2 == 0 { &a } else { &b };
        s.route(hostile).record(200, Duration::from_millis(ms));
        s.endpoint("web", "127.0.0.1:8080")
            .record(503, Duration::from_millis(ms));
    }
    a.route("empty");
    a.endpoint("web", "127.0.0.1:8080").connects.set(2);
    b.endpoint("web", "127.0.0.1:8080")
        .set_breaker(BREAKER_OPEN);
    b.endpoint("idle", "[::1]:80");
    vec![a.snapshot(meta(0)), b.snapshot(meta(1))]
}

fn rendered() -> String {
    let mut out = String::new();
    render(&two_shards(), &mut out);
    out
}

#[test]
fn every_family_has_help_and_type_and_every_line_parses() {
    let out = rendered();
    let mut declared = BTreeMap::new();
    let mut samples = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("help text");
            assert!(!help.is_empty());
            declared
                .entry(name.to_string())
                .or_insert((false, String::new()))
                .0 = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type");
            declared
                .entry(name.to_string())
                .or_insert((false, String::new()))
                .1 = kind.into();
        } else {
            samples.push(parse(line));
        }
    }
    for (name, kind) in FAMILIES.iter().filter(|(n, _)| !n.is_empty()) {
        assert_eq!(
            declared.get(*name),
            Some(&(true, kind.to_string())),
            "{name}"
        );
    }
    assert_eq!(
        declared.len(),
        FAMILIES.iter().filter(|(n, _)| !n.is_empty()).count()
    );
    for (name, _, _) in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| declared.get(*f).is_some_and(|d| d.1 == "histogram"))
            })
            .unwrap_or(name);
        assert!(declared.contains_key(family), "sample {name} has no family");
    }
    let route = |s: &&Sample| s.1.get("route").map(String::as_str) == Some("we\"ird\\route\nname");
    let ok = samples
        .iter()
        .filter(route)
        .find(|s| s.0 == "shardgate_route_requests_total" && s.1["class"] == "2xx")
        .expect("hostile route label round-trips");
    assert_eq!(ok.2, 7.0);
    let healthy = samples
        .iter()
        .find(|s| s.0 == "shardgate_upstream_healthy")
        .unwrap();
    assert_eq!(healthy.2, 1.0);
    let state = samples
        .iter()
        .find(|s| s.0 == "shardgate_upstream_breaker_state" && s.1["cluster"] == "web")
        .unwrap();
    assert_eq!(state.2, 1.0);
    let ratio = samples
        .iter()
        .find(|s| s.0 == "shardgate_upstream_new_connection_ratio" && s.1["cluster"] == "web")
        .unwrap();
    assert!((ratio.2 - 2.0 / 7.0).abs() < 1e-9);
    let draining: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 == "shardgate_shard_draining")
        .map(|s| s.2)
        .collect();
    assert_eq!(draining, [0.0, 1.0]);
}

#[test]
fn histogram_buckets_are_cumulative_and_end_with_count() {
    let out = rendered();
    let samples: Vec<Sample> = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(parse)
        .collect();
    for family in [
        "shardgate_request_duration_seconds",
        "shardgate_upstream_duration_seconds",
    ] {
        let bucket = format!("{family}_bucket");
        let mut series = Buckets::new();
        for (name, labels, v) in samples.iter().filter(|s| s.0 == bucket) {
            let mut key: Vec<_> = labels.clone().into_iter().collect();
            key.retain(|(k, _)| k != "le");
            series
                .entry(key)
                .or_default()
                .push((labels["le"].clone(), *v));
            assert_eq!(name, &bucket);
        }
        assert!(!series.is_empty());
        for (key, buckets) in series {
            let les: Vec<f64> = buckets
                .iter()
                .map(|(le, _)| parse(&format!("x {le}")).2)
                .collect();
            assert!(les.windows(2).all(|w| w[0] < w[1]), "le ascending: {les:?}");
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "cumulative: {buckets:?}"
            );
            let (last_le, last) = buckets.last().unwrap();
            assert_eq!(last_le, "+Inf");
            let count = samples
                .iter()
                .find(|s| {
                    s.0 == format!("{family}_count")
                        && s.1.clone().into_iter().collect::<Vec<_>>() == key
                })
                .expect("count");
            assert_eq!(count.2, *last, "{key:?}");
        }
    }
    // The request latencies 1 ms..20 s: 1 ms ≤ 0.001, 2 ms ≤ 0.0025, ..., 20 s only in +Inf.
    let at = |le: &str| {
        samples
            .iter()
            .find(|s| {
                s.0 == "shardgate_request_duration_seconds_bucket"
                    && s.1["le"] == le
                    && s.1["route"] != "empty"
            })
            .unwrap()
            .2
    };
    assert_eq!(at("0.0005"), 0.0);
    assert_eq!(at("0.001"), 1.0);
    assert_eq!(at("0.0025"), 2.0);
    assert_eq!(at("0.5"), 5.0);
    assert_eq!(at("10"), 6.0);
    assert_eq!(at("+Inf"), 7.0);
    let p50 = samples
        .iter()
        .find(|s| {
            s.0 == "shardgate_request_duration_quantile_seconds"
                && s.1["quantile"] == "0.5"
                && s.1["route"] != "empty"
        })
        .unwrap();
    assert!((p50.2 - 0.030).abs() < 0.0001, "{}", p50.2);
    let sum = samples
        .iter()
        .find(|s| s.0 == "shardgate_request_duration_seconds_sum" && s.1["route"] != "empty")
        .unwrap();
    assert!((sum.2 - 22.44).abs() < 0.03, "{}", sum.2);
}
