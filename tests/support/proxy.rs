//! The shardgate process under test. `Proxy::start` runs the debug binary with the given flags,
//! waits (bounded) for its `ready:` line and parses the `listening on` addresses from stdout;
//! stdout and stderr are collected line by line by two reader threads so tests can wait for a
//! line (`shard 0: ...`, `draining: ...`). Dropping a `Proxy` kills the child by pid and reaps it;
//! if the test is failing, the child's stderr is printed to help the diagnosis.

use super::sys;
use super::wire::Conn;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How long shardgate may take to print `ready:`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary under test: `SHARDGATE_BIN` if set (e.g. a release build), else this package's.
pub fn bin() -> String {
    std::env::var("SHARDGATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_shardgate").to_string())
}

/// Addresses reported by the proxies alive in this test process, with their pids. Two live
/// proxies must never report the same one: with SO_REUSEPORT they would silently share the port and
/// a test's connection could land in another test's proxy.
static LIVE: Mutex<Vec<(SocketAddr, u32)>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<(SocketAddr, u32)>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lines a child printed on one stream, appended as they arrive.
#[derive(Default)]
pub struct Lines {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl Lines {
    fn collect(stream: impl Read + Send + 'static) -> Arc<Lines> {
        let lines = Arc::new(Lines::default());
        let l = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                l.lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .0
                    .push(line);
                l.changed.notify_all();
            }
            l.lines.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
            l.changed.notify_all();
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Waits until some line satisfies `pred`; `None` on timeout or end of stream.
    pub fn wait(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(l) = g.0.iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if g.1 || left.is_zero() {
                return None;
            }
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until `n` lines satisfy `pred`; false on timeout or end of stream.
    pub fn wait_n(&self, timeout: Duration, n: usize, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if g.0.iter().filter(|l| pred(l)).count() >= n {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if g.1 || left.is_zero() {
                return false;
            }
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until the stream is closed (the process exited), bounded.
    pub fn wait_end(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        while !g.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            g = self
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A running shardgate.
pub struct Proxy {
    child: Child,
    /// The first `listening on` address.
    pub addr: SocketAddr,
    /// Every `listening on` address, in the order printed.
    pub addrs: Vec<SocketAddr>,
    /// The admin listener (`admin listening on`); tests get `--admin 127.0.0.1:0` unless they
    /// pass `--admin` themselves, so parallel proxies never fight over the default port.
    pub admin: Option<SocketAddr>,
    pub stdout: Arc<Lines>,
    pub stderr: Arc<Lines>,
    exit: Option<ExitStatus>,
}

impl Proxy {
    /// `--listen 127.0.0.1:0`, one `--upstream` per address, then `extra` flags.
    pub fn to(upstreams: &[SocketAddr], extra: &[&str]) -> Proxy {
        let mut args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
        for u in upstreams {
            args.push("--upstream".into());
            args.push(u.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Proxy::start(&args)
    }

    /// Runs shardgate with exactly `args` and waits for `ready:`.
    pub fn start<S: AsRef<str>>(args: &[S]) -> Proxy {
        Proxy::start_with_env(args, &[])
    }

    /// Like `start`, with extra environment variables (`("NAME", Some(value))`, or `None` to unset).
    pub fn start_with_env<S: AsRef<str>>(args: &[S], env: &[(&str, Option<&str>)]) -> Proxy {
        Proxy::spawn(args, env, true, false)
    }

    /// Runs shardgate with `args` (which name `--upgrade` and the old process's
    /// `--upgrade-socket`): it takes the running process's listeners, so sharing its addresses is
    /// expected, not a clash.
    pub fn start_upgrade<S: AsRef<str>>(args: &[S]) -> Proxy {
        Proxy::spawn(args, &[], true, true)
    }

    /// Like `start`, but never adds `--admin 127.0.0.1:0` (for a config file's own `admin`).
    pub fn start_as_is<S: AsRef<str>>(args: &[S]) -> Proxy {
        Proxy::spawn(args, &[], false, false)
    }

    fn spawn<S: AsRef<str>>(
        args: &[S],
        env: &[(&str, Option<&str>)],
        admin: bool,
        shares: bool,
    ) -> Proxy {
        let mut cmd = Command::new(bin());
        cmd.args(args.iter().map(|a| a.as_ref()));
        if admin && !args.iter().any(|a| a.as_ref() == "--admin") {
            cmd.args(["--admin", "127.0.0.1:0"]);
        }
        // Parallel tests never share the default upgrade socket (/run/shardgate/upgrade.sock).
        if !args.iter().any(|a| a.as_ref() == "--upgrade-socket") {
            cmd.args(["--upgrade-socket", "off"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd.spawn().expect("spawn shardgate");
        let stdout = Lines::collect(child.stdout.take().unwrap());
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let mut proxy = Proxy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            addrs: Vec::new(),
            admin: None,
            stdout,
            stderr,
            exit: None,
        };
        let argv: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
        if proxy
            .stdout
            .wait(READY_TIMEOUT, |l| l.starts_with("ready:"))
            .is_none()
        {
            let status = proxy.wait_exit(Duration::from_millis(100));
            panic!(
                "shardgate {argv:?} printed no `ready:` line within {READY_TIMEOUT:?} (exit: {status:?})\n\
                 stdout: {:?}\nstderr: {:?}",
                proxy.stdout.all(),
                proxy.stderr.all()
            );
        }
        proxy.addrs = proxy
            .stdout
            .all()
            .iter()
            .filter_map(|l| l.strip_prefix("listening on "))
            .map(|a| {
                a.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("bad `listening on` address {a:?}: {e}"))
            })
            .collect();
        assert!(
            !proxy.addrs.is_empty(),
            "no `listening on` line before `ready:`: {:?}",
            proxy.stdout.all()
        );
        assert!(
            proxy.addrs.iter().all(|a| a.port() != 0),
            "`listening on` must show the real port: {:?}",
            proxy.addrs
        );
        proxy.addr = proxy.addrs[0];
        proxy.admin = proxy
            .stdout
            .all()
            .iter()
            .find_map(|l| l.strip_prefix("admin listening on "))
            .and_then(|a| a.trim().parse().ok());
        let pid = proxy.pid();
        let clash: Vec<(SocketAddr, u32)> = {
            let mut live = live();
            let clash = live
                .iter()
                .filter(|(a, _)| !shares && proxy.addrs.contains(a))
                .cloned()
                .collect();
            live.extend(proxy.addrs.iter().map(|a| (*a, pid)));
            clash
        };
        assert!(
            clash.is_empty(),
            "shardgate pid {pid} reports `listening on` {:?}, but live shardgate(s) {clash:?} listen \
             there too: two processes share the port through SO_REUSEPORT",
            proxy.addrs
        );
        proxy
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new client connection to the first listener.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr)
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        sys::signal(self.pid(), libc::SIGTERM);
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                self.exit = Some(st);
                return self.exit;
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for a stderr line starting with `prefix`.
    pub fn wait_stderr(&self, timeout: Duration, prefix: &str) -> Option<String> {
        self.stderr.wait(timeout, |l| l.starts_with(prefix))
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.all()
    }

    /// Peak memory of the process so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        sys::peak_rss_kib(self.pid())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let pid = self.pid();
        live().retain(|(_, p)| *p != pid);
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            self.stderr.wait_end(Duration::from_millis(500));
            eprintln!("--- shardgate stderr (pid {}) ---", self.child.id());
            for l in self.stderr.all() {
                eprintln!("{l}");
            }
        }
    }
}

/// The outcome of a shardgate run that is expected to exit by itself (`--check`, `--help`).
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs shardgate with `args` to completion (killed and a test failure after 10 s).
pub fn run<S: AsRef<str>>(args: &[S]) -> Run {
    let mut child = Command::new(bin())
        .args(args.iter().map(|a| a.as_ref()))
        .args(if args.iter().any(|a| a.as_ref() == "--admin") {
            &[][..]
        } else {
            &["--admin", "127.0.0.1:0"][..]
        })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardgate");
    let out = Lines::collect(child.stdout.take().unwrap());
    let err = Lines::collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "shardgate {:?} did not exit within 10 s",
                args.iter().map(|a| a.as_ref()).collect::<Vec<_>>()
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    out.wait_end(Duration::from_secs(2));
    err.wait_end(Duration::from_secs(2));
    Run {
        status,
        stdout: out.all().join("\n"),
        stderr: err.all().join("\n"),
    }
}
