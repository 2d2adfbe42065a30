//! gRPC through an h2c upstream (`--upstream-protocol h2c`) with real `grpcio` (PyPI) on both
//! ends (tests/grpc/server.py, tests/grpc/client.py: generic handlers on raw bytes, no protoc):
//! empty unary, large unary (4 MiB), client, server and bidirectional (ping-pong) streaming, a
//! status with its message in trailers, custom metadata both ways, an unimplemented method, and
//! cancel after begin (the client's RST_STREAM reaches the server as a cancellation), a timeout
//! on a sleeping server. Every case gives the same result straight to the server and through shardgate, to an h2c server and to one over TLS
//! (`--upstream-protocol h2`, ALPN h2), from a client over h2c and over TLS (ALPN h2).
//! scripts/test.sh installs grpcio.

mod support;

use std::net::SocketAddr;
use std::process::Command;

use serde_json::Value;
use support::grpc_server;
use support::*;

/// Every case's result against `target`, one JSON object per case; `ca`: over TLS, the
/// certificate checked against it for `localhost`.
fn cases_with(target: SocketAddr, ca: Option<&str>) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/client.py");
    let out = Command::new("timeout")
        .args(["60", "python3", script, &target.to_string()])
        .args(ca)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "client.py {target}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn cases(target: SocketAddr) -> Vec<Value> {
    cases_with(target, None)
}

#[test]
fn every_case_gives_the_same_result_direct_and_through_shardgate() {
    let server = grpc_server::start(None);
    let direct = cases(server.addr);
    assert_eq!(direct.len(), 10, "{direct:?}");
    // What the cases must show, so that equal results mean something.
    let by = |c: &str| direct.iter().find(|v| v["case"] == c).unwrap().clone();
    assert_eq!(by("large")["reply"][0], 4 << 20);
    assert_eq!(
        by("bidi")["reply"],
        serde_json::json!(["PING", "PONG", "DONE"])
    );
    assert_eq!(by("fail")["code"], "INVALID_ARGUMENT");
    assert_eq!(by("fail")["details"], "bad thing: 100% wrong");
    assert_eq!(by("metadata")["initial"]["x-echo"], "m2");
    assert_eq!(by("metadata")["trailing"]["x-trailer"], "t");
    assert_eq!(by("unimplemented")["code"], "UNIMPLEMENTED");
    assert_eq!(by("timeout")["code"], "DEADLINE_EXCEEDED");
    assert_eq!(by("timeout")["reply"], true, "within 5 s");
    assert_eq!(
        by("cancel")["reply"],
        serde_json::json!(["first", true]),
        "the server saw the cancel"
    );

    let proxy = Proxy::to(
        &[server.addr],
        &["--h2c", "--upstream-protocol", "h2c", "--shards", "1"],
    );
    let through = cases(proxy.addr);
    for (d, t) in direct.iter().zip(&through) {
        assert_eq!(d, t, "direct and through shardgate differ");
    }
    assert_eq!(through.len(), direct.len());
    // Counted by the grpc-status their client got: the failure (3) and the unknown method (12)
    // once each, the successful calls (0); a cancelled call may or may not have been answered.
    let name = "shardgate_route_grpc_requests_total";
    let m = support::admin::scrape_until(&proxy, ms(5000), "the calls counted", name, |m| {
        m.sum(name, &[("grpc_status", "3")]) == 1.0 && m.sum(name, &[("grpc_status", "12")]) == 1.0
    });
    assert!(
        m.sum(name, &[("grpc_status", "0")]) >= 6.0,
        "{:?}",
        m.select(name, &[])
    );
}

