//! A client connection's task: read a PROXY header when the listener expects one, wait for a
//! request (idle timeout; woken by drain), read its head (header timeout, size limits), admit it
//! (route, limits), run the exchange or answer locally, record statistics and the access log
//! line, and loop for keep-alive and pipelining until either side closes. Runs on the shard that
//! accepted the connection.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::SystemTime;

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;
use monoio::net::TcpStream;
use monoio::time::Instant;

use super::admission::{self, Scratch, Verdict};
use super::forward::{self, Ctx, Exchanged, Outcome};
use super::io::{read_more_until, write_buf, write_static, Buf, IoFail};
use super::table::Table;
use super::{tunnel, Shard};
use crate::http::proxy_protocol;
use crate::http::request::{self, Forwarding, Reject, Request};
use crate::http::{canned, BodyFraming, Head};

/// Everything one client connection owns; buffers are reused for every request on it.
pub struct Client {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// The client as the PROXY header names it, else the peer.
    pub client: SocketAddr,
    /// Bytes read from the client: request heads, bodies, pipelined requests.
    pub buf: Buf,
    /// Bytes read from the upstream of the current exchange.
    pub up_buf: Buf,
    /// The rewritten request head sent upstream (kept for a retry).
    pub head: Vec<u8>,
    /// The response head sent to the client.
    pub out: Vec<u8>,
    pub scratch: Scratch,
    /// This connection's slot in the drain's registry of idle sockets.
    slot: usize,
}

/// Frees the connection's drain slot when the task ends, however it ends.
struct Slot<'a>(&'a Shard, usize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.drain.release(self.1);
    }
}

/// Serves one accepted connection until it closes.
pub async fn serve(
    shard: Rc<Shard>,
    _open: super::drain::ConnectionGuard,
    stream: TcpStream,
    peer: SocketAddr,
    proxy_header: bool,
) {
    let accepted = &shard.stats.accepted;
    accepted.set(accepted.get() + 1);
    let _ = stream.set_nodelay(true);
    let size = shard.base.shards.buffer_size;
    let slot = shard
        .drain
        .register(std::os::fd::AsRawFd::as_raw_fd(&stream));
    let _slot = Slot(&shard, slot);
    let mut c = Client {
        stream,
        peer,
        client: peer,
        buf: Buf::with_capacity(size),
        up_buf: Buf::with_capacity(shard.base.shards.upstream_buffer_size),
        head: Vec::with_capacity(1024),
        out: Vec::with_capacity(1024),
        scratch: Scratch::default(),
        slot,
    };
    if proxy_header && !read_proxy_header(&shard, &mut c).await {
        return;
    }
    let mut first = true;
    loop {
        if c.buf.is_empty() && !wait_for_request(&shard, &mut c, first).await {
            return;
        }
        first = false;
        let _in_flight = shard.drain.request();
        let started = Instant::now();
        let table = shard.table();
        let (req, route, verdict) = match read_head(&shard, &table, &mut c).await {
            Ok(r) => r,
            Err(Some(status)) => {
                record_refused(&shard, &c, status, started);
                return;
            }
            Err(None) => return,
        };
        let ex = respond(&shard, &table, &mut c, &req, route, verdict).await;
        record(&shard, &table, &c, &req, route, &ex, started);
        match ex.outcome {
            Outcome::KeepAlive => {}
            Outcome::Close => return,
            Outcome::Tunnel(upstream) => {
                let pending = c.buf.len();
                let mut up = upstream;
                if pending > 0
                    && write_buf(&mut up, &mut c.buf, pending, table.config.timeouts.body)
                        .await
                        .is_err()
                {
                    return;
                }
                drop(_in_flight);
                tunnel::run(c.stream, up).await;
                return;
            }
        }
    }
}

