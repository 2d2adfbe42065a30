//! A real DNS server for discovery tests: dnsmasq (Debian `dnsmasq-base`) started by the test in
//! the foreground on 127.0.0.1 and a free UDP/TCP port, answering A records from a hosts file
//! (read again on SIGHUP), SRV and address records from its flags (fixed until a restart), and
//! NXDOMAIN for anything else under `test`. Stopped (by its pid) when dropped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::TempFile;

pub struct Dnsmasq {
    child: Option<Child>,
    pub addr: SocketAddr,
    hosts: TempFile,
    ttl: u32,
    extra: Vec<String>,
}

impl Dnsmasq {
    /// Serves `hosts` (hosts-file lines) with records of `ttl` seconds, plus `extra` flags
    /// (`--srv-host=…`, `--host-record=…`).
    pub fn start(hosts: &str, ttl: u32, extra: &[&str]) -> Dnsmasq {
        let hosts = super::temp_file("dnsmasq-hosts", hosts);
        let mut d = Dnsmasq {
            child: None,
            addr: free_port(),
            hosts,
            ttl,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        // Another test may take the free port between the look and dnsmasq's bind: another one.
        for _ in 0..10 {
            match d.run() {
                Ok(()) => return d,
                Err(e) if e.contains("in use") => d.addr = free_port(),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("dnsmasq found no free port");
    }

    fn run(&mut self) -> Result<(), String> {
        // Debian puts it in /usr/sbin, which a non-root PATH may lack.
        let bin = if std::path::Path::new("/usr/sbin/dnsmasq").exists() {
            "/usr/sbin/dnsmasq"
        } else {
            "dnsmasq"
        };
        let mut cmd = Command::new(bin);
        cmd.args([
            "--no-daemon".to_string(),
            format!("--port={}", self.addr.port()),
            "--listen-address=127.0.0.1".into(),
            "--bind-interfaces".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            format!("--addn-hosts={}", self.hosts.path()),
            format!("--local-ttl={}", self.ttl),
            "--local=/test/".into(),
            "--pid-file=".into(),
            "--log-facility=-".into(),
        ])
        .args(&self.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("run dnsmasq (Debian dnsmasq-base; scripts/test.sh installs it)");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(l) if l.contains("read ") && l.contains(self.hosts.path()) => break,
                Ok(l) => said.push(l),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("dnsmasq did not start on {}: {said:?}", self.addr));
                }
            }
        }
        self.child = Some(child);
        Ok(())
    }

    /// Pauses the server (SIGSTOP): questions go unanswered, as from a host that went away.
    pub fn pause(&self) {
        let pid = self.child.as_ref().expect("running").id();
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    }

    /// Lets a paused server answer again (SIGCONT).
    pub fn resume(&self) {
        let pid = self.child.as_ref().expect("running").id();
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }

    /// Replaces the hosts file and has dnsmasq read it again (SIGHUP).
    pub fn set_hosts(&self, hosts: &str) {
        std::fs::write(self.hosts.path(), hosts).unwrap();
        let pid = self.child.as_ref().expect("running").id();
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    }

    /// Stops the server: from now on its port answers nothing.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with other flags (SRV records are not read again on SIGHUP).
    pub fn restart(&mut self, extra: &[&str]) {
        self.stop();
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        if let Err(e) = self.run() {
            panic!("restart on the same port: {e}");
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP (dnsmasq and named bind both).
pub fn free_port() -> SocketAddr {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        if TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}
