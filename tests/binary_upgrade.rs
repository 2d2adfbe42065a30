//! Zero-downtime binary upgrade (`--upgrade`, SIGUSR2, `--upgrade-socket`): a second instance of
//! the binary takes the running one's listening sockets over the upgrade socket and serves them;
//! only then does the old one drain and exit 0. Under a bounded load loop (keep-alive and
//! new-connection clients) no request fails and no connection is refused or reset, across an
//! upgrade with the same shard count, 2 → 1 and 1 → 2 shards, and one started by SIGUSR2; HTTPS
//! and HTTP/2 clients (GOAWAY, then the new process) see no failure either. A new
//! process with an invalid config, or one that fails after taking the sockets, leaves the old one
//! serving; a second upgrade while one is under way is refused.

mod support;

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::admin::{temp_path, wait_log_lines};
use support::policy::connect_from;
use support::*;

/// What the load loop saw.
#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    /// A reused keep-alive connection closed by the old process's drain before any byte of the
    /// answer (the request was sent as the drain closed it): retried on a new connection, as
    /// HTTP clients do for idempotent requests (RFC 9112 §9.3.1).
    retried: u64,
    failed: Vec<String>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.ok += o.ok;
        self.retried += o.retried;
        self.failed.extend(o.failed);
    }

    /// No request failed and none had to be retried (no keep-alive connection was closed under
    /// its client); at least `min_ok` were answered.
    fn assert_clean(&self, min_ok: u64) {
        assert!(self.failed.is_empty(), "failed requests: {:?}", self.failed);
        assert!(self.ok >= min_ok, "the load ran: {self:?}");
        assert_eq!(
            self.retried, 0,
            "a connection closed under its client: {self:?}"
        );
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: shardgate.test\r\n\r\n";
const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: shardgate.test\r\nConnection: close\r\n\r\n";
/// Each load thread stops after this many requests at the latest.
const MAX_PER_THREAD: u64 = 50_000;

/// A bounded load loop on `addr`: keep-alive clients and clients with a new connection per
/// request, until `stop`.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for i in 0..6 {
            let stop = stop.clone();
            let keep_alive = i % 2 == 0;
            threads.push(std::thread::spawn(move || client(addr, keep_alive, &stop)));
        }
        Load { stop, threads }
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut t = Tally::default();
        for h in self.threads {
            t.add(h.join().expect("load thread"));
        }
        t
    }
}

fn client(addr: SocketAddr, keep_alive: bool, stop: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<(Conn, u64)> = None;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) && n < MAX_PER_THREAD {
        n += 1;
        let (c, served) = match conn.take() {
            Some(c) => c,
            None => match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => (Conn::new(s), 0),
                Err(e) => {
                    t.failed.push(format!("connect: {e}"));
                    continue;
                }
            },
        };
        let mut c = c;
        let req = if keep_alive { GET } else { GET_CLOSE };
        let res = c.send(req).map_err(|e| e.to_string()).and_then(|()| {
            c.read_response()
                .map_err(|e| (e.to_string(), e))
                .map_err(|x| {
                    // A reused connection the drain closed before any answer byte: retry.
                    if served > 0 && x.1.is_disconnect() && x.1.got() == 0 {
                        "retry".to_string()
                    } else {
                        x.0
                    }
                })
        });
        match res {
            Ok(r) if r.status == 200 && r.text() == "ok" => {
                t.ok += 1;
                let close = r
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if keep_alive && !close {
                    conn = Some((c, served + 1));
                }
            }
            Ok(r) => t.failed.push(format!("status {} {:?}", r.status, r.text())),
            Err(e) if e == "retry" => t.retried += 1,
            Err(e) if served > 0 && e.contains("Broken pipe") => t.retried += 1,
            Err(e) => t.failed.push(e),
        }
    }
    t
}

/// The flags of one instance: a fixed-port listener (the old process's port), the upstream and
/// the upgrade socket.
fn args<'a>(listen: &'a str, up: &'a str, socket: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--listen",
        listen,
        "--upstream",
        up,
        "--upgrade-socket",
        socket,
        "--drain-timeout",
        "20s",
        // Ample on a loaded CI machine: a keep-alive client's next request comes within it.
        "--drain-idle-grace",
        "1s",
    ];
    a.extend(extra);
    a
}

