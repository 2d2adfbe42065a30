//! HTTP/1.1 on a blocking std socket, for both ends of a test: the client talking to shardgate and
//! the scripted upstreams it forwards to. `Conn` reads exactly one message by its framing
//! (Content-Length, chunked with trailers, until close, or none) and is strict on purpose: a
//! malformed head or framing coming *from shardgate* is reported as `WireError::Malformed`, never
//! papered over. Every read has a timeout, so a proxy bug fails a test instead of hanging the suite.

use super::message::{
    find, parse_chunk_size, parse_field, parse_head, parse_status_line, request_framing,
    request_from_head, response_framing, Body, Framing, Head, Request, Response,
};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Default read timeout on every test socket: far longer than any expected answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest head either side accepts before calling the message malformed.
const MAX_HEAD: usize = 1 << 20;

/// Why a message could not be read completely. `got` is how many bytes of this message arrived.
#[derive(Debug)]
pub enum WireError {
    /// Nothing more arrived within the read timeout.
    Timeout {
        got: usize,
        preview: String,
    },
    /// The peer closed (FIN) before the message was complete.
    Closed {
        got: usize,
        preview: String,
    },
    /// The peer reset the connection before the message was complete.
    Reset {
        got: usize,
        preview: String,
    },
    /// The bytes are not valid HTTP/1.1.
    Malformed {
        why: String,
        preview: String,
    },
    Io(io::Error),
}

impl WireError {
    /// Bytes of the unfinished message that had arrived (0 for malformed or I/O errors).
    pub fn got(&self) -> usize {
        match self {
            WireError::Timeout { got, .. }
            | WireError::Closed { got, .. }
            | WireError::Reset { got, .. } => *got,
            _ => 0,
        }
    }

