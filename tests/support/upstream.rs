//! Scripted upstream servers for the tests: a std listener on 127.0.0.1:0 whose accept loop runs in
//! its own thread and hands every connection to a script (a closure) in a thread of its own.
//! Every upstream counts the connections it accepted and the ones the proxy closed, records every
//! byte and every request it received, and checks that what shardgate sent it is well-formed HTTP:
//! a malformed request makes the test fail when the `Upstream` is dropped.

use super::compose::response;
use super::message::{request_framing, request_from_head, Head, Request};
use super::sys;
use super::wire::{Conn, WireError};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Request bodies an upstream keeps (larger ones are counted, not stored).
const KEEP_BODY: usize = 1 << 20;
/// Raw bytes an upstream keeps (the rest is only counted).
const KEEP_BYTES: usize = 1 << 20;

/// What an upstream has seen so far.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Connections accepted.
    pub accepted: usize,
    /// Connections on which the proxy closed or reset its side (read returned EOF/RST).
    pub peer_closed: usize,
    /// Connections whose script finished (the upstream closed its side).
    pub finished: usize,
    /// Complete requests received, in order (bodies capped at 1 MiB, `body_len` is the real size).
    pub requests: Vec<Request>,
    /// Total bytes received and the first MiB of them.
    pub bytes_total: usize,
    pub bytes: Vec<u8>,
    /// Malformed messages received from the proxy.
    pub errors: Vec<String>,
    /// Free-form facts a script records (e.g. a checksum of what it sent).
    pub notes: Vec<String>,
}

struct Shared {
    seen: Mutex<Seen>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    /// The state, even if a panicking test thread poisoned the lock (never panic twice).
    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Seen)) {
        let mut s = self.lock();
        f(&mut s);
        self.changed.notify_all();
    }
}

/// One scripted upstream; stops accepting when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The connection a script works with: a `Conn` whose reads are recorded, plus its accept index.
pub struct Peer {
    pub conn: Conn,
    /// 0 for the first connection this upstream accepted, 1 for the second...
    pub index: usize,
    shared: Arc<Shared>,
}