/// Runs load on the old process, upgrades it to a new one with `new_extra` flags, and checks that
/// nothing failed and the old process drained and exited 0. Returns the new process.
fn upgrade_under_load(old_extra: &[&str], new_extra: &[&str]) -> (Proxy, Tally) {
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade", "sock");
    let socket = sock.path().to_string();
    let mut old = Proxy::start(&args("127.0.0.1:0", &upstream, &socket, old_extra));
    let listen = old.addr.to_string();
    let load = Load::start(old.addr);
    std::thread::sleep(Duration::from_millis(300));
    let began = Instant::now();
    let mut new_args = args(&listen, &upstream, &socket, new_extra);
    new_args.push("--upgrade");
    let new = Proxy::start_upgrade(&new_args);
    let status = old
        .wait_exit(Duration::from_secs(25))
        .expect("the old process exits after its drain");
    let took = began.elapsed();
    assert!(
        status.success(),
        "the old process drained and exited 0: {status:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let tally = load.finish();
    eprintln!("upgrade under load: {tally:?}; old process gone {took:?} after the new one started");
    tally.assert_clean(101);
    assert!(
        old.stderr_lines()
            .iter()
            .any(|l| l.contains("is ready: draining")),
        "{:?}",
        old.stderr_lines()
    );
    let mut c = new.connect();
    assert_eq!(c.exchange(GET).text(), "ok", "the new process serves");
    drop(sock);
    (new, tally)
}

#[test]
fn an_upgrade_under_load_fails_no_request_and_the_old_process_exits_0() {
    upgrade_under_load(&["--shards", "2"], &["--shards", "2"]);
}

#[test]
fn the_shard_count_can_change_across_upgrades() {
    upgrade_under_load(&["--shards", "2"], &["--shards", "1"]);
    upgrade_under_load(&["--shards", "1"], &["--shards", "2"]);
}

/// SIGUSR2 makes the running process start its own binary with `--upgrade`; the new one takes
/// over and the old one drains and exits 0, with no request lost under load.
#[test]
fn sigusr2_starts_the_new_binary_which_takes_over() {
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-usr2", "sock");
    let mut old = Proxy::start(&args("127.0.0.1:0", &upstream, sock.path(), &[]));
    let load = Load::start(old.addr);
    std::thread::sleep(Duration::from_millis(200));
    support::sys::signal(old.pid(), libc::SIGUSR2);
    let status = old
        .wait_exit(Duration::from_secs(25))
        .expect("the old process exits");
    assert!(status.success(), "{status:?}");
    let started = old
        .stderr_lines()
        .iter()
        .find_map(|l| l.strip_prefix("SIGUSR2: started ").map(str::to_string))
        .expect("the old process says which process it started");
    let pid: i32 = started
        .rsplit_once("(pid ")
        .and_then(|(_, p)| p.trim_end_matches(')').parse().ok())
        .expect("a pid");
    std::thread::sleep(Duration::from_millis(200));
    let tally = load.finish();
    // The new process serves the same address (its output goes where the old one's went).
    let mut c = Conn::connect(old.addr);
    assert_eq!(c.exchange(GET).text(), "ok");
    support::sys::signal(pid as u32, libc::SIGKILL);
    tally.assert_clean(101);
}

/// A new process whose config is invalid exits 2 before it asks for anything; one that fails
/// after taking the sockets (its admin address is held by another socket) exits too, and the old process logs why
/// and serves on without a failed request.
#[test]
fn a_failed_new_process_leaves_the_old_one_serving() {
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-fail", "sock");
    let old = Proxy::start(&args("127.0.0.1:0", &upstream, sock.path(), &[]));
    let listen = old.addr.to_string();
    let load = Load::start(old.addr);
    let mut bad = args(
        &listen,
        &upstream,
        sock.path(),
        &["--upgrade", "--shards", "0"],
    );
    let r = support::run(&bad);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    // Admin on an address another socket holds: the new one fails after taking the sockets.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = held.local_addr().unwrap().to_string();
    bad = args(
        &listen,
        &upstream,
        sock.path(),
        &["--upgrade", "--admin", &admin],
    );
    let r = support::run(&bad);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("upgrade: took 1 listening addresses"),
        "{}",
        r.stderr
    );
    old.wait_stderr(Duration::from_secs(5), "upgrade by process")
        .filter(|l| l.contains("before it was ready; still serving"))
        .expect("the old process says the upgrade failed");
    std::thread::sleep(Duration::from_millis(200));
    let tally = load.finish();
    tally.assert_clean(0);
    assert!(
        !old.stderr_lines().iter().any(|l| l.contains("draining")),
        "{:?}",
        old.stderr_lines()
    );
    let mut c = old.connect();
    assert_eq!(c.exchange(GET).text(), "ok");
}

