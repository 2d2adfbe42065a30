//! The Python test clients and servers (tests/h2c/*.py, tests/grpc/*.py), which speak what no Rust
//! test dependency does (raw HTTP/2 frames, gRPC) and report as JSON lines on stdout: run to their
//! end (`json_lines`, `json_last`) or read as they go (`Running`); the servers among them print
//! `port N` once they listen (`Served`). A script that fails fails the test with its stderr.

use std::io::{BufRead, BufReader, Lines};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;

/// The path of `tests/{rel}`.
pub fn path(rel: &str) -> String {
    format!("{}/tests/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `tests/{rel}` with `args` to its end: every JSON line it printed.
pub fn json_lines(rel: &str, args: &[&str]) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(path(rel))
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{rel} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{rel}: {e}: {l}")))
        .collect()
}

/// Runs `tests/{rel}` with `args` to its end: its last JSON line (its report).
pub fn json_last(rel: &str, args: &[&str]) -> Value {
    json_lines(rel, args)
        .pop()
        .unwrap_or_else(|| panic!("{rel} {args:?} printed no report"))
}

/// A script still running, read line by line.
pub struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Running {
    pub fn start(rel: &str, args: &[&str]) -> Running {
        let mut child = Command::new("python3")
            .arg(path(rel))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Running { child, lines }
    }

    /// Its next JSON line (panics when it ended without one).
    pub fn next(&mut self) -> Value {
        let line = self
            .lines
            .next()
            .expect("the script printed another line")
            .unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python server from tests/ that prints `port N` once it listens on 127.0.0.1; killed when
/// dropped.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
}

impl Served {
    /// Starts `tests/{rel}` with `args`; `needs` names what it needs installed, for the message
    /// when it does not start.
    pub fn start(rel: &str, args: &[&str], needs: &str) -> Served {
        let mut child = Command::new("python3")
            .arg(path(rel))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("{rel} said {line:?}, not `port N`: is {needs} installed?")
            });
        Served {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
