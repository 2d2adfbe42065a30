//! An HTTP/1.1 client connection's task: read a PROXY header when the listener expects one, wait
//! for a request (wait.rs), read and admit its head (head.rs), hand it to the pipeline (local
//! answer or exchange, statistics, access log), and loop for keep-alive and pipelining until
//! either side closes; between requests, give the buffers back and sleep without them (idle.rs)
//! once idle past `idle_buffer_time`; after a `101`, tunnel. On an h2c listener the first bytes
//! choose: the HTTP/2 preface hands the socket to the HTTP/2 connection task (h2/), anything else
//! is served here. Runs on the shard that accepted the connection.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::net::TcpStream;
use monoio::time::Instant;

use super::client::{Client, Link};
use super::head::{read_head, read_proxy_header, record_refused};
use super::wait::{Wait, Waited, Wake};
use super::{h2, idle, tunnel};
use crate::http::h2::{preface, Preface};
use crate::shard::boxes::Pooled;
use crate::shard::drain::{ConnectionGuard, Drain};
use crate::shard::io::{read_more_until, write_buf};
use crate::shard::pipeline::{self, exchanged::Outcome};
use crate::shard::upstream::stream::UpStream;
use crate::shard::Shard;

/// Frees the connection's drain slot when the task ends, however it ends.
pub(super) struct Slot(Rc<Drain>, pub(super) usize);

impl Slot {
    /// Registers a new connection's socket with the drain.
    pub(super) fn new(drain: &Rc<Drain>, fd: std::os::fd::RawFd) -> Slot {
        Slot(drain.clone(), drain.register(fd))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

/// How a run of requests with a kit ended.
pub(super) enum Next {
    Close,
    /// Idle past `idle_buffer_time`: give the kit back and wait for readiness this long.
    Sleep(Duration),
    /// The upstream switched protocols: tunnel bytes both ways until either side closes or
    /// nothing moves for this long.
    Tunnel(UpStream, Duration),
}

/// Serves one accepted connection until it closes. The serving state (kit and the exchange's
/// futures, some KiB) lives in a pooled block that is given back while the connection sleeps
/// between requests, so an idle connection costs a few hundred bytes.
pub fn serve(
    shard: Rc<Shard>,
    open: ConnectionGuard,
    stream: TcpStream,
    peer: SocketAddr,
    proxy_header: bool,
    h2c: bool,
) -> impl Future<Output = ()> {
    let accepted = &shard.stats.accepted;
    accepted.set(accepted.get() + 1);
    let slot = Slot::new(&shard.drain, std::os::fd::AsRawFd::as_raw_fd(&stream));
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
        // On an h2c listener, until the first bytes have chosen the protocol.
        let mut choosing = h2c;
        loop {
            let left = {
                let (opened, l) = awake(&shard, link, slot.1, wake, proxy_header, choosing).await;
                link = l;
                choosing &= matches!(opened, Opened::Undecided(_));
                let next = match opened {
                    Opened::Http1(next) => next,
                    Opened::Undecided(left) => Next::Sleep(left),
                    Opened::H2(read) => {
                        let io = h2::Rewind::new(read, h2::plain(link.stream));
                        let h2 = h2::serve(shard.clone(), io, link.client, slot.1, None);
                        return Box::pin(h2).await;
                    }
                };
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

/// How a run with a kit ended on a connection that may still choose its protocol.
enum Opened {
    Http1(Next),
    /// No byte yet within `idle_buffer_time`: sleep this long without the kit, still choosing.
    Undecided(std::time::Duration),
    /// The HTTP/2 preface arrived: the bytes read so far, preface included.
    H2(Vec<u8>),
}

/// The connection with a kit, serving requests until it closes or idles past `idle_buffer_time`;
/// in a pooled block, so the sleeping connection's task does not carry its size. `choosing`: an
/// h2c listener's connection whose first bytes have not been seen yet.
fn awake(
    shard: &Shard,
    link: Link,
    slot: usize,
    wake: Wake,
    proxy_header: bool,
    choosing: bool,
) -> Pooled<'_, impl Future<Output = (Opened, Link)> + '_> {
    shard.boxes.pin(async move {
        let mut c = Client::assemble(link, shard.kits.take(), slot);
        let opened = if choosing {
            choose(shard, &mut c, wake, proxy_header).await
        } else {
            Opened::Http1(serve_requests(shard, &mut c, wake, proxy_header).await)
        };
        let (link, kit) = c.disassemble();
        shard.kits.give(kit);
        (opened, link)
    })
}

/// On an h2c listener: reads the first bytes (after a PROXY header) and serves HTTP/1.1 unless
/// they are the HTTP/2 preface.
async fn choose(shard: &Shard, c: &mut Client, wake: Wake, proxy_header: bool) -> Opened {
    if wake == Wake::First && proxy_header && !read_proxy_header(shard, c).await {
        return Opened::Http1(Next::Close);
    }
    let deadline = Instant::now() + shard.table().config.timeouts.header;
    loop {
        if c.buf.is_empty() {
            match TcpStream::wait_for_request(shard, c, wake).await {
                Waited::Request => {}
                Waited::Close => return Opened::Http1(Next::Close),
                Waited::Sleep(left) => return Opened::Undecided(left),
            }
        }
        match preface(c.buf.data()) {
            Preface::H2 => {
                let read = c.buf.data().to_vec();
                c.buf.consume(read.len());
                return Opened::H2(read);
            }
            Preface::Http1 => break,
            Preface::Partial => {
                if read_more_until(&mut c.stream, &mut c.buf, deadline)
                    .await
                    .is_err()
                {
                    return Opened::Http1(Next::Close);
                }
            }
        }
    }
    // The PROXY header is behind us; the bytes read are the first request's.
    Opened::Http1(serve_requests(shard, c, Wake::Again, false).await)
}

/// Serves requests on a connection holding its kit until it closes, sleeps or tunnels; over any
/// stream that knows how to wait for the next request (plain TCP, TLS).
pub(super) async fn serve_requests<S: Wait>(
    shard: &Shard,
    c: &mut Client<S>,
    mut wake: Wake,
    proxy_header: bool,
) -> Next {
    if wake == Wake::First && proxy_header && !read_proxy_header(shard, c).await {
        return Next::Close;
    }
    loop {
        if c.buf.is_empty() {
            match S::wait_for_request(shard, c, wake).await {
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
        let cx = shard.pipeline();
        let ex = pipeline::handle(&cx, &table, c, &req, route, verdict, started).await;
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
