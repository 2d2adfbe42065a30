//! W3C Trace Context through the proxy: a valid `traceparent` reaches the upstream with the same
//! trace id and flags under a new parent (span) id, `tracestate` passes unchanged, an invalid
//! `traceparent` is dropped (and with `--trace` replaced by a new trace), none is added without
//! `--trace`, one is started with it, and the access log carries the trace id.

mod support;

use std::collections::BTreeSet;

use support::admin::{temp_path, wait_log_lines};
use support::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// A parsed version-00 `traceparent` as the upstream received it.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Tp {
    trace: String,
    parent: String,
    flags: String,
}

/// Parses a version-00 value strictly (lower-case hex, exact lengths, ids not all zero).
fn parse_tp(v: &str) -> Result<Tp, String> {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match parts[..] {
        ["00", trace, parent, flags]
            if trace.len() == 32
                && parent.len() == 16
                && flags.len() == 2
                && hex(trace)
                && hex(parent)
                && hex(flags)
                && trace.bytes().any(|b| b != b'0')
                && parent.bytes().any(|b| b != b'0') =>
        {
            Ok(Tp {
                trace: trace.into(),
                parent: parent.into(),
                flags: flags.into(),
            })
        }
        _ => Err(format!("not a valid version-00 traceparent: {v:?}")),
    }
}

/// The one `traceparent` the upstream got with request `i` (`None` when there was none).
fn forwarded(up: &Upstream, i: usize) -> Option<Tp> {
    let seen = up.seen();
    let r = &seen.requests[i];
    let all = r.head.all("traceparent");
    assert!(
        all.len() <= 1,
        "request {i}: {} traceparent fields: {all:?}",
        all.len()
    );
    all.first()
        .map(|v| parse_tp(v).unwrap_or_else(|e| panic!("request {i}: {e}")))
}

/// Sends a GET with `extra` header lines on `c`; asserts 200.
fn send(c: &mut Conn, path: &str, extra: &[&str]) {
    let r = c.exchange(&request("GET", path, extra, b""));
    assert_eq!(r.status, 200, "GET {path} {extra:?}");
}

#[test]
fn a_valid_traceparent_continues_under_a_new_span_and_tracestate_passes() {
    let up = Upstream::echo_head();
    let log = temp_path("trace-valid", "log");
    let proxy = Proxy::to(&[up.addr], &["--access-log", log.path()]);
    let mut c = proxy.connect();
    let sampled = format!("traceparent: 00-{TRACE}-{PARENT}-01");
    let unsampled = format!("traceparent: 00-{TRACE}-{PARENT}-00");
    let state = "tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    send(&mut c, "/sampled", &[&sampled, state]);
    send(
        &mut c,
        "/unsampled",
        &[&unsampled, "tracestate: a=1", "tracestate: b=2,c=3"],
    );
    // A later version: its first fields are read, and it is forwarded as version 00.
    send(
        &mut c,
        "/future",
        &[&format!("traceparent: cc-{TRACE}-{PARENT}-01-and-more")],
    );
    // Surrounding whitespace is allowed.
    send(
        &mut c,
        "/spaced",
        &[&format!("traceparent:   00-{TRACE}-{PARENT}-01\t")],
    );

    let mut spans = BTreeSet::new();
    for (i, flags) in [(0, "01"), (1, "00"), (2, "01"), (3, "01")] {
        let tp = forwarded(&up, i).unwrap_or_else(|| panic!("request {i}: traceparent dropped"));
        assert_eq!(tp.trace, TRACE, "request {i}: the trace id continues");
        assert_eq!(tp.flags, flags, "request {i}: the flags are kept");
        assert_ne!(
            tp.parent, PARENT,
            "request {i}: the parent is shardgate's new span"
        );
        spans.insert(tp.parent);
    }
    assert_eq!(
        spans.len(),
        4,
        "every request gets a span of its own: {spans:?}"
    );

    let seen = up.seen();
    assert_eq!(
        seen.requests[0].head.all("tracestate"),
        ["congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"],
        "tracestate unchanged"
    );
    assert_eq!(
        seen.requests[1].head.all("tracestate"),
        ["a=1", "b=2,c=3"],
        "every tracestate line, in order"
    );

    let lines = wait_log_lines(&log.0, 4, ms(3000));
    for l in &lines {
        assert_eq!(
            l["trace_id"].as_str(),
            Some(TRACE),
            "the log line's trace id: {l}"
        );
    }
}

/// Values a strict parser rejects, each with why.
const INVALID: [(&str, &str); 10] = [
    (
        "upper-case hex",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
    ),
    (
        "all-zero trace id",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ),
    (
        "all-zero parent id",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    ),
    (
        "version ff",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ),
    (
        "short trace id",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ),
    (
        "version 00 with more",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
    ),
    (
        "non-hex flags",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
    ),
    (
        "underscores",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    ),
    ("garbage", "hello"),
    ("empty", ""),
];

