//! `demo-upstream`: the project's own small, fast HTTP/1.1 origin server for the demo and the
//! benchmarks. It answers every request with `200 OK` and a fixed body. It runs `--threads N` OS
//! threads named `upstream-{i}`, each running its own monoio runtime (io_uring, epoll as the
//! fallback) with its own `SO_REUSEPORT` listener; a connection stays on the thread that accepted it.
//!
//! ```text
//! demo-upstream --listen 127.0.0.1:9001 [--threads N] [--body-size BYTES]
//! ```
//!
//! Per connection: one read buffer and one write buffer, allocated once and reused, so serving a
//! request allocates nothing. Keep-alive and pipelining: every complete request in the read buffer
//! is answered in order, and the answers are written together before the next read. Request bodies
//! are read and discarded by `Content-Length` or `Transfer-Encoding: chunked` (`Expect:
//! 100-continue` gets its interim answer). `Connection: close` is honoured; an HTTP/1.0 client
//! keeps its connection only when it asks with `Connection: keep-alive`. `HEAD` gets the head
//! only. A malformed request gets `400` (a head larger than the read buffer `431`) and the
//! connection is closed.
//!
//! stdout: `listening on ADDR` once every thread has bound (the real port, also for port 0).

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

/// Read buffer per connection; also the largest request head accepted.
const READ_BUF: usize = 16 * 1024;
/// Write buffer per connection: answers to pipelined requests are gathered here.
const WRITE_BUF: usize = 32 * 1024;
/// Answers larger than this are written straight from the shared canned bytes instead of being
/// copied into the write buffer.
const INLINE_MAX: usize = 16 * 1024;
/// Most request headers accepted (more gets `431`).
const MAX_HEADERS: usize = 64;
/// Longest chunk-size or trailer line accepted in a chunked request body.
const MAX_CHUNK_LINE: usize = 4096;

/// Flags of `demo-upstream`.
#[derive(Parser, Debug)]
#[command(
    name = "demo-upstream",
    version,
    about = "Small HTTP/1.1 origin server for demos and benchmarks"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long)]
    listen: SocketAddr,
    /// Number of threads, each with its own runtime and SO_REUSEPORT listener.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// Body size in bytes (default: the body is "hello from ADDR\n").
    #[arg(long)]
    body_size: Option<usize>,
    /// Listen backlog of each listener.
    #[arg(long, default_value_t = 4096)]
    backlog: i32,
}

/// One canned answer: head and body in one buffer, shared by all connections of a thread.
struct Canned {
    bytes: Rc<Vec<u8>>,
    head_len: usize,
}

impl Canned {
    fn new(status: &str, connection: Option<&str>, body: &[u8]) -> Canned {
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(c) = connection {
            head.push_str("Connection: ");
            head.push_str(c);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = Vec::with_capacity(head.len() + body.len());
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(body);
        Canned {
            head_len: head.len(),
            bytes: Rc::new(bytes),
        }
    }
}

/// Every answer a thread can give, built once per thread.
struct Answers {
    /// HTTP/1.1 keep-alive (no `Connection` header needed).
    keep_alive: Canned,
    /// HTTP/1.0 keep-alive (`Connection: keep-alive`).
    keep_alive_10: Canned,
    /// Last answer on the connection (`Connection: close`).
    close: Canned,
    bad_request: Canned,
    too_large: Canned,
}

impl Answers {
    fn new(body: &[u8]) -> Answers {
        Answers {
            keep_alive: Canned::new("200 OK", None, body),
            keep_alive_10: Canned::new("200 OK", Some("keep-alive"), body),
            close: Canned::new("200 OK", Some("close"), body),
            bad_request: Canned::new("400 Bad Request", Some("close"), b"bad request\n"),
            too_large: Canned::new(
                "431 Request Header Fields Too Large",
                Some("close"),
                b"request header fields too large\n",
            ),
        }
    }
}

/// How the body of the current request is being consumed.
enum BodyState {
    /// No request in progress: the next bytes are a request head.
    Head,
    /// `Content-Length` body: this many bytes still to discard.
    Length(u64),
    /// Chunked body.
    Chunked(Chunked),
}

/// What to send once the current request's body has been consumed.
#[derive(Clone, Copy)]
struct Pending {
    close: bool,
    http10: bool,
    head_only: bool,
}

/// Chunked-body decoder state (data is discarded, only the framing is followed).
enum Chunked {
    /// In the chunk-size line: the size so far, whether a digit was seen, whether in an extension.
    Size {
        size: u64,
        digit: bool,
        ext: bool,
        line: usize,
    },
    /// In chunk data: bytes left.
    Data(u64),
    /// After chunk data: expecting CRLF.
    DataEnd,
    /// In the trailer section: length of the current line.
    Trailer { line: usize },
}

impl Chunked {
    fn start() -> Chunked {
        Chunked::Size {
            size: 0,
            digit: false,
            ext: false,
            line: 0,
        }
    }

