//! HTTP/2 connections to one endpoint on one shard (clusters with `protocol = "h2"` or `"h2c"`):
//! each connection's `SendRequest` handle with the streams in flight on it, kept under the
//! upstream's SETTINGS_MAX_CONCURRENT_STREAMS; a request takes a stream on the least busy
//! connection, else one new connection is opened (single-flight: one connect at a time per
//! endpoint, the others wait for it) up to `max_connections`, else it waits in the bounded queue
//! (503 when full or past the queue timeout), as the HTTP/1.1 pool does. A connection that got a
//! GOAWAY (or failed) takes no new streams; its in-flight ones finish and it leaves the pool when
//! its task ends. Each connection's task (h2conn.rs) drives its I/O, PINGs it and closes it when
//! idle. h2c is prior knowledge over TCP; h2 is TLS with ALPN `h2` (refused when the upstream
//! selects anything else). Counts open connections, streams in flight, GOAWAYs and refused
//! streams in the endpoint's statistics (stats/upstream_h2.rs). Shard thread only.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use monoio::net::TcpStream;
use monoio::time::{timeout_at, Instant};

use super::attempt::{Done, Failed};
use super::h2conn::{self, Conn};
use super::stream::{Origination, UpStream};
use crate::config::Pool;
use crate::error::{ProxyError, TlsFailure, UpstreamError};
use crate::stats::{shift, EndpointStats};

/// Flow-control windows this proxy grants an upstream: what one stream (and one connection) may
/// have in flight towards a client that reads slowly (capacity is released only once bytes went
/// on to the client).
pub const STREAM_WINDOW: u32 = 256 * 1024;
pub const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// The compat wrapper's buffers and `h2`'s send buffer per connection, and the largest header
/// list taken from an upstream.
const BUFFER: usize = 64 * 1024;

/// The pool's state, shared with the connection tasks (which leave it when they end).
struct Inner {
    addr: SocketAddr,
    limits: Pool,
    connect_timeout: Duration,
    stats: Rc<EndpointStats>,
    tls: Option<Origination>,
    /// Sent as `:scheme`.
    pub scheme: &'static str,
    conns: RefCell<Vec<Rc<Conn>>>,
    /// A connect is under way (single-flight).
    connecting: Cell<bool>,
    /// Requests waiting for a stream; all are woken when anything changes (a stream ends, a
    /// connection opens or goes) and look again.
    waiters: RefCell<Vec<Waker>>,
    waiting: Cell<usize>,
    generation: Cell<u64>,
}

/// HTTP/2 connections to one endpoint.
pub struct H2Pool {
    inner: Rc<Inner>,
}

/// One stream's place on a connection: give it back by dropping it.
pub struct H2Lease {
    pool: Rc<Inner>,
    conn: Rc<Conn>,
    /// A handle to open the stream with.
    pub send: SendRequest<Bytes>,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The connection existed before this request (a failure on it may be the connection's).
    pub reused: bool,
}

impl H2Lease {
    /// Counts what an attempt on this stream says about the endpoint: a stream it refused
    /// unprocessed, a GOAWAY on the connection.
    pub fn account(&self, result: Result<Done, Failed>) -> Result<Done, Failed> {
        if let Err(f) = &result {
            if f.error == ProxyError::Upstream(UpstreamError::Refused) {
                bump(&self.pool.stats.h2.refused);
                self.pool.check_goaway(&self.conn);
            }
        }
        result
    }
}

impl Drop for H2Lease {
    fn drop(&mut self) {
        let c = &self.conn;
        shift(&self.pool.stats.h2.streams, false);
        c.in_flight.set(c.in_flight.get() - 1);
        if c.in_flight.get() == 0 {
            c.idle_since.set(Instant::now());
        }
        self.pool.notify();
    }
}

/// Resets the single-flight flag however the connect ends (also when the request is dropped).
struct Connecting<'a>(&'a Inner);

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.connecting.set(false);
        self.0.notify();
    }
}

