//! The catalogue of what `/metrics` publishes: one row per family (name, type, help, and how its
//! value comes out of one subject: a route, an endpoint or a shard). `render.rs` writes the rows;
//! adding a metric means adding a row here and the counter it reads in `stats.rs`.

use hdrhistogram::Histogram;

use crate::error::TlsFailure;
use crate::http::h2_reason;

use super::{EndpointCounts, RouteCounts, ShardGauges, BREAKER_STATES, CLASSES, GRPC_CODES};

/// Breaker transitions are counted by the state entered (`OPENED`, `HALF_OPENED`, `CLOSED`).
const ENTERED: [&str; 3] = ["open", "half_open", "closed"];

/// How one family's samples come out of one subject.
pub(super) enum Value<T> {
    Int(fn(&T) -> u64),
    Float(fn(&T) -> f64),
    /// One sample per value of an extra label, by the value's index, for the values counted
    /// at least once (a label with many values most subjects never see).
    Sparse(&'static str, &'static [&'static str], fn(&T, usize) -> u64),
    /// One sample per value of an extra label, by the value's index.
    Split(&'static str, &'static [&'static str], fn(&T, usize) -> u64),
    Histogram(fn(&T) -> &Histogram<u64>),
    /// One histogram per value of an extra label, by the value's index.
    Histograms(
        &'static str,
        &'static [&'static str],
        fn(&T, usize) -> &Histogram<u64>,
    ),
    Quantiles(fn(&T) -> &Histogram<u64>),
}

pub(super) struct Family<T> {
    pub name: &'static str,
    pub kind: &'static str,
    /// A constant with no backslash or newline, so it needs no escaping.
    pub help: &'static str,
    pub value: Value<T>,
}

pub(super) fn route_families() -> Vec<Family<RouteCounts>> {
    vec![
        counter(
            "shardgate_route_requests_total",
            "Responses sent downstream, by route and status class.",
            Value::Split("class", &CLASSES, |c, i| c.requests[i]),
        ),
        histogram(
            "shardgate_request_duration_seconds",
            "Time from request head to last response byte, by route.",
            |c| &c.latency,
        ),
        quantiles(
            "shardgate_request_duration_quantile_seconds",
            "Request latency quantiles since start, by route (NaN before the first request).",
            |c| &c.latency,
        ),
        counter(
            "shardgate_route_rate_limited_total",
            "Requests answered 429 by the rate limiter, by route.",
            Value::Int(|c| c.rate_limited),
        ),
        counter(
            "shardgate_route_retries_total",
            "Requests retried upstream, by route.",
            Value::Int(|c| c.retries),
        ),
        counter(
            "shardgate_route_retry_budget_exhausted_total",
            "Retries refused because the retry budget was spent, by route.",
            Value::Int(|c| c.budget_exhausted),
        ),
        counter(
            "shardgate_route_grpc_requests_total",
            "gRPC calls answered, by route and grpc-status (the upstream's, or the proxy's own \
             for an error it generated); codes never seen are left out.",
            Value::Sparse("grpc_status", &GRPC_CODES, |c, i| c.grpc[i]),
        ),
        counter(
            "shardgate_route_upgrades_refused_total",
            "HTTP/1.1 upgrades (WebSocket) answered 501 because the route's cluster speaks \
             HTTP/2, by route.",
            Value::Int(|c| c.upgrades_refused),
        ),
    ]
}

pub(super) fn endpoint_families() -> Vec<Family<EndpointCounts>> {
    let mut families: Vec<Family<EndpointCounts>> = vec![
        counter(
            "shardgate_upstream_requests_total",
            "Responses received from upstream, by endpoint and status class.",
            Value::Split("class", &CLASSES, |c, i| c.requests[i]),
        ),
        histogram(
            "shardgate_upstream_duration_seconds",
            "Time from request head written upstream to response head read, by endpoint.",
            |c| &c.upstream_latency,
        ),
        quantiles(
            "shardgate_upstream_duration_quantile_seconds",
            "Upstream latency quantiles since start, by endpoint (NaN before the first response).",
            |c| &c.upstream_latency,
        ),
        gauge(
            "shardgate_upstream_connections",
            "Upstream connections now, busy or idle in the pool, summed over shards.",
            Value::Split("state", &["busy", "idle"], |c, i| [c.busy, c.idle][i]),
        ),
        counter(
            "shardgate_upstream_connects_total",
            "New upstream connections opened, by endpoint.",
            Value::Int(|c| c.connects),
        ),
        counter(
            "shardgate_upstream_reuses_total",
            "Requests sent on a reused keep-alive upstream connection, by endpoint.",
            Value::Int(|c| c.reuses),
        ),
        counter(
            "shardgate_upstream_tls_handshakes_total",
            "TLS handshakes completed with the endpoint (new connections only; a reused one \
             makes none), by endpoint.",
            Value::Int(|c| c.tls_handshakes),
        ),
        counter(
            "shardgate_upstream_tls_failures_total",
            "TLS handshakes with the endpoint that failed, by endpoint and reason (a rejected \
             certificate, the upstream's alert, a timeout).",
            Value::Split("reason", &TlsFailure::NAMES, |c, i| c.tls_failures[i]),
        ),
        gauge(
            "shardgate_upstream_new_connection_ratio",
            "New upstream connections per upstream response since start, by endpoint \
             (0 is perfect reuse; NaN before the first response).",
            Value::Float(|c| match c.total_requests() {
                0 => f64::NAN,
                n => c.connects as f64 / n as f64,
            }),
        ),
        counter(
            "shardgate_upstream_pool_waits_total",
            "Requests that waited for a pooled connection, by endpoint.",
            Value::Int(|c| c.pool_waits),
        ),
        counter(
            "shardgate_upstream_pool_overflows_total",
            "Requests past the pool limit, by endpoint.",
            Value::Int(|c| c.pool_overflows),
        ),
        counter(
            "shardgate_upstream_failures_total",
            "Upstream connect, read and write failures and timeouts, by endpoint.",
            Value::Int(|c| c.failures),
        ),
        gauge(
            "shardgate_upstream_breaker_state",
            "Worst circuit-breaker state over shards: 0 closed, 1 open, 2 half-open.",
            Value::Int(|c| u64::from(c.breaker_state())),
        ),
        gauge(
            "shardgate_upstream_breaker_shards",
            "Shards whose circuit breaker for the endpoint is in each state.",
            Value::Split("state", &BREAKER_STATES, |c, i| c.breaker_shards[i]),
        ),
        counter(
            "shardgate_upstream_breaker_transitions_total",
            "Circuit-breaker transitions, by endpoint and the state entered.",
            Value::Split("to", &ENTERED, |c, i| c.breaker_transitions[i]),
        ),
        gauge(
            "shardgate_upstream_healthy",
            "1 when the endpoint is healthy on every shard, else 0.",
            Value::Int(|c| u64::from(c.healthy())),
        ),
    ];
    families.extend(upstream_h2_families());
    families
}

/// The upstream HTTP/2 figures (stats/upstream_h2.rs; 0 for an HTTP/1.1 endpoint).
fn upstream_h2_families() -> [Family<EndpointCounts>; 4] {
    [
        gauge(
            "shardgate_upstream_http2_connections",
            "HTTP/2 connections open to the endpoint now (draining ones included), summed over \
             shards.",
            Value::Int(|c| c.h2.connections),
        ),
        gauge(
            "shardgate_upstream_http2_streams",
            "HTTP/2 streams in flight to the endpoint now, summed over shards.",
            Value::Int(|c| c.h2.streams),
        ),
        counter(
            "shardgate_upstream_http2_goaways_total",
            "HTTP/2 connections to the endpoint on which it sent a GOAWAY, by endpoint.",
            Value::Int(|c| c.h2.goaways),
        ),
        counter(
            "shardgate_upstream_http2_refused_streams_total",
            "HTTP/2 streams the endpoint did not process (REFUSED_STREAM, or above a GOAWAY's \
             last stream id; sent again when the request allows), by endpoint.",
            Value::Int(|c| c.h2.refused),
        ),
    ]
}

pub(super) fn shard_families() -> Vec<Family<ShardGauges>> {
    vec![
        gauge(
            "shardgate_downstream_connections",
            "Downstream connections now, by shard: active (a request in progress), idle (waiting \
             for a request, buffers in hand), asleep (idle past idle_buffer_time, no buffers) or \
             tunnel (after a 101: a WebSocket).",
            Value::Split("state", &["active", "idle", "asleep", "tunnel"], |s, i| {
                [
                    s.downstream_active,
                    s.downstream_idle,
                    s.downstream_asleep,
                    s.downstream_tunnel,
                ][i]
            }),
        ),
        counter(
            "shardgate_downstream_accepted_total",
            "Downstream connections accepted, by shard.",
            Value::Int(|s| s.accepted),
        ),
        counter(
            "shardgate_downstream_requests_total",
            "Requests received, by shard and protocol (one per HTTP/1.x request, one per HTTP/2 \
             stream; refused heads included).",
            Value::Split("protocol", &["HTTP/1.1", "HTTP/2"], |s, i| {
                s.requests_by_protocol[i]
            }),
        ),
        gauge(
            "shardgate_downstream_protocol_connections",
            "Downstream connections now, by shard and protocol (HTTP/1.1 includes connections \
             that have not sent a byte yet).",
            Value::Split("protocol", &["HTTP/1.1", "HTTP/2"], |s, i| {
                [
                    s.connections.saturating_sub(s.h2_connections),
                    s.h2_connections,
                ][i]
            }),
        ),
        counter(
            "shardgate_downstream_http2_goaways_total",
            "GOAWAY frames sent to HTTP/2 clients by error code, by shard: no_error for a \
             graceful close (drain, max_requests, max_age, idle), enhance_your_calm for floods \
             and rapid reset, protocol_error, compression_error, … for broken frames.",
            Value::Split("reason", &h2_reason::NAMES, |s, i| s.h2_goaways[i]),
        ),
        gauge(
            "shardgate_downstream_http2_streams",
            "HTTP/2 streams being served now, by shard.",
            Value::Int(|s| s.h2_streams),
        ),
        counter(
            "shardgate_kits_allocated_total",
            "Connection kits (a client and an upstream read buffer) allocated because the \
             shard's pool had none free, by shard: growth under a steady load means more \
             requests are in flight than the pool keeps.",
            Value::Int(|s| s.kits_allocated),
        ),
        gauge(
            "shardgate_requests_in_flight",
            "Requests in progress, by shard.",
            Value::Int(|s| s.in_flight),
        ),
        counter(
            "shardgate_shard_cpu_seconds_total",
            "CPU time (user plus system) of the shard's thread.",
            Value::Float(|s| s.cpu_seconds),
        ),
        gauge(
            "shardgate_shard_draining",
            "1 while the shard is draining, else 0.",
            Value::Int(|s| u64::from(s.draining)),
        ),
        gauge(
            "shardgate_drain_connections_left",
            "Downstream connections still open, by shard (what a drain waits for).",
            Value::Int(|s| s.connections),
        ),
        gauge(
            "shardgate_drain_requests_left",
            "Requests still in progress, by shard (what a drain waits for).",
            Value::Int(|s| s.requests),
        ),
        counter(
            "shardgate_access_log_dropped_buffers_total",
            "Access-log buffers dropped because the log writer fell behind, by shard.",
            Value::Int(|s| s.log_dropped),
        ),
        gauge(
            "shardgate_tls_ticket_key_generation",
            "Generation of the session-ticket keys the shard holds (1 at start, one more at \
             each rotation; equal on every shard once a rotation has been applied).",
            Value::Int(|s| s.tls_ticket_generation),
        ),
    ]
}

pub(super) fn counter<T>(name: &'static str, help: &'static str, value: Value<T>) -> Family<T> {
    Family {
        name,
        kind: "counter",
        help,
        value,
    }
}

fn gauge<T>(name: &'static str, help: &'static str, value: Value<T>) -> Family<T> {
    Family {
        name,
        kind: "gauge",
        help,
        value,
    }
}

fn histogram<T>(name: &'static str, help: &'static str, h: fn(&T) -> &Histogram<u64>) -> Family<T> {
    Family {
        name,
        kind: "histogram",
        help,
        value: Value::Histogram(h),
    }
}

/// A histogram per value of `label` (`values`, by index).
pub(super) fn histograms<T>(
    name: &'static str,
    help: &'static str,
    label: &'static str,
    values: &'static [&'static str],
    h: fn(&T, usize) -> &Histogram<u64>,
) -> Family<T> {
    Family {
        name,
        kind: "histogram",
        help,
        value: Value::Histograms(label, values, h),
    }
}

/// Quantiles are gauges rather than a summary: the histogram family already has `_sum`/`_count`.
fn quantiles<T>(name: &'static str, help: &'static str, h: fn(&T) -> &Histogram<u64>) -> Family<T> {
    Family {
        name,
        kind: "gauge",
        help,
        value: Value::Quantiles(h),
    }
}
