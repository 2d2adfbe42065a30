//! The admin HTTP listener: one plain std thread (`admin`), off the shards' hot path, serving one
//! connection at a time with blocking std sockets (2 s read and write timeouts, `Connection:
//! close`). It only parses and maps requests; every answer comes from the coordinator thread, asked
//! over a crossbeam channel (`AdminCall`) and awaited for at most 3 s (then 503 "coordinator busy").
//! The coordinator's side, the answers themselves, is `answer.rs` beside this file.
//!
//! | request | ask |
//! |---|---|
//! | `GET`/`HEAD /` | none: the status page (`page.rs`), served by this thread |
//! | `GET`/`HEAD /healthz`, `/readyz`, `/metrics`, `/config`, `/shards`, `/stats.json` | `Healthz` … `StatsJson` |
//! | `POST /drain`, `POST /reload` | `Drain`, `Reload` |
//!
//! With an admin token (`--admin-token`, `admin_token_file`), every request but `GET /` without
//! `Authorization: Bearer <token>` gets 401 (`token.rs` compares in constant time) before anything
//! else is looked at. The token in force is the `TokenSlot`'s as each connection is accepted (a
//! reload that read a rotated token file replaces it).
//!
//! Unknown path → 404; known path, wrong method → 405 with `Allow`; malformed head → 400; head
//! over 8 KiB or 32 headers → 431. A query string is ignored.
//!
//! How the thread ends. crossbeam's `Sender` cannot tell whether its receiver is gone without
//! sending, so the thread does not poll for that between accepts (a timed accept would wake it for
//! nothing): it blocks in `accept`, and ends when
//! - a call finds the coordinator gone (`calls` disconnected): that request gets 503, then the
//!   thread returns; or
//! - the coordinator calls `stop` on a clone of the listener: shutting a listening socket down
//!   makes a blocked `accept` fail at once (EINVAL on Linux), and the thread returns.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender};

pub use token::{Token, TokenSlot};

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;
/// Bytes read and discarded after answering, so unread request bytes do not turn the close into
/// a reset that could destroy the response before the client reads it.
const MAX_DISCARD: usize = 64 * 1024;

/// What the admin thread asks the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Healthz,
    Readyz,
    Metrics,
    Config,
    Shards,
    StatsJson,
    Drain,
    Reload,
}

/// The coordinator's answer, sent as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    /// A `text/plain` reply.
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        let (content_type, body) = ("text/plain; charset=utf-8", body.into());
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// An `application/json` reply.
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        let (content_type, body) = ("application/json", body.into());
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// A 200 reply in the Prometheus text exposition format (`stats::render`'s output).
    pub fn metrics(body: String) -> Reply {
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        Reply {
            status: 200,
            content_type,
            body,
        }
    }
}

/// One request for the coordinator: answer on `reply` (dropping it unanswered gives a 500).
#[derive(Debug)]
pub struct AdminCall {
    pub ask: Ask,
    pub reply: Sender<Reply>,
}

/// Timeouts, apart so tests can shorten them.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Read and write timeout of each admin connection.
    io: Duration,
    /// How long a request waits for the coordinator.
    call: Duration,
}

const LIMITS: Limits = Limits {
    io: Duration::from_secs(2),
    call: Duration::from_secs(3),
};

/// Starts the admin thread on `listener` (made blocking). See the module doc for how it ends.
/// While `token` holds one, every request but `GET /` needs `Authorization: Bearer <token>` (401
/// otherwise). `handed_over`: once set (a successor took this listener in an upgrade, or the
/// process is exiting), the thread stops accepting, so every admin call from then on reaches the
/// new process.
pub fn spawn(
    listener: TcpListener,
    calls: Sender<AdminCall>,
    token: TokenSlot,
    handed_over: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    spawn_with(listener, calls, LIMITS, token, handed_over)
}