    /// The connection ended (FIN or RST) rather than timing out or sending garbage.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, WireError::Closed { .. } | WireError::Reset { .. })
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Timeout { got, preview } => {
                write!(f, "read timed out after {got} bytes: {preview:?}")
            }
            WireError::Closed { got, preview } => {
                write!(f, "peer closed after {got} bytes: {preview:?}")
            }
            WireError::Reset { got, preview } => {
                write!(f, "peer reset after {got} bytes: {preview:?}")
            }
            WireError::Malformed { why, preview } => {
                write!(f, "malformed: {why}; bytes: {preview:?}")
            }
            WireError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

/// A hook that sees every chunk a `Conn` reads.
type OnRead = Box<dyn FnMut(&[u8]) + Send>;

/// A blocking socket with a read buffer; one per connection, for its whole life.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of the message being read so far (for diagnostics on a truncated message).
    got: usize,
    preview: Vec<u8>,
    /// Called with every chunk read from the socket (the upstreams record what they received).
    on_read: Option<OnRead>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
            got: 0,
            preview: Vec::new(),
            on_read: None,
        }
    }

    /// Connects to `addr` (a test failure if that does not succeed within a second).
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Conn::new(stream)
    }

    pub fn with_recorder(mut self, f: impl FnMut(&[u8]) + Send + 'static) -> Conn {
        self.on_read = Some(Box::new(f));
        self
    }

    pub fn set_timeout(&mut self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// Writes all of `bytes`; a failure is returned, not a panic (the peer may have closed).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Bytes already buffered but not yet consumed by a message.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The first 300 bytes of the message so far (consumed, then still buffered), for errors.
    fn err_preview(&self) -> String {
        let room = 300usize.saturating_sub(self.preview.len());
        let mut p = self.preview.clone();
        p.extend_from_slice(&self.buf[..self.buf.len().min(room)]);
        String::from_utf8_lossy(&p).into_owned()
    }

    /// Reads once more from the socket into the buffer.
    fn fill(&mut self) -> Result<(), WireError> {
        let mut tmp = [0u8; 65536];
        match self.read_restarting(&mut tmp) {
            Ok(0) => Err(WireError::Closed {
                got: self.got + self.buf.len(),
                preview: self.err_preview(),
            }),
            Ok(n) => {
                if let Some(f) = self.on_read.as_mut() {
                    f(&tmp[..n]);
                }
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    /// One `read`, restarted when interrupted: a blocking read with `SO_RCVTIMEO` fails with EINTR
    /// whenever the thread is interrupted (signal(7)), even by a handler with SA_RESTART; that is
    /// not a timeout. The restarted read waits only for what is left of the read timeout.
    fn read_restarting(&mut self, tmp: &mut [u8]) -> io::Result<usize> {
        let started = Instant::now();
        let first = self.stream.read(tmp);
        if !matches!(&first, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
            return first;
        }
        let timeout = self.stream.read_timeout()?;
        let r = loop {
            if let Some(t) = timeout {
                let left = t.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break Err(io::ErrorKind::TimedOut.into());
                }
                self.stream.set_read_timeout(Some(left))?;
            }
            match self.stream.read(tmp) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        self.stream.set_read_timeout(timeout)?;
        r
    }

    fn classify(&self, e: io::Error) -> WireError {
        let got = self.got + self.buf.len();
        let preview = self.err_preview();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                WireError::Timeout { got, preview }
            }
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => WireError::Reset { got, preview },
            _ => WireError::Io(e),
        }
    }

    /// Removes `n` buffered bytes as part of the current message.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        let taken = std::mem::replace(&mut self.buf, rest);
        self.got += n;
        if self.preview.len() < 300 {
            let room = 300 - self.preview.len();
            self.preview
                .extend_from_slice(&taken[..taken.len().min(room)]);
        }
        taken
    }

    fn malformed(&self, why: impl Into<String>) -> WireError {
        WireError::Malformed {
            why: why.into(),
            preview: self.err_preview(),
        }
    }

    /// Waits until at least one byte is buffered (the start of the next message).
    pub fn wait_readable(&mut self) -> Result<(), WireError> {
        while self.buf.is_empty() {
            self.fill()?;
        }
        Ok(())
    }

    /// Reads one head (start line and fields), strictly.
    pub fn read_head(&mut self) -> Result<Head, WireError> {
        self.got = 0;
        self.preview.clear();
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw = self.take(end + 4);
                return parse_head(&raw).map_err(|why| self.malformed(why));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(self.malformed("head larger than 1 MiB"));
            }
            self.fill()?;
        }
    }

    fn read_line(&mut self) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let mut line = self.take(end + 2);
                line.truncate(end);
                return Ok(line);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(self.malformed("line longer than 64 KiB"));
            }
            self.fill()?;
        }
    }

    fn read_exact_into(&mut self, mut n: u64, out: &mut Vec<u8>) -> Result<(), WireError> {
        while n > 0 {
            if self.buf.is_empty() {
                self.fill()?;
            }
            let k = (self.buf.len() as u64).min(n) as usize;
            let chunk = self.take(k);
            out.extend_from_slice(&chunk);
            n -= k as u64;
        }
        Ok(())
    }

    /// Reads a body delimited by `framing`.
    pub fn read_body(&mut self, framing: Framing) -> Result<Body, WireError> {
        let mut data = Vec::new();
        let mut trailers = Vec::new();
        match framing {
            Framing::None => {}
            Framing::Length(n) => self.read_exact_into(n, &mut data)?,
            Framing::UntilClose => loop {
                if !self.buf.is_empty() {
                    let all = self.buf.len();
                    data.extend_from_slice(&self.take(all));
                }
                match self.fill() {
                    Ok(()) => {}
                    Err(WireError::Closed { .. }) => break,
                    Err(e) => return Err(e),
                }
            },
            Framing::Chunked => loop {
                let line = self.read_line()?;
                let size = parse_chunk_size(&line)
                    .ok_or_else(|| self.malformed(format!("bad chunk size line {line:?}")))?;
                if size == 0 {
                    loop {
                        let t = self.read_line()?;
                        if t.is_empty() {
                            break;
                        }
                        let (n, v) = parse_field(&t)
                            .map_err(|why| self.malformed(format!("trailer: {why}")))?;
                        trailers.push((n, v));
                    }
                    break;
                }
                self.read_exact_into(size, &mut data)?;
                if !self.read_line()?.is_empty() {
                    return Err(self.malformed("chunk data not followed by CRLF"));
                }
            },
        }
        Ok(Body { data, trailers })
    }

    /// Reads one response (1xx included, as its own response) to a request with `method`.
    pub fn read_response_to(&mut self, method: &str) -> Result<Response, WireError> {
        let head = self.read_head()?;
        let (version, status, reason) =
            parse_status_line(&head.start).map_err(|why| self.malformed(why))?;
        let framing = response_framing(method, status, &head).map_err(|why| self.malformed(why))?;
        let body = self.read_body(framing)?;
        Ok(Response {
            version,
            status,
            reason,
            chunked: framing == Framing::Chunked,
            head,
            body: body.data,
            trailers: body.trailers,
        })
    }

    /// Reads one response to a non-HEAD request.
    pub fn read_response(&mut self) -> Result<Response, WireError> {
        self.read_response_to("GET")
    }

    /// Reads responses until a final (non-1xx) one; returns it with the interim ones before it.
    pub fn read_final_response(&mut self) -> Result<(Vec<Response>, Response), WireError> {
        let mut interim = Vec::new();
        loop {
            let r = self.read_response()?;
            if (100..200).contains(&r.status) && r.status != 101 {
                interim.push(r);
            } else {
                return Ok((interim, r));
            }
        }
    }

    /// Sends `bytes` and reads the response; panics (test failure) if either step fails.
    pub fn exchange(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes).expect("send request");
        let method = String::from_utf8_lossy(bytes)
            .split(' ')
            .next()
            .unwrap_or("GET")
            .to_string();
        self.read_response_to(&method)
            .unwrap_or_else(|e| panic!("reading the response to {:?}: {e}", preview(bytes)))
    }

    /// Reads one request (head and decoded body).
    pub fn read_request(&mut self) -> Result<Request, WireError> {
        let head = self.read_head()?;
        let mut req = request_from_head(head).map_err(|why| self.malformed(why))?;
        let framing = request_framing(&req.head).map_err(|why| self.malformed(why))?;
        let body = self.read_body(framing)?;
        req.body_len = body.data.len();
        req.body = body.data;
        req.trailers = body.trailers;
        Ok(req)
    }

    /// Expects the peer to close (FIN or RST) within `within` without sending any byte.
    pub fn expect_closed(&mut self, within: Duration) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!(
                "unexpected bytes before close: {:?}",
                String::from_utf8_lossy(&self.buf)
            ));
        }
        self.stream.set_read_timeout(Some(within)).unwrap();
        let r = self.fill();
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        match r {
            Err(WireError::Closed { .. }) | Err(WireError::Reset { .. }) => Ok(()),
            Err(WireError::Timeout { .. }) => {
                Err(format!("connection still open after {within:?}"))
            }
            Err(e) => Err(e.to_string()),
            Ok(()) => Err(format!(
                "unexpected bytes instead of close: {:?}",
                String::from_utf8_lossy(&self.buf)
            )),
        }
    }

    /// Reads whatever arrives until `deadline` or until the peer closes; returns the bytes.
    pub fn read_for(&mut self, d: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + d;
        let mut closed = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.fill() {
                Ok(()) => {}
                Err(WireError::Closed { .. }) | Err(WireError::Reset { .. }) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let n = self.buf.len();
        (self.take(n), closed)
    }

    /// Reads exactly `n` raw bytes (tunnelled data after an upgrade).
    pub fn read_raw(&mut self, n: usize) -> Result<Vec<u8>, WireError> {
        self.got = 0;
        self.preview.clear();
        let mut out = Vec::new();
        self.read_exact_into(n as u64, &mut out)?;
        Ok(out)
    }
}

fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
}