    /// Consume from `buf`; returns the number of bytes used and whether the body ended.
    fn advance(&mut self, buf: &[u8]) -> Result<(usize, bool), ()> {
        let mut i = 0;
        while i < buf.len() {
            match self {
                Chunked::Data(left) => {
                    let take = (*left).min((buf.len() - i) as u64);
                    i += take as usize;
                    *left -= take;
                    if *left == 0 {
                        *self = Chunked::DataEnd;
                    }
                    continue;
                }
                Chunked::DataEnd => match buf[i] {
                    b'\r' => {}
                    b'\n' => *self = Chunked::start(),
                    _ => return Err(()),
                },
                Chunked::Size {
                    size,
                    digit,
                    ext,
                    line,
                } => {
                    let b = buf[i];
                    *line += 1;
                    if *line > MAX_CHUNK_LINE {
                        return Err(());
                    }
                    match b {
                        b'\n' => {
                            if !*digit {
                                return Err(());
                            }
                            *self = if *size == 0 {
                                Chunked::Trailer { line: 0 }
                            } else {
                                Chunked::Data(*size)
                            };
                        }
                        b'\r' => {}
                        _ if *ext => {}
                        b';' | b' ' | b'\t' => *ext = true,
                        _ => {
                            let d = (b as char).to_digit(16).ok_or(())?;
                            *size = size.checked_mul(16).ok_or(())? + u64::from(d);
                            *digit = true;
                        }
                    }
                }
                Chunked::Trailer { line } => match buf[i] {
                    b'\n' if *line == 0 => return Ok((i + 1, true)),
                    b'\n' => *line = 0,
                    b'\r' => {}
                    _ => {
                        *line += 1;
                        if *line > MAX_CHUNK_LINE {
                            return Err(());
                        }
                    }
                },
            }
            i += 1;
        }
        Ok((i, false))
    }
}

/// What a request head says about its connection and body.
struct HeadInfo {
    len: usize,
    pending: Pending,
    body: BodyState,
    expect_continue: bool,
}

/// Why a request head was refused.
enum HeadError {
    Bad,
    TooLarge,
}

/// Does the comma-separated header value contain `token` (case-insensitive)?
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parse one request head at the start of `buf`: `Ok(None)` when it is not complete yet.
fn parse_head(buf: &[u8]) -> Result<Option<HeadInfo>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Bad),
    };
    let http10 = req.version == Some(0);
    let mut close = false;
    let mut keep_alive = false;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(h.value, "close");
            keep_alive |= has_token(h.value, "keep-alive");
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let v = h.value.trim_ascii();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) || v.len() > 19 {
                return Err(HeadError::Bad);
            }
            let n = v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if content_length.is_some_and(|old| old != n) {
                return Err(HeadError::Bad);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The last coding must be chunked; anything else has no knowable length.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::Bad);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    let body = if chunked {
        BodyState::Chunked(Chunked::start())
    } else {
        match content_length {
            Some(n) if n > 0 => BodyState::Length(n),
            _ => BodyState::Head,
        }
    };
    Ok(Some(HeadInfo {
        len,
        pending: Pending {
            close: close || (http10 && !keep_alive),
            http10,
            head_only: req.method == Some("HEAD"),
        },
        expect_continue: expect_continue && !http10 && !matches!(body, BodyState::Head),
        body,
    }))
}