/// Runs the exchange, or gives the answer admission decided on.
async fn respond(
    shard: &Shard,
    table: &Table,
    c: &mut Client,
    req: &Request,
    route: Option<usize>,
    verdict: Verdict,
) -> Exchanged {
    let mut ex = Exchanged {
        outcome: Outcome::Close,
        status: 0,
        bytes_in: req.head_len as u64,
        bytes_out: 0,
        upstream: None,
        upstream_time: None,
    };
    let idle = table.config.timeouts.body;
    let (status, content_type, body): (u16, &str, &[u8]) = match verdict {
        Verdict::Forward => {
            let i = route.unwrap_or(0);
            let cfg = &table.config.routes[i];
            let view = &table.routes[i];
            let Some(cluster) = view.cluster.as_deref() else {
                refuse(&mut c.stream, canned::response(500), idle).await;
                ex.status = 500;
                return ex;
            };
            let ctx = Ctx {
                table,
                route: view,
                cfg,
                cluster,
            };
            return forward::exchange(shard, c, req, &ctx).await;
        }
        Verdict::TooLarge => {
            let bytes = canned::response(413);
            refuse(&mut c.stream, bytes, idle).await;
            ex.status = 413;
            ex.bytes_out = bytes.len() as u64;
            return ex;
        }
        Verdict::NotFound => (404, "text/plain", b"not found\n"),
        Verdict::Limited { .. } => (429, "text/plain", b"too many requests\n"),
        Verdict::Direct => {
            let d = table.config.routes[route.unwrap_or(0)]
                .direct
                .as_ref()
                .expect("a direct verdict has a direct response");
            (d.status, d.content_type.as_str(), d.body.as_bytes())
        }
    };
    // A request body is not read: the connection cannot carry another request after it.
    let bodiless = matches!(req.body, BodyFraming::None | BodyFraming::Length(0));
    let keep = bodiless && req.keep_alive && !req.http10 && !shard.drain.is_draining();
    c.buf.consume(req.head_len);
    let head_only = req.method == request::Method::Head;
    match admission::answer(
        &mut c.stream,
        &mut c.out,
        status,
        content_type,
        body,
        &c.scratch.extra,
        head_only,
        keep,
        idle,
    )
    .await
    {
        Ok(n) => {
            ex.status = status;
            ex.bytes_out = n;
            ex.outcome = if keep {
                Outcome::KeepAlive
            } else {
                Outcome::Close
            };
        }
        Err(_) => ex.outcome = Outcome::Close,
    }
    ex
}

/// Statistics and the access log line for one finished exchange.
fn record(
    shard: &Shard,
    table: &Table,
    c: &Client,
    req: &Request,
    route: Option<usize>,
    ex: &Exchanged,
    started: Instant,
) {
    let total = started.elapsed();
    let name: &str = match route {
        Some(i) => {
            let s = &table.routes[i].stats;
            match ex.status {
                // The client went away before any response: only its time is counted.
                0 => s.latency.record(total),
                status => s.record(status, total),
            }
            &table.routes[i].name
        }
        None => "",
    };
    if shard.log.enabled() {
        let trace = req.trace_id;
        shard.log.log(&crate::access_log::Entry {
            time: SystemTime::now(),
            client: c.client,
            method: &c.scratch.method,
            path: &c.scratch.path,
            status: ex.status,
            bytes_in: ex.bytes_in,
            bytes_out: ex.bytes_out,
            upstream: ex.upstream,
            upstream_time: ex.upstream_time,
            total_time: total,
            request_id: req.request_id.as_bytes(),
            trace_id: trace.as_ref().map(|t| &t[..]),
            shard: shard.id,
            route: name,
        });
    }
}

/// The access log line of a request refused while its head was read (no route, no upstream).
fn record_refused(shard: &Shard, c: &Client, status: u16, started: Instant) {
    if !shard.log.enabled() {
        return;
    }
    // Method and target as far as the request line goes (it may be cut or malformed).
    let data = c.buf.data();
    let line = &data[..data.iter().position(|&b| b == b'\n').unwrap_or(data.len())];
    let mut words = line.split(|&b| b == b' ');
    let method = words.next().unwrap_or(b"");
    let path = words.next().unwrap_or(b"");
    shard.log.log(&crate::access_log::Entry {
        time: SystemTime::now(),
        client: c.client,
        method,
        path,
        status,
        bytes_in: data.len() as u64,
        bytes_out: canned::response(status).len() as u64,
        upstream: None,
        upstream_time: None,
        total_time: started.elapsed(),
        request_id: b"",
        trace_id: None,
        shard: shard.id,
        route: "",
    });
}

