//! Certificates that reload without a restart: SIGHUP re-reads a flags-only proxy's certificate
//! files (new handshakes get the new serial, as `openssl s_client` shows; an open TLS connection
//! keeps working), a broken new file keeps the old certificate serving, the coordinator's file
//! watch (`--tls-watch-interval`) picks up replaced files with no signal (a broken one is said
//! once, with its name), and `shardgate_tls_certificate_expiry_timestamp_seconds` is each
//! certificate's notAfter (as `openssl x509 -enddate` says), before and after a reload. A
//! listener's handshake counts survive a reload that keeps its address; two TLS listeners both
//! written `127.0.0.1:0` each serve their own certificate, before and after a reload.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::certs::{Certs, Leaf};
use support::tls_client::TlsConn;
use support::*;

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n";
const NAMES: &[&str] = &["localhost", "127.0.0.1"];

/// A CA, the files the proxy is told to serve (`live.pem`, `live.key`) and a proxy serving them.
struct Setup {
    certs: Certs,
    live: Leaf,
    _up: Upstream,
    proxy: Proxy,
}

impl Setup {
    /// Serves `first` (copied to the live files) with the given watch interval.
    fn new(tag: &str, watch: &str) -> Setup {
        let certs = Certs::new(tag);
        let first = certs.leaf("first", NAMES);
        let live = Leaf {
            cert: certs.dir.join("live.pem"),
            key: certs.dir.join("live.key"),
        };
        std::fs::copy(&first.cert, &live.cert).unwrap();
        std::fs::copy(&first.key, &live.key).unwrap();
        let up = Upstream::fixed("ok");
        let up_addr = up.addr.to_string();
        let proxy = Proxy::start(&[
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            live.cert(),
            "--tls-key",
            live.key(),
            "--upstream",
            &up_addr,
            "--tls-watch-interval",
            watch,
        ]);
        Setup {
            certs,
            live,
            _up: up,
            proxy,
        }
    }

    /// Puts `leaf` in place of the live files the way certbot or cert-manager do: each file
    /// written beside, then renamed over the old one.
    fn replace_with(&self, leaf: &Leaf) {
        for (from, to) in [(&leaf.cert, &self.live.cert), (&leaf.key, &self.live.key)] {
            let tmp = to.with_extension("new");
            std::fs::copy(from, &tmp).unwrap();
            std::fs::rename(&tmp, to).unwrap();
        }
    }

    fn served_serial(&self) -> String {
        served_serial(self.proxy.addr)
    }

    fn connect(&self) -> TlsConn {
        TlsConn::connect(self.proxy.addr, self.certs.ca(), "localhost").expect("handshake")
    }
}

/// `serial=…` of the certificate a new handshake gets (`openssl s_client -showcerts`, its first
/// certificate read by `openssl x509 -serial`).
fn served_serial(addr: SocketAddr) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-showcerts"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let pem = String::from_utf8_lossy(&out.stdout).to_string();
    x509(&["-serial", "-noout"], None, Some(&pem))
}

