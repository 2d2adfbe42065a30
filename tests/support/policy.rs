//! Helpers for the traffic-policy tests (routing, balancing, rate limits, breakers, health checks,
//! retries, limits): clients bound to a chosen loopback source address, and `Backend`, a scripted
//! upstream that names itself in every answer and whose behaviour the test turns while it runs
//! (status of normal requests, status of health probes, holding requests at a gate, a delay, and
//! being killed: listener closed and every connection shut down). A backend keeps its own event
//! log (probe or request, when, which status) so tests can tell probes from traffic and order them.

use super::compose::response;
use super::message::Response;
use super::upstream::{Peer, Upstream};
use super::wire::{Conn, WireError};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The header every backend answer carries, naming the backend.
pub const ENDPOINT: &str = "x-endpoint";

/// 127.0.0.n
pub fn lo(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A client connection from `src` (any 127.a.b.c is a local address on Linux) to `to`.
pub fn connect_from(src: IpAddr, to: SocketAddr) -> Conn {
    try_connect_from(src, to).unwrap_or_else(|e| panic!("connect {src} -> {to}: {e}"))
}

pub fn try_connect_from(src: IpAddr, to: SocketAddr) -> std::io::Result<Conn> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    s.bind(&SocketAddr::new(src, 0).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(Conn::new(s.into()))
}

/// Sends `req` on a new connection from `src` and reads the answer.
pub fn fetch_from(src: IpAddr, to: SocketAddr, req: &[u8]) -> Result<Response, WireError> {
    let mut c = try_connect_from(src, to).map_err(WireError::Io)?;
    c.send(req).map_err(WireError::Io)?;
    c.read_response()
}

/// Sends `req` on a new connection from 127.0.0.1 and reads the answer (a failure panics).
pub fn fetch(to: SocketAddr, req: &[u8]) -> Response {
    let mut c = Conn::connect(to);
    c.exchange(req)
}

/// The backend that answered (its `X-Endpoint`), or `-STATUS` for an answer no backend gave.
pub fn who(r: &Response) -> String {
    match r.header(ENDPOINT) {
        Some(e) => e.to_string(),
        None => format!("-{}", r.status),
    }
}

/// Polls `f` every 10 ms until it returns `Some`, or panics with `what` after `within`.
pub fn poll<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {within:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// One thing a backend saw.
#[derive(Clone, Debug)]
pub struct Event {
    pub at: Instant,
    /// A health probe (`User-Agent: shardgate-health`), else a proxied request.
    pub probe: bool,
    /// The status the backend answered with.
    pub status: u16,
    pub target: String,
}

/// A latch requests can be held at until the test opens it.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    pub fn close(&self) {
        *self.open.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }

    /// Waits until open, at most `max` (a test that forgets to open it does not hang).
    pub fn wait(&self, max: Duration) {
        let deadline = Instant::now() + max;
        let mut g = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while !*g {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            g = self
                .cv
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// What a running backend does; changed by the test at any time.
pub struct Knobs {
    pub name: String,
    /// Status of proxied requests (200 by default).
    pub status: AtomicU16,
    /// Status of health probes (200 by default).
    pub health: AtomicU16,
    /// Delay before answering a proxied request, in ms.
    pub delay_ms: AtomicU64,
    /// Hold proxied requests at `gate` until it opens.
    pub hold: AtomicBool,
    pub gate: Gate,
    killed: AtomicBool,
    events: Mutex<Vec<Event>>,
    streams: Mutex<Vec<TcpStream>>,
}

impl Knobs {
    fn events(&self) -> MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A named upstream: answers `STATUS` with `X-Endpoint: NAME` and the body `NAME`.
pub struct Backend {
    pub addr: SocketAddr,
    pub knobs: Arc<Knobs>,
    up: Option<Upstream>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Backend::start_on(name, TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// A backend on a listener the test bound (a given 127.0.0.x address and port).
    pub fn start_on(name: &str, listener: TcpListener) -> Backend {
        let knobs = Arc::new(Knobs {
            name: name.to_string(),
            status: AtomicU16::new(200),
            health: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            hold: AtomicBool::new(false),
            gate: Gate::default(),
            killed: AtomicBool::new(false),
            events: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
        });
        let k = knobs.clone();
        let up = Upstream::start_on(listener, move |p| serve(&k, p));
        Backend {
            addr: up.addr,
            knobs,
            up: Some(up),
        }
    }

    /// A backend whose proxied requests get `status`.
    pub fn with_status(name: &str, status: u16) -> Backend {
        let b = Backend::start(name);
        b.set_status(status);
        b
    }

    pub fn name(&self) -> &str {
        &self.knobs.name
    }

    pub fn set_status(&self, s: u16) {
        self.knobs.status.store(s, Ordering::SeqCst);
    }

    pub fn set_health(&self, s: u16) {
        self.knobs.health.store(s, Ordering::SeqCst);
    }

    pub fn set_delay(&self, d: Duration) {
        self.knobs
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Holds every proxied request until `release`.
    pub fn hold(&self) {
        self.knobs.gate.close();
        self.knobs.hold.store(true, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.knobs.hold.store(false, Ordering::SeqCst);
        self.knobs.gate.open();
    }

    pub fn events(&self) -> Vec<Event> {
        self.knobs.events().clone()
    }

    /// Proxied requests received (probes excluded), including held ones.
    pub fn hits(&self) -> usize {
        self.knobs.events().iter().filter(|e| !e.probe).count()
    }

    /// Health probes received.
    pub fn probes(&self) -> usize {
        self.knobs.events().iter().filter(|e| e.probe).count()
    }

    /// The upstream's own record (requests as received, malformed-HTTP checks).
    pub fn upstream(&self) -> &Upstream {
        self.up.as_ref().expect("backend not killed")
    }

    /// Stops the backend: its listener closes (connects are refused) and every connection the
    /// proxy has to it is shut down.
    pub fn kill(&mut self) {
        self.knobs.killed.store(true, Ordering::SeqCst);
        drop(self.up.take());
        for s in self
            .knobs
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.release();
        if let Ok(mut streams) = self.knobs.streams.lock() {
            for s in streams.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

fn serve(k: &Arc<Knobs>, p: &mut Peer) {
    if let Ok(s) = p.conn.stream.try_clone() {
        k.streams.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }
    p.conn.set_timeout(Duration::from_secs(20));
    while let Some(req) = p.next_request() {
        if k.killed.load(Ordering::SeqCst) {
            p.reset_on_close();
            return;
        }
        let probe = req.header("user-agent") == Some("shardgate-health");
        let status = if probe {
            k.health.load(Ordering::SeqCst)
        } else {
            k.status.load(Ordering::SeqCst)
        };
        k.events().push(Event {
            at: Instant::now(),
            probe,
            status,
            target: req.target.clone(),
        });
        if !probe {
            if k.hold.load(Ordering::SeqCst) {
                k.gate.wait(Duration::from_secs(15));
            }
            let delay = k.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                thread::sleep(Duration::from_millis(delay));
            }
        }
        let name = k.name.as_bytes();
        if !p.write(&response(status, &[("X-Endpoint", &k.name)], name)) {
            return;
        }
    }
}

/// Counts answers by `who`.
pub fn tally<'a>(
    rs: impl IntoIterator<Item = &'a Response>,
) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in rs {
        *m.entry(who(r)).or_insert(0) += 1;
    }
    m
}