/// While one new process holds the sockets and is starting, a second is refused with a clear
/// message; once the first gives up, an upgrade works again.
#[test]
fn a_second_upgrade_while_one_is_under_way_is_refused() {
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-busy", "sock");
    let mut old = Proxy::start(&args("127.0.0.1:0", &upstream, sock.path(), &[]));
    let listen = old.addr.to_string();
    // A client of the upgrade socket that takes the sockets and never says ready.
    let mut first = UnixStream::connect(sock.path()).expect("the upgrade socket listens");
    let mut greeting = [0u8; 18];
    first.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"shardgate-upgrade ");
    old.wait_stderr(Duration::from_secs(5), "upgrade: process")
        .expect("the old process saw the first upgrade");
    let second = args(&listen, &upstream, sock.path(), &["--upgrade"]);
    let r = support::run(&second);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("refused the upgrade: another upgrade is under way"),
        "{}",
        r.stderr
    );
    drop(first);
    old.wait_stderr(Duration::from_secs(5), "upgrade by process")
        .expect("the first upgrade failed");
    let mut c = old.connect();
    assert_eq!(c.exchange(GET).text(), "ok", "still serving");
    let new = Proxy::start_upgrade(&second);
    assert!(old
        .wait_exit(Duration::from_secs(25))
        .expect("exits")
        .success());
    let mut c = new.connect();
    assert_eq!(c.exchange(GET).text(), "ok");
}

/// With `--steer client-ip`, the kernel's steering program stays with the sockets: every client
/// address is served by the same shard number before and after the upgrade.
#[test]
fn with_steering_each_client_keeps_its_shard_number() {
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-steer", "sock");
    let (log_a, log_b) = (temp_path("steer-a", "log"), temp_path("steer-b", "log"));
    let steer = ["--shards", "2", "--steer", "client-ip", "--access-log"];
    let mut a = steer.to_vec();
    a.push(log_a.path());
    let mut old = Proxy::start(&args("127.0.0.1:0", &upstream, sock.path(), &a));
    let sources: Vec<IpAddr> = (2..18).map(|i| IpAddr::from([127, 0, 0, i])).collect();
    let shards_of = |addr: SocketAddr, log: &TempFile| -> Vec<(String, u64)> {
        for &src in &sources {
            let mut c = connect_from(src, addr);
            assert_eq!(c.exchange(GET_CLOSE).text(), "ok");
        }
        let lines = wait_log_lines(
            std::path::Path::new(log.path()),
            sources.len(),
            Duration::from_secs(5),
        );
        let mut seen: Vec<(String, u64)> = lines
            .iter()
            .map(|l| {
                let client = l["client"].as_str().unwrap_or_default();
                let ip = client
                    .rsplit_once(':')
                    .map_or(client, |(ip, _)| ip)
                    .to_string();
                (ip, l["shard"].as_u64().expect("a shard field"))
            })
            .collect();
        seen.sort();
        seen
    };
    let before = shards_of(old.addr, &log_a);
    assert!(
        before.iter().any(|(_, s)| *s == 0) && before.iter().any(|(_, s)| *s == 1),
        "16 client addresses use both shards: {before:?}"
    );
    let listen = old.addr.to_string();
    let mut b = steer.to_vec();
    b.push(log_b.path());
    b.push("--upgrade");
    let new = Proxy::start_upgrade(&args(&listen, &upstream, sock.path(), &b));
    assert!(old
        .wait_exit(Duration::from_secs(25))
        .expect("exits")
        .success());
    let after = shards_of(new.addr, &log_b);
    assert_eq!(
        before, after,
        "each client address on the same shard number"
    );
}