impl H2Pool {
    /// `tls`: speak h2 over TLS (its connector offers ALPN `h2`); `None`: h2c.
    pub fn new(
        addr: SocketAddr,
        limits: Pool,
        connect_timeout: Duration,
        stats: Rc<EndpointStats>,
        tls: Option<Origination>,
    ) -> H2Pool {
        let scheme = if tls.is_some() { "https" } else { "http" };
        H2Pool {
            inner: Rc::new(Inner {
                addr,
                limits,
                connect_timeout,
                stats,
                tls,
                scheme,
                conns: RefCell::default(),
                connecting: Cell::new(false),
                waiters: RefCell::default(),
                waiting: Cell::new(0),
                generation: Cell::new(0),
            }),
        }
    }

    /// Open connections (draining ones included, a connect under way counted).
    pub fn open_count(&self) -> usize {
        self.inner.conns.borrow().len() + usize::from(self.inner.connecting.get())
    }

    /// A stream on a connection with room, a new connection when every one is full, or a wait
    /// in the queue. `connect_timeout` overrides the pool's (a route's timeout).
    pub async fn acquire(
        &self,
        connect_timeout: Option<Duration>,
    ) -> Result<H2Lease, UpstreamError> {
        let p = &self.inner;
        let mut deadline = None;
        loop {
            if let Some(conn) = p.pick() {
                bump(&p.stats.reuses);
                return Ok(p.lease(conn, true));
            }
            let cap = p.limits.max_connections;
            if !p.connecting.get() && (cap == 0 || p.conns.borrow().len() < cap) {
                p.connecting.set(true);
                let guard = Connecting(p);
                bump(&p.stats.connects);
                let limit = connect_timeout.unwrap_or(p.connect_timeout);
                let conn = p.connect(limit, &self.inner).await;
                drop(guard);
                return Ok(p.lease(conn?, false));
            }
            // Waiting for a connect under way is not queueing for a full endpoint: the queue's
            // bound applies at the connection cap only (the queue timeout bounds both).
            let full = cap != 0 && p.conns.borrow().len() >= cap;
            let until = match deadline {
                Some(d) => d,
                None if full && p.waiting.get() >= p.limits.queue => {
                    bump(&p.stats.pool_overflows);
                    return Err(UpstreamError::PoolFull);
                }
                None => {
                    bump(&p.stats.pool_waits);
                    *deadline.insert(Instant::now() + p.limits.queue_timeout)
                }
            };
            p.wait(until).await?;
        }
    }

    /// Drops the pool's hold on its connections (the endpoint left the config): idle ones close
    /// at once, busy ones when their streams end.
    pub fn close_idle(&self) {
        for c in self.inner.conns.borrow().iter() {
            c.draining.set(true);
        }
        self.inner.notify();
    }
}