/// Reads the PROXY protocol header a load balancer sends first. False: refuse the connection.
async fn read_proxy_header(shard: &Shard, c: &mut Client) -> bool {
    let table = shard.table();
    if !table.trusted.is_empty() && !table.trusted.contains(c.peer.ip()) {
        return false;
    }
    let t = table.config.timeouts;
    let deadline = Instant::now() + t.header;
    loop {
        match proxy_protocol::parse(c.buf.data()) {
            Ok(proxy_protocol::Parsed::Complete {
                consumed, source, ..
            }) => {
                c.buf.consume(consumed);
                if let Some(s) = source {
                    c.client = s;
                }
                return true;
            }
            Ok(proxy_protocol::Parsed::Partial) => {
                if read_more_until(&mut c.stream, &mut c.buf, deadline)
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            Err(_) => {
                refuse(&mut c.stream, canned::response(400), t.body).await;
                return false;
            }
        }
    }
}

/// Waits for the first bytes of the next request. False: close (EOF, idle timeout, drain).
/// A connection accepted from the queue while draining still gets its first request read (and
/// answered with `Connection: close`), within the header timeout.
async fn wait_for_request(shard: &Shard, c: &mut Client, first: bool) -> bool {
    let t = shard.table().config.timeouts;
    let wait = match (shard.drain.is_draining(), first) {
        (false, _) => t.idle,
        (true, true) => t.header,
        (true, false) => return false,
    };
    let v = std::mem::take(&mut c.buf.v);
    let cap = v.capacity();
    // A drain wakes this read by shutting the socket's receive side (see Drain::start).
    shard.drain.set_idle(c.slot, true);
    let read = c.stream.read(v.slice_mut(0..cap));
    let got = monoio::select! {
        (res, slice) = read => {
            c.buf.v = slice.into_inner();
            matches!(res, Ok(n) if n > 0)
        }
        _ = monoio::time::sleep(wait) => false,
    };
    shard.drain.set_idle(c.slot, false);
    got
}

/// Reads until a whole head is buffered, validated and admitted; answers when refused and returns
/// the status it answered with (`None`: the client went away).
async fn read_head(
    shard: &Shard,
    table: &Table,
    c: &mut Client,
) -> Result<(Request, Option<usize>, Verdict), Option<u16>> {
    let limits = &shard.base.shards;
    let t = table.config.timeouts;
    let deadline = Instant::now() + t.header;
    let fwd = Forwarding {
        client_ip: c.client.ip(),
        request_id: shard.next_request_id(),
        fallback_host: shard.fallback_host.as_bytes(),
    };
    let log = shard.log.enabled();
    loop {
        let mut decided = (None, Verdict::Forward);
        let client = c.client.ip();
        let scratch = &mut c.scratch;
        let processed = request::process(
            c.buf.data(),
            c.buf.is_full(),
            limits.max_request_line,
            &fwd,
            |p| {
                let ids = (shard.next_span_id(), shard.next_request_id());
                let (plan, route, verdict) = admission::admit(table, client, log, ids, p, scratch);
                decided = (route, verdict);
                plan
            },
            &mut c.head,
        );
        match processed {
            Ok(Head::Complete(req)) => return Ok((req, decided.0, decided.1)),
            Ok(Head::Partial) => match read_more_until(&mut c.stream, &mut c.buf, deadline).await {
                Ok(_) => {}
                Err(IoFail::TimedOut) => {
                    refuse(&mut c.stream, canned::response(408), t.body).await;
                    return Err(Some(408));
                }
                Err(_) => return Err(None),
            },
            Err(reject) => {
                let status = match reject {
                    Reject::BadRequest => 400,
                    Reject::UriTooLong => 414,
                    Reject::HeadersTooLarge => 431,
                    Reject::NotImplemented => 501,
                    Reject::ExpectationFailed => 417,
                };
                refuse(&mut c.stream, canned::response(status), t.body).await;
                return Err(Some(status));
            }
        }
    }
}

/// Answers with a canned error before the connection closes; a failed write changes nothing then.
pub(super) async fn refuse(
    stream: &mut TcpStream,
    bytes: &'static [u8],
    idle: std::time::Duration,
) {
    let _ = write_static(stream, bytes, idle).await;
}
