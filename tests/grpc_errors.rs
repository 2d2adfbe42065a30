//! Errors shardgate generates itself for gRPC requests (`content-type: application/grpc*` over
//! HTTP/2): trailers-only responses (`:status 200`, `grpc-status`, percent-encoded
//! `grpc-message`) mapped as Envoy maps them, seen by a real gRPC client (grpcio, PyPI) and by a
//! raw `h2` client for the exact frames; `grpc-timeout` caps the route's upstream timeout and its
//! passing gives DEADLINE_EXCEEDED. A request that is not gRPC (plain, gRPC-Web) keeps its HTTP
//! status. tests/grpc/errors.py holds the clients; scripts/test.sh installs grpcio and h2.

mod support;

use serde_json::Value;
use support::admin::scrape_until;
use support::grpc_server;
use support::*;

/// tests/grpc/errors.py: its one JSON report.
fn py(args: &[&str]) -> Value {
    script::json_last("grpc/errors.py", args)
}

/// grpcio's unary call through the proxy: (status code, details).
fn call(proxy: &Proxy, path: &str) -> (u64, String) {
    let rep = py(&["call", &proxy.addr.port().to_string(), path]);
    let code = rep["code"].as_u64().unwrap_or(99);
    (code, rep["details"].as_str().unwrap_or("").to_string())
}

/// A raw gRPC-shaped POST: the response header block, asserted to be trailers-only.
fn raw_trailers_only(proxy: &Proxy, path: &str, grpc_timeout: Option<&str>) -> (Value, f64) {
    let port = proxy.addr.port().to_string();
    let mut args = vec!["raw", port.as_str(), path];
    args.extend(grpc_timeout);
    let rep = py(&args);
    let h = &rep["headers"];
    assert_eq!(h[":status"], "200", "{rep}");
    assert_eq!(h["content-type"], "application/grpc", "{rep}");
    assert_eq!(
        rep["trailers_only"], true,
        "one HEADERS with END_STREAM: {rep}"
    );
    assert_eq!(rep["data"], 0, "{rep}");
    (h.clone(), rep["seconds"].as_f64().unwrap())
}

/// A config with one h2c listener: `top` (top-level keys) before it, `tables` after.
fn h2c_config(tag: &str, top: &str, tables: &str) -> TempFile {
    temp_file(
        tag,
        &format!("{top}[[listeners]]\naddr = \"127.0.0.1:0\"\nh2c = true\n\n{tables}"),
    )
}

#[test]
fn no_route_is_unimplemented_and_a_plain_request_still_gets_404() {
    let up = Upstream::fixed("ok\n");
    let cfg = h2c_config(
        "grpc-noroute",
        &format!("upstreams = [\"{}\"]\n", up.addr),
        "[[routes]]\npath_prefix = \"/known.Svc\"\ncluster = \"default\"\n",
    );
    let proxy = Proxy::start(&["--config", cfg.path()]);

    let (code, details) = call(&proxy, "/unknown.Svc/Method");
    assert_eq!(code, 12, "UNIMPLEMENTED: {details}");
    assert_eq!(details, "not found");
    let (h, _) = raw_trailers_only(&proxy, "/unknown.Svc/Method", None);
    assert_eq!(h["grpc-status"], "12");
    assert_eq!(h["grpc-message"], "not found");

    // Not gRPC: the HTTP status as before.
    let mut c = proxy.connect();
    let r = c.exchange(&request("POST", "/unknown.Svc/Method", &[], b"x"));
    assert_eq!(r.status, 404);
    assert_eq!(up.request_count(), 0);
}