/// The same cases through shardgate to a gRPC server over TLS (`protocol = "h2"`: ALPN h2, the
/// certificate checked against the test CA) give the results of the h2c server straight.
#[test]
fn grpc_over_an_h2_tls_upstream_gives_the_same_results() {
    let certs = support::certs::Certs::new("grpc-tls");
    let leaf = certs.leaf("upstream", &["localhost", "127.0.0.1"]);
    let plain = grpc_server::start(None);
    let tls = grpc_server::start(Some((leaf.cert(), leaf.key())));
    let direct = cases(plain.addr);
    let flags = [
        "--h2c",
        "--upstream-protocol",
        "h2",
        "--upstream-ca",
        certs.ca(),
    ];
    let proxy = Proxy::to(&[tls.addr], &[&flags[..], &["--shards", "1"]].concat());
    let through = cases(proxy.addr);
    assert_eq!(through.len(), direct.len(), "{through:?}");
    for (d, t) in direct.iter().zip(&through) {
        assert_eq!(d, t, "direct (h2c) and through shardgate to TLS differ");
    }
}

/// A gRPC client over TLS (ALPN h2 on a `--listen-tls` listener) to a TLS gRPC server through
/// shardgate: the h2c server's results.
#[test]
fn grpc_over_tls_on_both_sides_gives_the_same_results() {
    let certs = support::certs::Certs::new("grpc-tls2");
    let leaf = certs.leaf("both", &["localhost", "127.0.0.1"]);
    let plain = grpc_server::start(None);
    let tls = grpc_server::start(Some((leaf.cert(), leaf.key())));
    let direct = cases(plain.addr);
    let up = tls.addr.to_string();
    let proxy = Proxy::start(&[
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        leaf.cert(),
        "--tls-key",
        leaf.key(),
        "--upstream",
        &up,
        "--upstream-protocol",
        "h2",
        "--upstream-ca",
        certs.ca(),
        "--shards",
        "1",
    ]);
    let through = cases_with(proxy.addr, Some(certs.ca()));
    assert_eq!(through.len(), direct.len(), "{through:?}");
    for (d, t) in direct.iter().zip(&through) {
        assert_eq!(d, t, "direct (h2c) and through shardgate over TLS differ");
    }
}

/// Small unary calls, 512 in flight (h2load `-c 16 -m 32`), through shardgate to an h2c origin
/// built on the `h2` crate (src/bin/grpc_upstream.rs), whose server answers a peer that keeps
/// many small non-final DATA frames buffered with GOAWAY ENHANCE_YOUR_CALM: the proxy ends each
/// request with its last DATA frame (no extra empty one), so every call succeeds and no upstream
/// connection fails. Without it, 676 of the 20,000 calls succeeded: the origin's GOAWAY failed the
/// rest, the breaker opened and they got UNAVAILABLE.
#[test]
fn many_small_calls_in_flight_to_an_h2_crate_origin_all_succeed() {
    let mut origin = Command::new(env!("CARGO_BIN_EXE_grpc-upstream"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("grpc-upstream");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(origin.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let proxy = Proxy::start(&[
        "--listen",
        "127.0.0.1:0",
        "--h2c",
        "--upstream",
        &addr,
        "--upstream-protocol",
        "h2c",
        "--shards",
        "1",
        "--h2-max-requests",
        "0",
    ]);
    let request = support::temp_file("grpc-small", "");
    std::fs::write(request.path(), b"\x00\x00\x00\x00\x04ping").unwrap();
    let out = Command::new("h2load")
        .args(["-n", "20000", "-c", "16", "-m", "32", "-d", request.path()])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg(format!("http://{}/bench.Svc/Unary", proxy.addr))
        .output()
        .expect("h2load (scripts/test.sh installs nghttp2-client)");
    let _ = origin.kill();
    let _ = origin.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("20000 2xx"), "{text}");
    let name = "shardgate_route_grpc_requests_total";
    let m = support::admin::scrape_until(&proxy, ms(5000), "20000 calls counted", name, |m| {
        m.sum(name, &[]) == 20000.0
    });
    assert_eq!(
        m.sum(name, &[("grpc_status", "0")]),
        20000.0,
        "every call OK"
    );
    assert_eq!(m.sum("shardgate_upstream_failures_total", &[]), 0.0);
}