/// One downstream connection: its socket and its two reused buffers.
struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

impl Conn {
    /// Write out everything gathered in the write buffer.
    async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let wbuf = std::mem::take(&mut self.wbuf);
        let (res, mut wbuf) = self.stream.write_all(wbuf).await;
        wbuf.clear();
        self.wbuf = wbuf;
        res.map(|_| ())
    }

    /// Queue (or, when large, write) one canned answer.
    async fn answer(&mut self, canned: &Canned, head_only: bool) -> io::Result<()> {
        let len = if head_only {
            canned.head_len
        } else {
            canned.bytes.len()
        };
        if len > INLINE_MAX {
            self.flush().await?;
            let (res, _) = self
                .stream
                .write_all(canned.bytes.clone().slice(..len))
                .await;
            return res.map(|_| ());
        }
        self.queue(&canned.bytes[..len]).await
    }

    /// Append bytes to the write buffer, flushing first when they would not fit.
    async fn queue(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.wbuf.len() + bytes.len() > self.wbuf.capacity() {
            self.flush().await?;
        }
        self.wbuf.extend_from_slice(bytes);
        Ok(())
    }

    /// Read more bytes after `rbuf.len()`; `Ok(false)` on end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let rbuf = std::mem::take(&mut self.rbuf);
        let start = rbuf.len();
        let cap = rbuf.capacity();
        let (res, slice) = self.stream.read(rbuf.slice_mut(start..cap)).await;
        self.rbuf = slice.into_inner();
        Ok(res? > 0)
    }
}

