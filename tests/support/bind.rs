//! A real authoritative DNS server whose records change while it runs, for SRV discovery tests:
//! BIND 9's `named` (Debian `bind9`) started by the test in the foreground (`named -g`, as the
//! test's own user: no `-u`, so root stays root) on 127.0.0.1 and a free UDP/TCP port, serving
//! one zone `svc.test.` from a zone file in a temp directory with records of TTL 1 s. Records
//! are added and deleted by `nsupdate` (Debian `bind9-dnsutils`), each change signed with a TSIG
//! key `tsig-keygen` made for this server alone, and answered by the next question. `dig` asks
//! it until it serves the zone before `start` returns. Stopped (by its pid) and its directory
//! removed when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::dns::free_port;

/// The zone every server is authoritative for.
pub const ZONE: &str = "svc.test";

pub struct Bind {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: PathBuf,
    /// A TXT record only this server has: tells it from another test's `named` on a reused port.
    token: String,
}

impl Bind {
    /// Serves `svc.test.` with `records` (zone-file lines, names relative to `svc.test.`, e.g.
    /// `_http._tcp.api SRV 0 10 8080 a` and `a A 127.0.0.5`), every record of TTL 1 s.
    pub fn start(records: &[&str]) -> Bind {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("shardgate-bind-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let token = format!("shardgate-{}-{n}", std::process::id());
        let mut b = Bind {
            child: None,
            addr: free_port(),
            dir,
            token,
        };
        b.write_files(records);
        // Another test may take the free port between the look and named's bind: another one.
        for _ in 0..10 {
            match b.run() {
                Ok(()) => return b,
                Err(e) if e.contains("unable to listen") || e.contains("in use") => {
                    b.addr = free_port()
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("named found no free port");
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().expect("UTF-8").to_string()
    }

    fn write_files(&self, records: &[&str]) {
        let key = run(Command::new(sbin("tsig-keygen")).args(["-a", "hmac-sha256", "update"]));
        std::fs::write(self.path("update.key"), key).unwrap();
        let mut zone = format!(
            "$ORIGIN {ZONE}.\n$TTL 1\n\
             @ IN SOA ns admin 1 1 1 1 1\n@ IN NS ns\nns IN A 127.0.0.1\n\
             token IN TXT \"{}\"\n",
            self.token
        );
        for r in records {
            zone.push_str(r);
            zone.push('\n');
        }
        std::fs::write(self.path("zone"), zone).unwrap();
    }

    /// named.conf for the current port: no recursion, no control channel, every file of its own
    /// in the temp directory (parallel servers share nothing).
    fn write_conf(&self) {
        let dir = self.dir.to_str().expect("UTF-8");
        let conf = format!(
            "include \"{dir}/update.key\";\n\
             options {{\n  directory \"{dir}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  \
             listen-on-v6 {{ none; }};\n  pid-file none;\n  session-keyfile \"{dir}/session.key\";\n  \
             managed-keys-directory \"{dir}\";\n  recursion no;\n  dnssec-validation no;\n  \
             notify no;\n}};\ncontrols {{ }};\n\
             zone \"{ZONE}\" {{\n  type primary;\n  file \"{dir}/zone\";\n  \
             allow-update {{ key update; }};\n}};\n",
            port = self.addr.port()
        );
        std::fs::write(self.path("named.conf"), conf).unwrap();
    }

    fn run(&mut self) -> Result<(), String> {
        self.write_conf();
        let mut child = Command::new(sbin("named"))
            .args(["-g", "-n", "1", "-c", &self.path("named.conf")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run named (Debian bind9; scripts/test.sh installs it)");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut said = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        // "running" once every zone is loaded; a port in use ends the process ("unable to
        // listen on any configured interfaces").
        let started = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.ends_with(" running") => break true,
                Ok(l) => said.push(l),
                Err(_) => break false,
            }
        };
        if !started {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "named did not start on {}: {}",
                self.addr,
                said.join("\n")
            ));
        }
        self.child = Some(child);
        // Poll until the zone is served, and by this server (its own token).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self
                .dig(&format!("token.{ZONE}"), "TXT")
                .contains(&self.token)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!("named on {} never served {ZONE}", self.addr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `dig +short`: the records of `name` of type `rtype`, one a line (empty when none).
    pub fn dig(&self, name: &str, rtype: &str) -> String {
        run(Command::new("dig").args([
            &format!("@{}", self.addr.ip()),
            "-p",
            &self.addr.port().to_string(),
            "+short",
            "+norecurse",
            "+time=1",
            "+tries=1",
            name,
            rtype,
        ]))
    }

    /// Sends one dynamic update of `changes` (nsupdate commands after `update`, e.g.
    /// `add _http._tcp.api.svc.test 1 SRV 0 10 8080 a.svc.test.` or `delete a.svc.test A`),
    /// applied together; returns once the server has committed them.
    pub fn update(&self, changes: &[&str]) {
        let mut script = format!(
            "server {} {}\nzone {ZONE}\n",
            self.addr.ip(),
            self.addr.port()
        );
        for c in changes {
            script.push_str(&format!("update {c}\n"));
        }
        script.push_str("send\n");
        let mut child = Command::new("nsupdate")
            .args(["-k", &self.path("update.key"), "-t", "5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nsupdate (Debian bind9-dnsutils; scripts/test.sh installs it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nsupdate failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Adds an SRV record `name` (relative to the zone) → `target` (relative) at `port`.
    pub fn add_srv(&self, name: &str, priority: u16, weight: u16, port: u16, target: &str) {
        self.update(&[&srv("add", name, priority, weight, port, target)]);
    }

    /// Deletes that one SRV record (the name's other records stay).
    pub fn delete_srv(&self, name: &str, priority: u16, weight: u16, port: u16, target: &str) {
        self.update(&[&srv("delete", name, priority, weight, port, target)]);
    }

    /// Stops the server: from now on its port answers nothing.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An nsupdate `add`/`delete` of one SRV record of TTL 1 s (names relative to the zone).
pub fn srv(op: &str, name: &str, priority: u16, weight: u16, port: u16, target: &str) -> String {
    let ttl = if op == "add" { " 1" } else { "" };
    format!("{op} {name}.{ZONE}{ttl} SRV {priority} {weight} {port} {target}.{ZONE}.")
}

impl Drop for Bind {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian puts named and tsig-keygen in /usr/sbin, which a non-root PATH may lack.
fn sbin(name: &str) -> String {
    let full = format!("/usr/sbin/{name}");
    if Path::new(&full).exists() {
        full
    } else {
        name.to_string()
    }
}

/// Runs `cmd` to the end; its stdout (a failure to start panics).
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?} (Debian bind9, bind9-dnsutils): {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