#[test]
fn dead_upstream_and_rate_limit_are_unavailable_with_the_reason() {
    let dead = refused_addr();
    let cfg = h2c_config(
        "grpc-dead",
        "",
        &format!(
            "[[clusters]]\nname = \"dead\"\nendpoints = [\"{dead}\"]\nprotocol = \"h2c\"\n\n\
             [[routes]]\ncluster = \"dead\"\nrate_limit = {{ rate = \"1/m\", burst = 1 }}\n"
        ),
    );
    // One shard: its bucket sees both calls.
    let proxy = Proxy::start(&["--config", cfg.path(), "--shards", "1"]);

    let (code, details) = call(&proxy, "/svc.Dead/Call");
    assert_eq!(code, 14, "UNAVAILABLE: {details}");
    assert!(
        details.contains("upstream"),
        "the reason is the proxy's: {details}"
    );
    let (code, details) = call(&proxy, "/svc.Dead/Call");
    assert_eq!(code, 14, "a 429 is UNAVAILABLE too: {details}");
    assert_eq!(details, "too many requests");
    let (h, _) = raw_trailers_only(&proxy, "/svc.Dead/Call", None);
    assert_eq!(h["grpc-status"], "14");
    assert!(
        h["retry-after"].as_str().is_some(),
        "the limit's own headers ride along: {h}"
    );
    let name = "shardgate_route_grpc_requests_total";
    let m = scrape_until(&proxy, ms(5000), "three calls counted", name, |m| {
        m.sum(name, &[("grpc_status", "14")]) == 3.0
    });
    assert_eq!(m.sum(name, &[]), 3.0, "no other code counted");
}

#[test]
fn a_grpc_call_to_an_http1_cluster_is_refused_with_the_reason() {
    let up = Upstream::fixed("ok\n");
    let cfg = h2c_config(
        "grpc-h1",
        "",
        &format!(
            "[[clusters]]\nname = \"web\"\nendpoints = [\"{}\"]\n\n[[routes]]\ncluster = \"web\"\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path()]);
    let (code, details) = call(&proxy, "/svc.Web/Call");
    assert_eq!(code, 14, "UNAVAILABLE: {details}");
    assert_eq!(
        details,
        "cluster speaks HTTP/1.1 only: gRPC needs protocol = \"h2c\" or \"h2\""
    );
    // Plain HTTP/2 and HTTP/1.1 requests to the same cluster still go through.
    let mut c = proxy.connect();
    assert_eq!(c.exchange(&request("GET", "/plain", &[], b"")).status, 200);
    assert_eq!(
        up.request_count(),
        1,
        "the gRPC call never reached the upstream"
    );
}

#[test]
fn grpc_timeout_caps_the_upstream_timeout_and_its_passing_is_deadline_exceeded() {
    let up = grpc_server::start(None);
    let cfg = h2c_config(
        "grpc-deadline",
        "",
        &format!(
            "[[clusters]]\nname = \"slow\"\nendpoints = [\"{}\"]\nprotocol = \"h2c\"\n\n\
             [[routes]]\npath_prefix = \"/short\"\nrewrite_prefix = \"/\"\ncluster = \"slow\"\n\
             timeouts = {{ upstream = \"300ms\" }}\n\n\
             [[routes]]\ncluster = \"slow\"\ntimeouts = {{ upstream = \"20s\" }}\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&["--config", cfg.path()]);

    // The client's 400 ms deadline, far below the route's 20 s: DEADLINE_EXCEEDED when it passes.
    let (h, secs) = raw_trailers_only(&proxy, "/test.Echo/Sleep", Some("400m"));
    assert_eq!(h["grpc-status"], "4", "DEADLINE_EXCEEDED: {h}");
    assert!(
        (0.35..10.0).contains(&secs),
        "answered at the client's deadline, not the route's 20 s: {secs:.3} s"
    );
    // The route's own 300 ms timeout before a 30 s client deadline: a 504, so UNAVAILABLE.
    let (h, secs) = raw_trailers_only(&proxy, "/short/test.Echo/Sleep", Some("30S"));
    assert_eq!(h["grpc-status"], "14", "UNAVAILABLE: {h}");
    assert!(secs < 10.0, "{secs:.3} s");
    // A malformed grpc-timeout caps nothing and goes upstream as it came: grpcio's server
    // refuses it (INTERNAL), and its own trailers-only answer reaches the client.
    let (h, secs) = raw_trailers_only(&proxy, "/test.Echo/Sleep", Some("soon"));
    assert_eq!(h["grpc-status"], "13", "{h}");
    assert!(
        h["grpc-message"].as_str().unwrap().contains("grpc-timeout"),
        "{h}"
    );
    assert!(secs < 10.0, "{secs:.3} s");
}