/// Serve one connection until the peer closes it, asks to close it, or sends garbage.
async fn serve(stream: TcpStream, answers: Rc<Answers>) -> io::Result<()> {
    let mut conn = Conn {
        stream,
        rbuf: Vec::with_capacity(READ_BUF),
        wbuf: Vec::with_capacity(WRITE_BUF),
    };
    let mut state = BodyState::Head;
    let mut pending = Pending {
        close: false,
        http10: false,
        head_only: false,
    };
    // Unprocessed bytes are rbuf[pos..].
    let mut pos = 0;
    loop {
        // Answer every complete request already in the buffer, in order.
        loop {
            let avail = &conn.rbuf[pos..];
            let body_done = match &mut state {
                BodyState::Head => {
                    if avail.is_empty() {
                        break;
                    }
                    match parse_head(avail) {
                        Ok(None) => break,
                        Ok(Some(info)) => {
                            pos += info.len;
                            pending = info.pending;
                            state = info.body;
                            if info.expect_continue && conn.rbuf.len() == pos {
                                conn.queue(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                            }
                            matches!(state, BodyState::Head)
                        }
                        Err(e) => {
                            let canned = match e {
                                HeadError::Bad => &answers.bad_request,
                                HeadError::TooLarge => &answers.too_large,
                            };
                            conn.answer(canned, false).await?;
                            return conn.flush().await;
                        }
                    }
                }
                BodyState::Length(left) => {
                    let take = (*left).min(avail.len() as u64);
                    pos += take as usize;
                    *left -= take;
                    if *left > 0 {
                        break;
                    }
                    true
                }
                BodyState::Chunked(ch) => match ch.advance(avail) {
                    Ok((used, done)) => {
                        pos += used;
                        if !done {
                            break;
                        }
                        true
                    }
                    Err(()) => {
                        conn.answer(&answers.bad_request, false).await?;
                        return conn.flush().await;
                    }
                },
            };
            if body_done {
                state = BodyState::Head;
                let canned = if pending.close {
                    &answers.close
                } else if pending.http10 {
                    &answers.keep_alive_10
                } else {
                    &answers.keep_alive
                };
                conn.answer(canned, pending.head_only).await?;
                if pending.close {
                    return conn.flush().await;
                }
            }
        }
        // Send the answers before waiting for more requests.
        conn.flush().await?;
        // Make room: drop consumed bytes (all of a body being discarded counts as consumed).
        if pos == conn.rbuf.len() {
            conn.rbuf.clear();
            pos = 0;
        } else if conn.rbuf.len() == conn.rbuf.capacity() {
            if pos == 0 {
                // A head that does not fit in the read buffer.
                conn.answer(&answers.too_large, false).await?;
                return conn.flush().await;
            }
            conn.rbuf.copy_within(pos.., 0);
            conn.rbuf.truncate(conn.rbuf.len() - pos);
            pos = 0;
        }
        if !conn.fill().await? {
            return Ok(());
        }
    }
}

/// Raise the open-file limit to its hard maximum (many benchmark connections).
fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the plain struct passed to them.
    unsafe {
        let mut lim = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Body of every `200 OK`: `--body-size` bytes of the default text repeated, or the text once.
fn make_body(addr: SocketAddr, size: Option<usize>) -> Vec<u8> {
    let text = format!("hello from {addr}\n").into_bytes();
    match size {
        None => text,
        Some(n) => text.iter().copied().cycle().take(n).collect(),
    }
}

/// One thread: bind its listener, report the bound address, then accept and serve forever.
fn run_thread(
    id: u16,
    addr: SocketAddr,
    args_body: Option<usize>,
    backlog: i32,
    bound: mpsc::Sender<io::Result<SocketAddr>>,
) {
    let mut rt = match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = bound.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let opts = ListenerOpts::new().reuse_port(true).backlog(backlog);
        let listener = match TcpListener::bind_with_config(addr, &opts) {
            Ok(l) => l,
            Err(e) => {
                let _ = bound.send(Err(e));
                return;
            }
        };
        let local = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                let _ = bound.send(Err(e));
                return;
            }
        };
        let _ = bound.send(Ok(local));
        drop(bound);
        let answers = Rc::new(Answers::new(&make_body(local, args_body)));
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let answers = answers.clone();
                    monoio::spawn(async move {
                        // Resets and broken pipes from clients are normal under load.
                        let _ = serve(stream, answers).await;
                    });
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    eprintln!("demo-upstream: thread {id}: accept: {e}");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
}

fn main() {
    let args = Args::parse();
    raise_nofile_limit();
    // Probe with a plain listener (no SO_REUSEPORT) first: it resolves port 0 and fails when
    // another process already listens there, which SO_REUSEPORT alone would silently allow.
    let mut addr = match std::net::TcpListener::bind(args.listen).and_then(|l| l.local_addr()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo-upstream: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let mut handles = Vec::new();
    // Start the threads one by one, each binding its own SO_REUSEPORT listener on that port.
    for id in 0..args.threads {
        let (tx, rx) = mpsc::channel();
        let (body, backlog) = (args.body_size, args.backlog);
        let handle = std::thread::Builder::new()
            .name(format!("upstream-{id}"))
            .spawn(move || run_thread(id, addr, body, backlog, tx))
            .expect("spawn thread");
        match rx.recv() {
            Ok(Ok(local)) => addr = local,
            Ok(Err(e)) => {
                eprintln!("demo-upstream: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("demo-upstream: thread {id} failed to start");
                std::process::exit(1);
            }
        }
        handles.push(handle);
    }
    println!("listening on {addr}");
    for h in handles {
        let _ = h.join();
    }
}