/// Ends the admin thread: shuts down the listening socket (pass a `try_clone` of the listener
/// given to `spawn`), which wakes its blocked `accept`. The connection being served, if any, is
/// finished first.
pub fn stop(listener: &TcpListener) -> io::Result<()> {
    socket2::SockRef::from(listener).shutdown(Shutdown::Read)
}

fn spawn_with(
    listener: TcpListener,
    calls: Sender<AdminCall>,
    limits: Limits,
    token: TokenSlot,
    handed_over: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    // Non-blocking: a successor in an upgrade accepts on the same socket, so a connection this
    // thread was woken for may be gone by the time it accepts.
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || serve_all(&listener, &calls, limits, &token, &handed_over))
}

/// How often the admin thread looks whether it was handed over while no call comes.
const HANDED_OVER_CHECK_MS: i32 = 50;

fn serve_all(
    listener: &TcpListener,
    calls: &Sender<AdminCall>,
    limits: Limits,
    token: &TokenSlot,
    handed_over: &AtomicBool,
) {
    use std::os::fd::AsRawFd;
    loop {
        if handed_over.load(Ordering::Acquire) {
            return;
        }
        // A connection queued, or `stop` shut the socket down (accept tells which).
        if !crate::sys::wait_listener(listener.as_raw_fd(), HANDED_OVER_CHECK_MS)
            || handed_over.load(Ordering::Acquire)
        {
            continue;
        }
        match listener.accept() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if let Flow::Exit = serve(stream, calls, limits, token.get().as_ref()) {
                    return;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return, // `stop` shut it down
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => {
                // Out of file descriptors or memory: wait instead of spinning on the error.
                eprintln!("admin: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

enum Flow {
    Continue,
    /// The coordinator is gone.
    Exit,
}

/// Serves one connection: read a head, answer, close.
fn serve(
    mut stream: TcpStream,
    calls: &Sender<AdminCall>,
    limits: Limits,
    token: Option<&Token>,
) -> Flow {
    let _ = stream.set_read_timeout(Some(limits.io));
    let _ = stream.set_write_timeout(Some(limits.io));
    let mut buf = [0u8; MAX_HEAD];
    let mut len = 0;
    let mut flow = Flow::Continue;
    let answer = loop {
        match stream.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return flow, // closed or timed out before a whole head: no answer
            Ok(n) => len += n,
        }
        match parse(&buf[..len], token) {
            Parsed::Partial if len == MAX_HEAD => {
                break Answer::refuse(431, "request head too large")
            }
            Parsed::Partial => continue,
            Parsed::Refused(a) | Parsed::Local(a) => break a,
            Parsed::Ask(ask, head) => {
                let reply = match call(calls, ask, limits.call) {
                    Ok(r) => r,
                    Err(Gone) => {
                        flow = Flow::Exit;
                        Reply::text(503, "coordinator gone\n")
                    }
                };
                break Answer {
                    reply,
                    head,
                    allow: None,
                    challenge: false,
                };
            }
        }
    };
    let _ = stream.write_all(&answer.bytes());
    // Close gracefully: send FIN, then read what the client still sends until it closes too.
    let _ = stream.shutdown(Shutdown::Write);
    let mut discarded = 0;
    while discarded < MAX_DISCARD {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => discarded += n,
        }
    }
    flow
}

struct Gone;

/// Asks the coordinator and waits for its reply, `limit` in all.
fn call(calls: &Sender<AdminCall>, ask: Ask, limit: Duration) -> Result<Reply, Gone> {
    let deadline = Instant::now() + limit;
    let (reply, answer) = crossbeam_channel::bounded(1);
    match calls.send_deadline(AdminCall { ask, reply }, deadline) {
        Ok(()) => {}
        Err(SendTimeoutError::Timeout(_)) => return Ok(Reply::text(503, "coordinator busy\n")),
        Err(SendTimeoutError::Disconnected(_)) => return Err(Gone),
    }
    Ok(match answer.recv_deadline(deadline) {
        Ok(r) => r,
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => Reply::text(503, "coordinator busy\n"),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
            Reply::text(500, "coordinator dropped the request\n")
        }
    })
}

// === request mapping ===

enum Parsed {
    Partial,
    /// Answered by the admin thread itself (the status page).
    Local(Answer),
    /// What to ask, and whether the request was `HEAD`.
    Ask(Ask, bool),
    Refused(Answer),
}

fn parse(bytes: &[u8], token: Option<&Token>) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(_)) => {
            let (method, path) = (req.method.unwrap_or(""), req.path.unwrap_or(""));
            let parsed = route(method, path);
            let Some(token) = token else { return parsed };
            if matches!(parsed, Parsed::Local(_)) {
                return parsed; // the page holds no data; its script asks for the token
            }
            let mut auth = req.headers.iter();
            let auth = auth.find(|h| h.name.eq_ignore_ascii_case("authorization"));
            if auth.is_some_and(|h| token.authorizes(h.value)) {
                return parsed;
            }
            let mut a = Answer::refuse(
                401,
                "unauthorized: send Authorization: Bearer <admin token>",
            );
            a.head = method == "HEAD";
            a.challenge = true;
            Parsed::Refused(a)
        }
        Err(httparse::Error::TooManyHeaders) => {
            Parsed::Refused(Answer::refuse(431, "too many headers"))
        }
        Err(e) => Parsed::Refused(Answer::refuse(400, &format!("malformed request: {e}"))),
    }
}