#[test]
fn an_invalid_traceparent_is_dropped() {
    let up = Upstream::echo_head();
    let log = temp_path("trace-invalid", "log");
    let proxy = Proxy::to(&[up.addr], &["--access-log", log.path()]);
    let mut c = proxy.connect();
    for (why, v) in INVALID {
        send(
            &mut c,
            &format!("/{}", why.replace(' ', "-")),
            &[&format!("traceparent: {v}")],
        );
    }
    for (i, (why, _)) in INVALID.iter().enumerate() {
        assert_eq!(forwarded(&up, i), None, "{why}: forwarded although invalid");
    }
    let lines = wait_log_lines(&log.0, INVALID.len(), ms(3000));
    for l in &lines {
        assert!(l["trace_id"].is_null(), "no trace, yet a trace id: {l}");
    }
}

#[test]
fn two_traceparent_fields_are_dropped_as_invalid() {
    let up = Upstream::echo_head();
    let proxy = Proxy::to(&[up.addr], &[]);
    let mut c = proxy.connect();
    let other = "11111111111111111111111111111111";
    send(
        &mut c,
        "/two",
        &[
            &format!("traceparent: 00-{TRACE}-{PARENT}-01"),
            &format!("traceparent: 00-{other}-{PARENT}-01"),
        ],
    );
    assert_eq!(
        forwarded(&up, 0),
        None,
        "two traceparent fields make the request's trace context invalid"
    );
}

#[test]
fn with_trace_an_invalid_traceparent_is_replaced_by_a_new_trace() {
    let up = Upstream::echo_head();
    let proxy = Proxy::to(&[up.addr], &["--trace"]);
    let mut c = proxy.connect();
    for (why, v) in INVALID {
        send(
            &mut c,
            &format!("/{}", why.replace(' ', "-")),
            &[&format!("traceparent: {v}")],
        );
    }
    let mut traces = BTreeSet::new();
    for (i, (why, v)) in INVALID.iter().enumerate() {
        let tp = forwarded(&up, i).unwrap_or_else(|| panic!("{why}: no new trace started"));
        assert!(
            !v.to_ascii_lowercase().contains(&tp.trace),
            "{why}: the new trace reuses the invalid one's id {}",
            tp.trace
        );
        traces.insert(tp.trace);
    }
    assert_eq!(
        traces.len(),
        INVALID.len(),
        "each request starts its own trace"
    );
}

#[test]
fn without_traceparent_and_without_trace_none_is_added() {
    let up = Upstream::echo_head();
    let log = temp_path("trace-none", "log");
    let proxy = Proxy::to(&[up.addr], &["--access-log", log.path()]);
    let mut c = proxy.connect();
    send(&mut c, "/plain", &["tracestate: lonely=1"]);
    assert_eq!(
        forwarded(&up, 0),
        None,
        "a traceparent was added without --trace"
    );
    let lines = wait_log_lines(&log.0, 1, ms(3000));
    assert!(lines[0]["trace_id"].is_null(), "{}", lines[0]);
}

/// `--trace` or `trace = true` in the file: a request without a traceparent starts a trace, which
/// the upstream gets and the access log records.
fn starts_traces(proxy: &Proxy, up: &Upstream, log: &std::path::Path) {
    let mut c = proxy.connect();
    for i in 0..5 {
        send(&mut c, &format!("/untraced/{i}"), &[]);
    }
    let mut traces = BTreeSet::new();
    let mut spans = BTreeSet::new();
    let lines = wait_log_lines(log, 5, ms(3000));
    for i in 0..5 {
        let tp = forwarded(up, i).unwrap_or_else(|| panic!("request {i}: no trace started"));
        let path = format!("/untraced/{i}");
        let line = lines
            .iter()
            .find(|l| l["path"].as_str() == Some(path.as_str()))
            .unwrap_or_else(|| panic!("no log line for {path}"));
        assert_eq!(
            line["trace_id"].as_str(),
            Some(tp.trace.as_str()),
            "the log line's trace id is the one the upstream got"
        );
        traces.insert(tp.trace);
        spans.insert(tp.parent);
    }
    assert_eq!(traces.len(), 5, "a new trace per request: {traces:?}");
    assert_eq!(spans.len(), 5, "a new span per request: {spans:?}");
}

#[test]
fn trace_flag_starts_a_trace_when_none_arrives() {
    let up = Upstream::echo_head();
    let log = temp_path("trace-start", "log");
    let proxy = Proxy::to(&[up.addr], &["--trace", "--access-log", log.path()]);
    starts_traces(&proxy, &up, &log.0);
}

#[test]
fn trace_true_in_the_file_starts_a_trace_too() {
    let up = Upstream::echo_head();
    let log = temp_path("trace-file", "log");
    let cfg = temp_file(
        "trace-cfg",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\ntrace = true\naccess_log = \"{}\"\n",
            up.addr,
            log.path()
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path()]);
    starts_traces(&proxy, &up, &log.0);
}