impl Inner {
    /// The least busy connection that takes another stream now.
    fn pick(&self) -> Option<Rc<Conn>> {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let conns = self.conns.borrow();
        let mut best: Option<&Rc<Conn>> = None;
        for c in conns.iter() {
            if c.draining.get() {
                continue;
            }
            let mut send = c.send.borrow_mut();
            match send.poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    // A GOAWAY came (or the connection failed): in-flight streams finish.
                    c.draining.set(true);
                    self.note_goaway(c, &e);
                    continue;
                }
                Poll::Pending => continue,
            }
            let max = send.current_max_send_streams();
            if c.in_flight.get() < max && best.is_none_or(|b| c.in_flight.get() < b.in_flight.get())
            {
                best = Some(c);
            }
        }
        best.cloned()
    }

    /// Counts a GOAWAY the upstream sent on `c` (`e`: the error its handle now reports), once
    /// per connection.
    fn note_goaway(&self, c: &Conn, e: &h2::Error) {
        if e.is_go_away() && e.is_remote() && !c.goaway.replace(true) {
            bump(&self.stats.h2.goaways);
        }
    }

    /// Looks whether `c` has had a GOAWAY (its handle reports it as an error).
    fn check_goaway(&self, c: &Conn) {
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(Err(e)) = c.send.borrow_mut().poll_ready(&mut cx) {
            self.note_goaway(c, &e);
        }
    }

    fn lease(self: &Rc<Self>, conn: Rc<Conn>, reused: bool) -> H2Lease {
        shift(&self.stats.h2.streams, true);
        conn.in_flight.set(conn.in_flight.get() + 1);
        let send = conn.send.borrow().clone();
        H2Lease {
            pool: self.clone(),
            conn,
            send,
            scheme: self.scheme,
            reused,
        }
    }

    /// TCP connect, the TLS handshake with ALPN `h2` (h2 only), the HTTP/2 preface, within
    /// `limit`; the connection's task is spawned and the connection joins the pool.
    async fn connect(&self, limit: Duration, me: &Rc<Inner>) -> Result<Rc<Conn>, UpstreamError> {
        let deadline = Instant::now() + limit;
        let tcp = match timeout_at(deadline, TcpStream::connect_addr(self.addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                s
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(UpstreamError::ConnectTimeout)
            }
            Ok(Err(e)) => return Err(UpstreamError::Connect(e.kind())),
            Err(_) => return Err(UpstreamError::ConnectTimeout),
        };
        let stream = match &self.tls {
            None => UpStream::Plain(tcp),
            Some(tls) => {
                let failed = match timeout_at(deadline, tls.handshake(tcp)).await {
                    Ok(Ok(s)) if selected_h2(&s) => {
                        bump(&self.stats.tls_handshakes);
                        Ok(s)
                    }
                    Ok(Ok(_)) => Err(TlsFailure::Handshake),
                    Ok(Err(e)) => Err(crate::tls::failure(&e)),
                    Err(_) => Err(TlsFailure::Timeout),
                };
                match failed {
                    Ok(s) => s,
                    Err(f) => {
                        bump(&self.stats.tls_failures[f.index()]);
                        return Err(UpstreamError::Tls(f));
                    }
                }
            }
        };
        let io = monoio_compat::StreamWrapper::new_with_buffer_size(stream, BUFFER, BUFFER);
        let mut b = h2::client::Builder::new();
        // Until the upstream's SETTINGS arrive, as many streams as RFC 9113 §6.5.2 recommends
        // every peer allow (h2's default is unlimited: a burst would meet REFUSED_STREAM).
        b.enable_push(false)
            .initial_max_send_streams(100)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(BUFFER)
            .max_header_list_size(u32::try_from(BUFFER).unwrap_or(u32::MAX));
        let (send, conn) = match timeout_at(deadline, b.handshake::<_, Bytes>(io)).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                let kind = e
                    .get_io()
                    .map_or(std::io::ErrorKind::InvalidData, |e| e.kind());
                return Err(UpstreamError::Connect(kind));
            }
            Err(_) => return Err(UpstreamError::ConnectTimeout),
        };
        let c = Rc::new(Conn::new(send));
        shift(&self.stats.h2.connections, true);
        self.conns.borrow_mut().push(c.clone());
        let idle = self.limits.idle_timeout;
        let (pool, ended) = (me.clone(), c.clone());
        let on_end = move || pool.closed(&ended);
        monoio::spawn(h2conn::drive(conn, c.clone(), idle, on_end));
        Ok(c)
    }

    /// The connection's task ended: it leaves the pool.
    fn closed(&self, c: &Rc<Conn>) {
        self.check_goaway(c);
        shift(&self.stats.h2.connections, false);
        c.draining.set(true);
        self.conns.borrow_mut().retain(|x| !Rc::ptr_eq(x, c));
        self.notify();
    }

    /// Wakes every waiter: something changed, each looks again.
    fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Waits until something changes in the pool, or `until` passes (`PoolTimeout`).
    async fn wait(&self, until: Instant) -> Result<(), UpstreamError> {
        let seen = self.generation.get();
        self.waiting.set(self.waiting.get() + 1);
        let changed = poll_fn(|cx| {
            if self.generation.get() != seen {
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        });
        let res = timeout_at(until, changed).await;
        self.waiting.set(self.waiting.get() - 1);
        res.map_err(|_| UpstreamError::PoolTimeout)
    }
}

/// The TLS handshake selected ALPN `h2`.
fn selected_h2(s: &UpStream) -> bool {
    match s {
        UpStream::Tls { stream, .. } => stream.conn.alpn_protocol() == Some(b"h2"),
        UpStream::Plain(_) => false,
    }
}

#[inline]
fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}