const GET_HEAD: &str = "GET, HEAD";
const POST: &str = "POST";

/// Method and path → what to ask, or the refusal.
fn route(method: &str, target: &str) -> Parsed {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let (ask, allow) = match path {
        "/" => return page(method),
        "/healthz" => (Ask::Healthz, GET_HEAD),
        "/readyz" => (Ask::Readyz, GET_HEAD),
        "/metrics" => (Ask::Metrics, GET_HEAD),
        "/config" => (Ask::Config, GET_HEAD),
        "/shards" => (Ask::Shards, GET_HEAD),
        "/stats.json" => (Ask::StatsJson, GET_HEAD),
        "/drain" => (Ask::Drain, POST),
        "/reload" => (Ask::Reload, POST),
        _ => return Parsed::Refused(Answer::refuse(404, "not found")),
    };
    match (allow, method) {
        (GET_HEAD, "GET") | (POST, "POST") => Parsed::Ask(ask, false),
        (GET_HEAD, "HEAD") => Parsed::Ask(ask, true),
        _ => {
            let mut a = Answer::refuse(405, "method not allowed");
            a.head = method == "HEAD";
            a.allow = Some(allow);
            Parsed::Refused(a)
        }
    }
}

/// `GET /`: the status page, served without asking the coordinator.
fn page(method: &str) -> Parsed {
    match method {
        "GET" | "HEAD" => Parsed::Local(Answer {
            reply: page::reply(),
            head: method == "HEAD",
            allow: None,
            challenge: false,
        }),
        _ => {
            let mut a = Answer::refuse(405, "method not allowed");
            a.allow = Some(GET_HEAD);
            Parsed::Refused(a)
        }
    }
}

// === impl Answer ===

/// A response about to be written.
struct Answer {
    reply: Reply,
    /// `HEAD`: headers only.
    head: bool,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
    /// A 401's `WWW-Authenticate: Bearer` challenge.
    challenge: bool,
}

impl Answer {
    fn refuse(status: u16, why: &str) -> Answer {
        let reply = Reply::text(status, format!("{why}\n"));
        Answer {
            reply,
            head: false,
            allow: None,
            challenge: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let Reply {
            status,
            content_type,
            body,
        } = &self.reply;
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            reason(*status),
            body.len()
        );
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        if self.challenge {
            out.push_str("WWW-Authenticate: Bearer realm=\"shardgate admin\"\r\n");
        }
        out.push_str("\r\n");
        if !self.head {
            out.push_str(body);
        }
        out.into_bytes()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

mod answer;
mod page;
pub(in crate::coordinator) mod stats_json;
pub(in crate::coordinator) mod status;
#[cfg(test)]
mod tests;
pub mod token;
