//! A client connection's task: read a PROXY header when the listener expects one, wait for a
//! request (idle timeout; woken by drain), read its head (header timeout, size limits), admit it
//! (route, limits), run the exchange or answer locally, record statistics and the access log
//! line, and loop for keep-alive and pipelining until either side closes; between requests, give
//! the buffers back and sleep (idle.rs) once idle past `idle_buffer_time`. Runs on the shard that
//! accepted the connection.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, CancelableAsyncReadRent};
use monoio::net::TcpStream;
use monoio::time::Instant;

use super::admission::{self, Verdict};
use super::boxes::Pooled;
use super::client::{refuse, Client, Link};
use super::exchanged::{Ctx, Exchanged, Outcome};
use super::forward;
use super::io::{read_more_until, write_buf, IoFail};
use super::table::Table;
use super::{idle, tunnel, Shard};
use crate::http::proxy_protocol;
use crate::http::request::{self, Forwarding, Request};
use crate::http::{canned, BodyFraming, Head};

/// Frees the connection's drain slot when the task ends, however it ends.
struct Slot(Rc<super::drain::Drain>, usize);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

/// Why a connection is about to read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Just accepted.
    First,
    /// Readiness after an idle wait without the kit.
    Woken,
    /// After a response on a keep-alive connection.
    Again,
}

/// How a run of requests with a kit ended.
enum Next {
    Close,
    /// Idle past `idle_buffer_time`: give the kit back and wait for readiness this long.
    Sleep(Duration),
    /// The upstream switched protocols: tunnel bytes both ways until either side closes or
    /// nothing moves for this long.
    Tunnel(TcpStream, Duration),
}

/// Serves one accepted connection until it closes. The serving state (kit and the exchange's
/// futures, some KiB) lives in a pooled block that is given back while the connection sleeps
/// between requests, so an idle connection costs a few hundred bytes.
pub fn serve(
    shard: Rc<Shard>,
    open: super::drain::ConnectionGuard,
    stream: TcpStream,
    peer: SocketAddr,
    proxy_header: bool,
) -> impl Future<Output = ()> {
    let accepted = &shard.stats.accepted;
    accepted.set(accepted.get() + 1);
    let slot = shard
        .drain
        .register(std::os::fd::AsRawFd::as_raw_fd(&stream));
    let slot = Slot(shard.drain.clone(), slot);
    // Only what a sleeping connection needs is captured here, once (an `async fn` would keep its
    // arguments twice): the task stays small (248 bytes).
    let mut link = Link {
        stream,
        client: peer,
    };
    async move {
        // Whole guards are moved in (a closure would capture only the fields it uses).
        let (_open, slot) = (&open, &slot);
        let mut wake = Wake::First;
        loop {
            let left = {
                let (next, l) = awake(&shard, link, slot.1, wake, proxy_header).await;
                link = l;
                match next {
                    Next::Close => return,
                    Next::Tunnel(up, idle) => {
                        let fd = std::os::fd::AsRawFd::as_raw_fd(&up);
                        if !shard.drain.open_tunnel(slot.1, fd) {
                            return;
                        }
                        return Box::pin(tunnel::run(link.stream, up, idle)).await;
                    }
                    Next::Sleep(left) => left,
                }
            };
            // Asleep without the kit until readable (a request, EOF, or a drain or the reaper
            // shutting the receive side); written out here, as a wrapper future would add bytes.
            if !idle::fall_asleep(&shard.drain, slot.1, left) {
                return;
            }
            let ready = link.stream.readable(false).await.is_ok();
            if !shard.drain.wake_up(slot.1) || !ready {
                return;
            }
            wake = Wake::Woken;
        }
    }
}

/// The connection with a kit, serving requests until it closes or idles past `idle_buffer_time`;
/// in a pooled block, so the sleeping connection's task does not carry its size.
fn awake(
    shard: &Shard,
    link: Link,
    slot: usize,
    wake: Wake,
    proxy_header: bool,
) -> Pooled<'_, impl Future<Output = (Next, Link)> + '_> {
    shard.boxes.pin(async move {
        let mut c = Client::assemble(link, shard.kits.take(), slot);
        let next = serve_requests(shard, &mut c, wake, proxy_header).await;
        let (link, kit) = c.disassemble();
        shard.kits.give(kit);
        (next, link)
    })
}