impl Upstream {
    /// Starts an upstream running `script` once per accepted connection.
    pub fn start(script: impl Fn(&mut Peer) + Send + Sync + 'static) -> Upstream {
        Upstream::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    /// Like `start`, on a listener the test bound (a given 127.0.0.x address and port).
    pub fn start_on(
        listener: TcpListener,
        script: impl Fn(&mut Peer) + Send + Sync + 'static,
    ) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let script = Arc::new(script);
        let sh = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let mut index = 0;
                sh.update(|s| {
                    index = s.accepted;
                    s.accepted += 1;
                });
                let rec = sh.clone();
                let conn = Conn::new(stream).with_recorder(move |b| {
                    rec.update(|s| {
                        s.bytes_total += b.len();
                        let room = KEEP_BYTES.saturating_sub(s.bytes.len());
                        s.bytes.extend_from_slice(&b[..b.len().min(room)]);
                    })
                });
                let mut peer = Peer {
                    conn,
                    index,
                    shared: sh.clone(),
                };
                let script = script.clone();
                thread::spawn(move || {
                    script(&mut peer);
                    let sh = peer.shared.clone();
                    drop(peer);
                    sh.update(|s| s.finished += 1);
                });
            }
        });
        Upstream { addr, shared }
    }

    /// A copy of what the upstream has seen.
    pub fn seen(&self) -> Seen {
        self.shared.lock().clone()
    }

    pub fn accepted(&self) -> usize {
        self.shared.lock().accepted
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    pub fn bytes_total(&self) -> usize {
        self.shared.lock().bytes_total
    }

    /// Waits until `pred` holds (panicking with `what` and the state after `timeout`).
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + timeout;
        let mut s: MutexGuard<Seen> = self.shared.lock();
        loop {
            if pred(&s) {
                return s.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let msg = format!(
                    "upstream {}: timed out after {timeout:?} waiting for {what}; accepted {}, \
                     proxy closed {}, finished {}, {} requests, {} bytes",
                    self.addr,
                    s.accepted,
                    s.peer_closed,
                    s.finished,
                    s.requests.len(),
                    s.bytes_total
                );
                drop(s);
                panic!("{msg}");
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Like `wait_for`, but returns `false` instead of panicking.
    pub fn holds_within(&self, timeout: Duration, pred: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        loop {
            if pred(&s) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    // === canned scripts ===

    /// Answers every request with 200 and `body`, keeping the connection open.
    pub fn fixed(body: &str) -> Upstream {
        let body = body.as_bytes().to_vec();
        Upstream::start(move |p| p.serve(|_| response(200, &[], &body)))
    }

    /// Answers every request with 200 and, as the body, the request head exactly as received.
    pub fn echo_head() -> Upstream {
        Upstream::start(|p| {
            p.serve(|r| response(200, &[("Content-Type", "text/plain")], &r.head.raw))
        })
    }

    /// Answers with the request's body, and its method and target in `X-Seen-Method`/`X-Seen-Target`.
    pub fn echo() -> Upstream {
        Upstream::start(|p| {
            p.serve(|r| {
                response(
                    200,
                    &[("X-Seen-Method", &r.method), ("X-Seen-Target", &r.target)],
                    &r.body,
                )
            })
        })
    }

    /// Answers every request with `body` after `delay`.
    pub fn slow(delay: Duration, body: &str) -> Upstream {
        let body = body.as_bytes().to_vec();
        Upstream::start(move |p| {
            p.serve(|_| {
                thread::sleep(delay);
                response(200, &[], &body)
            })
        })
    }

    /// Reads requests and never answers; notices when the proxy gives up on the connection.
    pub fn hang() -> Upstream {
        Upstream::start(|p| {
            p.conn.set_timeout(Duration::from_secs(30));
            while p.next_request().is_some() {}
        })
    }

    /// Reads one request, writes `bytes` as the whole answer, and closes.
    pub fn raw_reply(bytes: &[u8]) -> Upstream {
        let bytes = bytes.to_vec();
        Upstream::start(move |p| {
            if p.next_request().is_some() {
                p.write(&bytes);
            }
        })
    }

    /// Answers one request per connection with `body` (no `Connection: close`), then closes.
    pub fn close_after_response(body: &str) -> Upstream {
        let body = body.as_bytes().to_vec();
        Upstream::start(move |p| {
            if p.next_request().is_some() {
                p.write(&response(200, &[], &body));
            }
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        let errors = self.shared.lock().errors.clone();
        if !errors.is_empty() && !thread::panicking() {
            panic!(
                "upstream {} received malformed HTTP from the proxy: {errors:?}",
                self.addr
            );
        }
    }
}

// === impl Peer ===

impl Peer {
    /// Reads the next request and records it. `None` when the proxy closed, reset or went quiet
    /// at a message boundary (and a malformed request is recorded as an error).
    pub fn next_request(&mut self) -> Option<Request> {
        let head = self.next_head()?;
        self.finish_request(head)
    }

    /// Reads only the next request head (for scripts that act between head and body).
    pub fn next_head(&mut self) -> Option<Head> {
        match self.conn.read_head() {
            Ok(h) => Some(h),
            Err(e) => {
                self.note_error(e);
                None
            }
        }
    }

    /// Reads the body belonging to `head` and records the whole request.
    pub fn finish_request(&mut self, head: Head) -> Option<Request> {
        let framed = request_from_head(head).and_then(|r| request_framing(&r.head).map(|f| (r, f)));
        let (mut req, framing) = match framed {
            Ok(x) => x,
            Err(why) => {
                self.shared.update(|s| s.errors.push(why));
                return None;
            }
        };
        match self.conn.read_body(framing) {
            Ok(body) => {
                req.body_len = body.data.len();
                req.body = body.data;
                req.trailers = body.trailers;
            }
            Err(e) => {
                self.note_error(e);
                return None;
            }
        }
        let mut stored = req.clone();
        stored.body.truncate(KEEP_BODY);
        self.shared.update(|s| s.requests.push(stored));
        Some(req)
    }

    fn note_error(&mut self, e: WireError) {
        match e {
            WireError::Malformed { .. } => self.shared.update(|s| s.errors.push(e.to_string())),
            WireError::Closed { .. } | WireError::Reset { .. } => {
                self.shared.update(|s| s.peer_closed += 1)
            }
            _ => {}
        }
    }

    /// Answers each request with `reply(request)` until the proxy closes the connection.
    pub fn serve(&mut self, mut reply: impl FnMut(&Request) -> Vec<u8>) {
        while let Some(req) = self.next_request() {
            let bytes = reply(&req);
            if !self.write(&bytes) {
                return;
            }
        }
    }

    /// Writes bytes; `false` if the proxy has gone.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        self.conn.send(bytes).is_ok()
    }

    /// Waits (up to the read timeout) for the proxy to close this connection.
    pub fn wait_close(&mut self) {
        if self.conn.expect_closed(Duration::from_secs(30)).is_ok() {
            self.shared.update(|s| s.peer_closed += 1);
        }
    }

    /// Makes the coming close a TCP reset instead of a FIN: call it, then return from the script.
    pub fn reset_on_close(&mut self) {
        sys::set_linger_zero(&self.conn.stream);
    }

    /// Records a fact for the test to read back from `Seen::notes`.
    pub fn note(&self, fact: String) {
        self.shared.update(|s| s.notes.push(fact));
    }

    /// How many complete requests this upstream has received (all connections).
    pub fn requests_so_far(&self) -> usize {
        self.shared.lock().requests.len()
    }
}

/// An address on 127.0.0.1 with nothing listening (connecting to it is refused).
pub fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
