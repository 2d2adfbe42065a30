//! Health checks of type `grpc`: the standard `grpc.health.v1.Health/Check` call, over h2c, to a
//! real gRPC server (grpcio, tests/grpc/health_server.py) whose answers the test changes: SERVING
//! keeps an endpoint in, NOT_SERVING and an unknown service (gRPC NOT_FOUND) take it out, and the
//! configured service name is the one asked (`grpc:NAME`; `grpc` alone asks for the server as a
//! whole). Verdicts are read from `shardgate_upstream_healthy`. `--check` refuses an `expect` on a
//! gRPC check.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use serde_json::Value;
use support::admin::scrape_until;
use support::*;

/// A running health_server.py: its port, its stdin (status changes) and its report lines.
struct HealthServer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
    port: u16,
}

impl HealthServer {
    fn start(services: &[&str]) -> HealthServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/health_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(services)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (scripts/test.sh installs grpcio)");
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("health_server.py printed its port");
        let port = first["port"].as_u64().expect("a port") as u16;
        HealthServer {
            child,
            stdin,
            lines,
            port,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Changes one service's status and waits for the server to say it did.
    fn set(&mut self, service: &str, status: &str) {
        writeln!(self.stdin, "{service} {status}").unwrap();
        self.stdin.flush().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(200)) {
                if v.get("set").is_some() {
                    return;
                }
            }
        }
        panic!("health_server.py did not take {service} {status}");
    }

    /// The service names asked so far (drains the reports).
    fn asked(&self) -> Vec<String> {
        self.lines
            .try_iter()
            .filter_map(|v| v["asked"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(endpoints: &[String], check: &str) -> TempFile {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    temp_file(
        "grpc-health",
        &format!(
            "[[listeners]]\naddr = \"127.0.0.1:0\"\n\n\
             [[clusters]]\nname = \"g\"\nendpoints = [{}]\n\
             health_check = {{ check = \"{check}\", interval = \"100ms\", timeout = \"2s\", \
             rise = 1, fall = 1 }}\n\n[[routes]]\ncluster = \"g\"\n",
            eps.join(", ")
        ),
    )
}

/// Waits until the endpoints' verdicts are `want` (1 healthy, 0 not), in order.
fn wait_health(proxy: &Proxy, eps: &[String], want: &[f64], what: &str) {
    let name = "shardgate_upstream_healthy";
    scrape_until(proxy, Duration::from_secs(10), what, name, |m| {
        eps.iter()
            .zip(want)
            .all(|(ep, w)| m.select(name, &[("endpoint", ep)]).first().map(|s| s.value) == Some(*w))
    });
}

#[test]
fn serving_not_serving_and_unknown_services_decide_the_verdict() {
    let mut a = HealthServer::start(&["svc.A=1"]);
    let mut b = HealthServer::start(&["svc.A=2"]);
    let eps = [a.addr(), b.addr()];
    let cfg = config(&eps, "grpc:svc.A");
    let proxy = Proxy::start(&["--config", cfg.path()]);

    wait_health(&proxy, &eps, &[1.0, 0.0], "A serving, B not serving");
    b.set("svc.A", "1");
    wait_health(&proxy, &eps, &[1.0, 1.0], "B serving now");
    a.set("svc.A", "gone");
    wait_health(&proxy, &eps, &[0.0, 1.0], "A's service unknown (NOT_FOUND)");
    a.set("svc.A", "1");
    wait_health(&proxy, &eps, &[1.0, 1.0], "A back");
    let asked = a.asked();
    assert!(
        !asked.is_empty() && asked.iter().all(|s| s == "svc.A"),
        "{asked:?}"
    );
}

#[test]
fn grpc_alone_asks_for_the_whole_server_and_a_dead_server_fails() {
    let mut a = HealthServer::start(&["-=1"]);
    let dead = refused_addr().to_string();
    let eps = [a.addr(), dead];
    let cfg = config(&eps, "grpc");
    let proxy = Proxy::start(&["--config", cfg.path()]);

    wait_health(
        &proxy,
        &eps,
        &[1.0, 0.0],
        "the server serving, the dead one out",
    );
    assert!(a.asked().iter().all(String::is_empty), "asked for \"\"");
    a.set("-", "2");
    wait_health(&proxy, &eps, &[0.0, 0.0], "the server not serving");
}

#[test]
fn check_refuses_an_expect_on_a_grpc_check() {
    let cfg = temp_file(
        "grpc-health-expect",
        "[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[[clusters]]\nname = \"g\"\n\
         endpoints = [\"127.0.0.1:1\"]\n\
         health_check = { check = \"grpc\", expect = \"200\" }\n\n[[routes]]\ncluster = \"g\"\n",
    );
    let r = run(&["--check", "--config", cfg.path()]);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("clusters[0].health_check.expect"),
        "{}",
        r.stderr
    );
    let cfg = temp_file(
        "grpc-health-bad",
        "[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[[clusters]]\nname = \"g\"\n\
         endpoints = [\"127.0.0.1:1\"]\nhealth_check = { check = \"grpcx\" }\n\n\
         [[routes]]\ncluster = \"g\"\n",
    );
    let r = run(&["--check", "--config", cfg.path()]);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("clusters[0].health_check.check") && r.stderr.contains("grpc:SERVICE"),
        "{}",
        r.stderr
    );
}