async fn serve_requests(shard: &Shard, c: &mut Client, mut wake: Wake, proxy_header: bool) -> Next {
    if wake == Wake::First && proxy_header && !read_proxy_header(shard, c).await {
        return Next::Close;
    }
    loop {
        if c.buf.is_empty() {
            match wait_for_request(shard, c, wake).await {
                Waited::Request => {}
                Waited::Close => return Next::Close,
                Waited::Sleep(left) => return Next::Sleep(left),
            }
        }
        wake = Wake::Again;
        let _in_flight = shard.drain.request();
        let started = Instant::now();
        let table = shard.table();
        let (req, route, verdict) = match read_head(shard, &table, c).await {
            Ok(r) => r,
            Err(Some(status)) => {
                record_refused(shard, c, status, started);
                return Next::Close;
            }
            Err(None) => return Next::Close,
        };
        let ex = respond(shard, &table, c, &req, route, verdict).await;
        record(shard, &table, c, &req, route, &ex, started);
        match ex.outcome {
            Outcome::KeepAlive => {}
            Outcome::Close => return Next::Close,
            Outcome::Tunnel(mut up) => {
                let pending = c.buf.len();
                if pending > 0
                    && write_buf(&mut up, &mut c.buf, pending, table.config.timeouts.body)
                        .await
                        .is_err()
                {
                    return Next::Close;
                }
                let cfg = &table.config.routes[route.unwrap_or(0)];
                return Next::Tunnel(up, cfg.tunnel_idle(&table.config));
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
        Verdict::Limited => (429, "text/plain", b"too many requests\n"),
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
    // Before the header is read, the client is the peer (the load balancer).
    if !table.trusted.is_empty() && !table.trusted.contains(c.client.ip()) {
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

/// What waiting for the next request came to.
enum Waited {
    Request,
    Close,
    /// No request within `idle_buffer_time`: sleep without the kit for the rest of the idle time.
    Sleep(Duration),
}

/// Waits for the first bytes of the next request, holding the kit for at most
/// `idle_buffer_time` (then the read is cancelled; bytes it got in the meantime are kept).
/// A connection accepted from the queue while draining, or woken from its sleep, still gets its
/// request read (and answered with `Connection: close`), within the header timeout.
async fn wait_for_request(shard: &Shard, c: &mut Client, wake: Wake) -> Waited {
    let t = shard.table().config.timeouts;
    let draining = shard.drain.is_draining();
    let wait = match (draining, wake) {
        (false, _) => t.idle,
        (true, Wake::First | Wake::Woken) => t.header,
        (true, Wake::Again) => return Waited::Close,
    };
    // Woken by readiness, the bytes are there: read them whatever `idle_buffer_time` says.
    let s = &shard.base.shards;
    let keep = if draining || wake == Wake::Woken {
        wait
    } else if shard.drain.connections() > s.lean_above {
        Duration::ZERO
    } else {
        s.idle_buffer_time.min(wait)
    };
    if keep.is_zero() {
        return Waited::Sleep(wait);
    }
    let v = std::mem::take(&mut c.buf.v);
    let cap = v.capacity();
    // A drain wakes this read by shutting the socket's receive side (see Drain::start).
    shard.drain.set_idle(c.slot, true);
    if keep >= wait {
        // The idle timeout comes first: nothing to cancel, the connection closes then.
        let read = c.stream.read(v.slice_mut(0..cap));
        let got = monoio::select! {
            r = read => Some(r),
            _ = monoio::time::sleep(wait) => None,
        };
        shard.drain.set_idle(c.slot, false);
        let Some((res, slice)) = got else {
            return Waited::Close;
        };
        c.buf.v = slice.into_inner();
        return match res {
            Ok(n) if n > 0 => Waited::Request,
            _ => Waited::Close,
        };
    }
    let read = c
        .stream
        .cancelable_read(v.slice_mut(0..cap), c.cancel.handle());
    let mut read = std::pin::pin!(read);
    let (res, slice) = monoio::select! {
        r = &mut read => r,
        _ = monoio::time::sleep(keep) => {
            // Bytes that arrived before the cancel took effect are returned, not lost.
            c.cancel = std::mem::take(&mut c.cancel).cancel();
            read.await
        }
    };
    shard.drain.set_idle(c.slot, false);
    c.buf.v = slice.into_inner();
    match res {
        Ok(n) if n > 0 => Waited::Request,
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => Waited::Sleep(wait - keep),
        _ => Waited::Close,
    }
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
        fallback_host: &table.fallback_host,
        rules: table.config.head_rules,
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
                refuse(&mut c.stream, reject.response(), t.body).await;
                return Err(Some(reject.status()));
            }
        }
    }
}