/// `openssl x509 ARGS` on a file or on PEM text; its stdout, trimmed.
fn x509(args: &[&str], file: Option<&Path>, pem: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.arg("x509").args(args);
    if let Some(f) = file {
        cmd.arg("-in").arg(f);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(p) = pem {
        stdin.write_all(p.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn file_serial(cert: &Path) -> String {
    x509(&["-serial", "-noout"], Some(cert), None)
}

/// The certificate's notAfter as unix seconds (openssl's date, converted by GNU date).
fn not_after(cert: &Path) -> f64 {
    let end = x509(&["-enddate", "-noout"], Some(cert), None);
    let date = end.strip_prefix("notAfter=").expect("notAfter=");
    let out = Command::new("date")
        .args(["-u", "-d", date, "+%s"])
        .output()
        .expect("run date");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("date of {date:?}: {e}"))
}

/// Polls `f` until it gives `want` (bounded); returns the last value.
fn until(within: Duration, want: &str, f: impl Fn() -> String) -> String {
    let deadline = Instant::now() + within;
    loop {
        let got = f();
        if got == want || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(ms(50));
    }
}

#[test]
fn sighup_serves_the_new_certificate_to_new_handshakes_and_open_connections_go_on() {
    let s = Setup::new("sighup", "0");
    let old = file_serial(&s.live.cert);
    assert!(old.starts_with("serial="), "{old}");
    assert_eq!(s.served_serial(), old);
    let mut open = s.connect();
    assert_eq!(open.exchange(GET).expect("before").status, 200);

    let second = s.certs.leaf("second", NAMES);
    let new = file_serial(&second.cert);
    assert_ne!(new, old);
    s.replace_with(&second);
    assert_eq!(
        s.served_serial(),
        old,
        "nothing is reloaded without a signal"
    );
    support::sys::signal(s.proxy.pid(), libc::SIGHUP);
    let line = s
        .proxy
        .wait_stderr(ms(5000), "certificates reloaded for ")
        .expect("a `certificates reloaded` line");
    assert!(line.contains("127.0.0.1:0"), "{line}");
    assert_eq!(
        s.served_serial(),
        new,
        "a new handshake gets the new certificate"
    );
    let r = open
        .exchange(GET)
        .expect("the open connection after the reload");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(s.connect().exchange(GET).expect("new").status, 200);
    // Three handshakes before the reload and two after, all on the listener as written: the
    // reload rebuilt its acceptor and kept its counts.
    let total = "shardgate_tls_handshakes_total";
    let labels = [("listener", "127.0.0.1:0"), ("result", "tls1.3")];
    scrape_until(&s.proxy, ms(5000), "five handshakes", total, |m| {
        m.sum(total, &labels) == 5.0
    });
}

/// The subject of the certificate a new handshake on `addr` gets (`subject=CN = …`).
fn served_subject(addr: SocketAddr) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-showcerts"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let pem = String::from_utf8_lossy(&out.stdout).to_string();
    x509(&["-subject", "-noout"], None, Some(&pem))
}

#[test]
fn two_listeners_written_port_0_each_serve_their_own_certificate_across_a_reload() {
    let certs = Certs::new("port0");
    let (one, two) = (
        certs.leaf("one", &["one.test"]),
        certs.leaf("two", &["two.test"]),
    );
    let up = Upstream::fixed("ok");
    let listener = |l: &Leaf| {
        format!(
            "[[listeners]]\naddr = \"127.0.0.1:0\"\ntls = {{ certificates = [{{ cert = {:?}, key = {:?} }}] }}\n",
            l.cert(),
            l.key()
        )
    };
    let text = format!(
        "upstreams = [\"{}\"]\n\n{}\n{}",
        up.addr,
        listener(&one),
        listener(&two)
    );
    let file = temp_file("port0", &text);
    let proxy = Proxy::start(&["--config", file.path()]);
    assert_eq!(proxy.addrs.len(), 2, "{:?}", proxy.addrs);
    assert_ne!(proxy.addrs[0], proxy.addrs[1]);
    let subjects = || {
        proxy
            .addrs
            .iter()
            .map(|a| served_subject(*a))
            .collect::<Vec<_>>()
    };
    let want = ["subject=CN = one.test", "subject=CN = two.test"];
    assert_eq!(subjects(), want);
    // A reload keeps each one's own listener, and each takes its own new certificates.
    let r = admin(&proxy, "POST", "/reload");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(subjects(), want);
    let three = certs.leaf("three", &["three.test"]);
    std::fs::write(
        &file.0,
        text.replace(two.cert(), three.cert())
            .replace(two.key(), three.key()),
    )
    .unwrap();
    let r = admin(&proxy, "POST", "/reload");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        subjects(),
        ["subject=CN = one.test", "subject=CN = three.test"]
    );
}

#[test]
fn a_broken_new_certificate_keeps_the_old_one_serving() {
    let s = Setup::new("broken", "0");
    let old = file_serial(&s.live.cert);
    // A certificate whose key is not the one beside it, then a file that is no PEM at all.
    let other = s.certs.leaf("other", NAMES);
    std::fs::copy(&other.cert, &s.live.cert).unwrap();
    support::sys::signal(s.proxy.pid(), libc::SIGHUP);
    let line = s
        .proxy
        .wait_stderr(
            ms(5000),
            "reload failed, still serving the previous config: ",
        )
        .expect("a `reload failed` line");
    let want = format!(
        "{}: key does not match the certificate in {}",
        s.live.key(),
        s.live.cert()
    );
    assert!(line.contains(&want), "{line}");
    assert_eq!(s.served_serial(), old);

    std::fs::write(&s.live.cert, "not a certificate\n").unwrap();
    support::sys::signal(s.proxy.pid(), libc::SIGHUP);
    let said =
        |l: &str| l.starts_with("reload failed") && l.contains(&format!("{}: ", s.live.cert()));
    assert!(
        s.proxy.stderr.wait(ms(5000), said).is_some(),
        "{:?}",
        s.proxy.stderr_lines()
    );
    assert_eq!(s.served_serial(), old);
    assert_eq!(s.connect().exchange(GET).expect("after").status, 200);
    assert!(
        !s.proxy
            .stderr_lines()
            .iter()
            .any(|l| l.starts_with("certificates reloaded")),
        "{:?}",
        s.proxy.stderr_lines()
    );
}

#[test]
fn replaced_files_are_served_without_a_signal() {
    let s = Setup::new("watch", "200ms");
    let old = file_serial(&s.live.cert);
    let mut open = s.connect();
    assert_eq!(open.exchange(GET).expect("before").status, 200);
    let warned = |l: &str| l.starts_with(&format!("warning: {}: certificate for", s.live.cert()));
    assert!(
        s.proxy.stderr.wait(ms(100), warned).is_some(),
        "a 2-day certificate is warned about at start"
    );

    let second = s.certs.leaf("second", NAMES);
    let new = file_serial(&second.cert);
    s.replace_with(&second);
    let got = until(ms(5000), &new, || s.served_serial());
    assert_eq!(
        got, new,
        "the new certificate within a few intervals, no signal"
    );
    assert_ne!(new, old);
    assert!(
        s.proxy.stderr.wait_n(ms(2000), 2, warned),
        "the expiry warning again at the watch's reload: {:?}",
        s.proxy.stderr_lines()
    );
    assert_eq!(open.exchange(GET).expect("open, after").status, 200);

    // A broken file: said once with its name, the certificate before it serves on.
    std::fs::write(&s.live.cert, "-----BEGIN CERTIFICATE-----\ntruncated").unwrap();
    let failed = |l: &str| {
        l.starts_with("certificate reload failed, still serving the previous certificates: ")
            && l.contains(&format!("{}: ", s.live.cert()))
    };
    assert!(
        s.proxy.stderr.wait(ms(5000), failed).is_some(),
        "{:?}",
        s.proxy.stderr_lines()
    );
    assert_eq!(s.served_serial(), new);
    // Mended: the next change reloads, and the broken one was said only once meanwhile.
    let third = s.certs.leaf("third", NAMES);
    s.replace_with(&third);
    let want = file_serial(&third.cert);
    assert_eq!(until(ms(5000), &want, || s.served_serial()), want);
    let said = s.proxy.stderr_lines().iter().filter(|l| failed(l)).count();
    assert_eq!(said, 1, "{:?}", s.proxy.stderr_lines());
}

#[test]
fn the_expiry_metric_is_each_certificates_not_after() {
    let s = Setup::new("expiry", "0");
    const GAUGE: &str = "shardgate_tls_certificate_expiry_timestamp_seconds";
    let labels = [("listener", "127.0.0.1:0"), ("name", "localhost")];
    let m = scrape(&s.proxy);
    assert_eq!(m.one(GAUGE, &labels), not_after(&s.live.cert));
    assert_eq!(m.families.get(GAUGE).map(|f| f.1.as_str()), Some("gauge"));

    let later = s.certs.leaf_for_days("later", NAMES, 30);
    s.replace_with(&later);
    support::sys::signal(s.proxy.pid(), libc::SIGHUP);
    s.proxy
        .wait_stderr(ms(5000), "certificates reloaded for ")
        .expect("a `certificates reloaded` line");
    let want = not_after(&later.cert);
    assert!(want > not_after(&s.certs.dir.join("first.pem")));
    assert_eq!(scrape(&s.proxy).one(GAUGE, &labels), want);
}

#[test]
fn a_plain_proxy_publishes_no_certificate_expiry() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(&[up.addr], &[]);
    let m = scrape(&proxy);
    assert!(!m
        .families
        .contains_key("shardgate_tls_certificate_expiry_timestamp_seconds"));
}