/// Under systemd (`Type=notify`, `NotifyAccess=main`) only the main process may speak: the old
/// one says `READY=1` at start, names its successor with `MAINPID=` and `READY=1` once that one is
/// ready, and says nothing of stopping while it drains (the service goes on); the new one says
/// nothing until it stops for real (`STOPPING=1` on SIGTERM).
#[test]
fn systemd_hears_the_new_main_pid_from_the_old_process_and_no_stop() {
    use std::os::unix::net::UnixDatagram;
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-notify", "sock");
    let notify_path = temp_path("notify", "sock");
    let notify = UnixDatagram::bind(notify_path.path()).expect("bind the notify socket");
    let env = [("NOTIFY_SOCKET", Some(notify_path.path()))];
    let mut old = Proxy::start_with_env(&args("127.0.0.1:0", &upstream, sock.path(), &[]), &env);
    let next = |timeout: Duration| -> Option<String> {
        notify.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 256];
        let n = notify.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    assert_eq!(next(Duration::from_secs(10)).as_deref(), Some("READY=1"));
    support::sys::signal(old.pid(), libc::SIGUSR2);
    let status = old
        .wait_exit(Duration::from_secs(25))
        .expect("the old process exits after its drain");
    assert!(status.success(), "{status:?}");
    let pid: u32 = old
        .stderr_lines()
        .iter()
        .find_map(|l| l.strip_prefix("SIGUSR2: started ").map(str::to_string))
        .and_then(|s| {
            let (_, p) = s.rsplit_once("(pid ")?;
            p.trim_end_matches(')').parse().ok()
        })
        .expect("the old process says which process it started");
    // Everything the old process said by the time it exited, in order: nothing else.
    let mut said = Vec::new();
    while let Some(m) = next(Duration::from_millis(50)) {
        said.push(m);
    }
    assert_eq!(said, vec![format!("MAINPID={pid}\nREADY=1")]);
    let mut c = Conn::connect(old.addr);
    assert_eq!(c.exchange(GET).text(), "ok", "the new process serves");
    drop(c);
    support::sys::signal(pid, libc::SIGTERM);
    assert_eq!(
        next(Duration::from_secs(10)).as_deref(),
        Some("STOPPING=1"),
        "the new process is the service now: its stop is the service's"
    );
    // It is not our child (the old process started it): wait for it to be gone by its pid (or a
    // zombie, if whoever adopted it does not reap).
    let deadline = Instant::now() + Duration::from_secs(25);
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    };
    while running() {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whoever can connect to the upgrade socket takes the listening sockets: the socket file is
/// mode 0600, and a process of another user (here `nobody`, after the test opens the mode up) is
/// refused by its credentials and gets no descriptor.
#[test]
fn only_the_same_user_or_root_may_take_the_sockets() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-perm", "sock");
    let old = Proxy::start(&args("127.0.0.1:0", &upstream, sock.path(), &[]));
    let mode = std::fs::metadata(sock.path())
        .expect("the socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket file mode {mode:o}");
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the other-user half needs setpriv as root (CI runs it)");
        return;
    }
    std::fs::set_permissions(sock.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(
            "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.connect(sys.argv[1])\n\
             m,anc,_,_=s.recvmsg(256,256)\n\
             print(m.decode().strip(), len(anc))",
        )
        .arg(sock.path())
        .output()
        .expect("setpriv (util-linux) and Debian's /usr/bin/python3 (readable by nobody)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("busy refused: process")
            && said.contains("uid 65534")
            && said.trim_end().ends_with(" 0"),
        "{said:?} {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = old.connect();
    assert_eq!(c.exchange(GET).text(), "ok", "the old process serves on");
}

/// The admin listener is handed over with the others: with a fixed admin address, a client
/// polling `/healthz` through the upgrade is never refused and always hears 200 (the old process
/// stops accepting once its successor is ready, and a call it took just before is not told the
/// service is going away); afterwards the new process answers on the same address.
#[test]
fn the_admin_listener_is_handed_over_and_never_refuses() {
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-admin", "sock");
    let admin = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let extra = ["--admin", admin.as_str()];
    let mut old = Proxy::start(&args("127.0.0.1:0", &upstream, sock.path(), &extra));
    let listen = old.addr.to_string();
    let admin_addr: SocketAddr = admin.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut bad) = (0u64, Vec::new());
            let mut n = 0;
            let t0 = Instant::now();
            while !stop.load(Ordering::SeqCst) && n < 20_000 {
                n += 1;
                match admin_get(admin_addr, "/healthz") {
                    Ok(s) if s.starts_with("HTTP/1.1 200") => ok += 1,
                    Ok(s) => bad.push(s.lines().next().unwrap_or("").to_string()),
                    Err(e) => bad.push(format!("{e} at {:?}", t0.elapsed())),
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (ok, bad)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut new_args = args(&listen, &upstream, sock.path(), &extra);
    new_args.push("--upgrade");
    let new = Proxy::start_upgrade(&new_args);
    let status = old
        .wait_exit(Duration::from_secs(25))
        .expect("the old process exits after its drain");
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (ok, bad) = poller.join().unwrap();
    eprintln!(
        "/healthz through the upgrade: {ok} answered 200, {} not",
        bad.len()
    );
    assert!(bad.is_empty(), "{bad:?}");
    assert!(ok > 50, "the poller ran: {ok}");
    let after = admin_get(admin_addr, "/readyz").expect("the new process answers");
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
    assert_eq!(new.admin, Some(admin_addr), "{:?}", new.stdout.all());
}

/// One admin request on a new connection: the whole answer, or the connection error.
fn admin_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::Write;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    if out.is_empty() {
        return Err(std::io::Error::other("closed without an answer"));
    }
    Ok(out)
}

/// Each socket comes with what the old process served on it; a new config that serves the
/// address differently (here: PROXY protocol first) is followed, and the new process says so.
#[test]
fn the_new_process_says_when_it_serves_an_address_differently() {
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-serves", "sock");
    let mut old = Proxy::start(&args("127.0.0.1:0", &upstream, sock.path(), &[]));
    let listen = old.addr.to_string();
    let mut new_args = args(&listen, &upstream, sock.path(), &["--proxy-protocol"]);
    new_args.push("--upgrade");
    let new = Proxy::start_upgrade(&new_args);
    assert!(old
        .wait_exit(Duration::from_secs(25))
        .is_some_and(|s| s.success()));
    let want = format!("upgrade: {listen} was served as plain, now as proxy");
    assert!(
        new.stderr_lines().contains(&want),
        "{want:?} not in {:?}",
        new.stderr_lines()
    );
    let mut c = new.connect();
    let proxied = format!(
        "PROXY TCP4 192.0.2.7 {} 4711 {}\r\n{}",
        old.addr.ip(),
        old.addr.port(),
        String::from_utf8_lossy(GET)
    );
    assert_eq!(c.exchange(proxied.as_bytes()).text(), "ok");
}

/// HTTPS listeners are handed over like plain ones: TLS clients (a new connection per request,
/// and keep-alive ones) see no failure across an upgrade, and the new process serves the
/// certificate its own config names (here a renewed one).
#[test]
fn https_clients_see_no_failure_across_an_upgrade() {
    use support::certs::Certs;
    use support::tls_client::TlsConn;
    let certs = Certs::new("upgrade-tls");
    let before = certs.leaf("before", &["localhost"]);
    let renewed = certs.leaf("renewed", &["localhost"]);
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-tls", "sock");
    let tls = |leaf: &support::certs::Leaf, listen: &str| -> Vec<String> {
        [
            "--listen-tls",
            listen,
            "--tls-cert",
            leaf.cert(),
            "--tls-key",
            leaf.key(),
        ]
        .map(String::from)
        .to_vec()
    };
    let mut old_args: Vec<String> = args("127.0.0.1:0", &upstream, sock.path(), &[])
        .into_iter()
        .map(String::from)
        .collect();
    old_args.extend(tls(&before, "127.0.0.1:0"));
    let mut old = Proxy::start(&old_args);
    let https = old.addrs[1];
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, ca) = (stop.clone(), certs.ca().to_string());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, Vec::new());
                let mut conn: Option<TlsConn> = None;
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && n < 5_000 {
                    n += 1;
                    let keep = i % 2 == 0;
                    let mut c = match conn.take() {
                        Some(c) => c,
                        None => match TlsConn::connect(https, &ca, "localhost") {
                            Ok(c) => c,
                            Err(e) => {
                                failed.push(format!("connect: {e}"));
                                continue;
                            }
                        },
                    };
                    let req = if keep { GET } else { GET_CLOSE };
                    match c.exchange(req) {
                        Ok(r) if r.status == 200 => {
                            ok += 1;
                            let close = r.head.to_ascii_lowercase().contains("connection: close");
                            if keep && !close {
                                conn = Some(c);
                            }
                        }
                        Ok(r) => failed.push(r.head),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut new_args: Vec<String> = args(&old.addr.to_string(), &upstream, sock.path(), &[])
        .into_iter()
        .map(String::from)
        .collect();
    new_args.extend(tls(&renewed, &https.to_string()));
    new_args.push("--upgrade".into());
    let _new = Proxy::start_upgrade(&new_args);
    let status = old
        .wait_exit(Duration::from_secs(25))
        .expect("the old process exits");
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        let (o, f) = c.join().unwrap();
        ok += o;
        failed.extend(f);
    }
    eprintln!(
        "https through the upgrade: {ok} ok, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(ok > 50, "{ok}");
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &https.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let served = String::from_utf8_lossy(&out.stdout);
    let pem = std::fs::read_to_string(renewed.cert()).unwrap();
    let leaf_pem = pem
        .split("-----END CERTIFICATE-----")
        .next()
        .unwrap()
        .trim();
    assert!(
        served.contains(leaf_pem),
        "the renewed certificate is served: {served}"
    );
}

#[test]
fn http2_clients_see_no_failure_across_an_upgrade() {
    // h2c connections (tests/h2c/load.py: 4 connections, 8 streams open on each) through an
    // upgrade: the old process's drain sends each a graceful GOAWAY; streams up to its last id
    // are answered, and the client moves to the new process for the rest.
    let up = Upstream::fixed("ok");
    let upstream = up.addr.to_string();
    let sock = temp_path("upgrade-h2", "sock");
    let stop = temp_path("upgrade-h2", "stop");
    let mut old = Proxy::start(&args("127.0.0.1:0", &upstream, sock.path(), &["--h2c"]));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2c/load.py");
    let port = old.addr.port().to_string();
    let mut client = std::process::Command::new("python3")
        .args([script, &port, "/", "4", "8", stop.path()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 tests/h2c/load.py");
    // Every connection is open on the old process and has had a response.
    let mut report = std::io::BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut report, &mut line).unwrap();
    assert!(line.contains("ready"), "{line}");
    let listen = old.addr.to_string();
    let mut new_args = args(&listen, &upstream, sock.path(), &["--h2c"]);
    new_args.push("--upgrade");
    let new = Proxy::start_upgrade(&new_args);
    let status = old
        .wait_exit(Duration::from_secs(25))
        .expect("the old process exits after its drain");
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(stop.path(), b"stop").unwrap();
    let mut text = String::new();
    report.read_to_string(&mut text).unwrap();
    let _ = client.wait();
    eprintln!("h2c through the upgrade: {text}");
    let rep: serde_json::Value = serde_json::from_str(text.trim()).expect("a JSON report");
    assert_eq!(rep["failed_count"], 0, "{rep}");
    assert!(rep["ok"].as_u64().unwrap() > 100, "the load ran: {rep}");
    // Every connection open on the old process was told to go (graceful GOAWAY, then the final
    // one), and the clients reconnected to the new process.
    assert!(rep["goaways"].as_u64().unwrap() >= 4, "{rep}");
    assert!(rep["connections"].as_u64().unwrap() >= 8, "{rep}");
    let mut c = new.connect();
    assert_eq!(c.exchange(GET).text(), "ok", "the new process serves");
}
