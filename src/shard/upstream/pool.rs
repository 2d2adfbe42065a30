//! Upstream keep-alive connections for one endpoint on one shard: idle connections (LIFO, checked
//! before reuse), a cap on open connections, and a bounded FIFO of requests waiting for one
//! (back-pressure: 503 when it is full or the wait times out). A TLS cluster's connections are
//! pooled the same way: connect is TCP connect plus handshake within the connect timeout, and a
//! reused connection costs no handshake (the liveness peek looks at the TCP socket under TLS).
//! Shard thread only.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use monoio::net::TcpStream;
use monoio::time::{timeout_at, Instant};

use super::stream::{Origination, UpStream};
use crate::config::{Pool, Timeouts};
use crate::error::{TlsFailure, UpstreamError};
use crate::stats::EndpointStats;
use crate::sys::{peek_liveness, Liveness};

struct Idle {
    stream: UpStream,
    since: Instant,
}

/// A request waiting for a connection slot.
#[derive(Default)]
struct Waiter {
    waker: Cell<Option<Waker>>,
    granted: Cell<bool>,
}

pub struct EndpointPool {
    pub addr: SocketAddr,
    limits: Pool,
    connect_timeout: std::time::Duration,
    idle: RefCell<VecDeque<Idle>>,
    /// Busy plus idle connections, counted against `limits.max_connections`.
    open: Cell<usize>,
    waiters: RefCell<VecDeque<Rc<Waiter>>>,
    stats: Rc<EndpointStats>,
    /// Speak TLS to this endpoint (`None`: plain TCP).
    tls: Option<Origination>,
}

/// A connection in use. Give it back with `release` when the exchange left it reusable;
/// dropping it closes the connection and frees its slot.
pub struct Lease<'a> {
    pool: &'a EndpointPool,
    pub stream: Option<UpStream>,
    /// Came from the idle list (so a failure before any response byte may be retried).
    pub reused: bool,
}

impl EndpointPool {
    pub fn new(
        addr: SocketAddr,
        limits: Pool,
        timeouts: &Timeouts,
        stats: Rc<EndpointStats>,
        tls: Option<Origination>,
    ) -> Self {
        EndpointPool {
            addr,
            limits,
            connect_timeout: timeouts.connect,
            idle: RefCell::default(),
            open: Cell::new(0),
            waiters: RefCell::default(),
            stats,
            tls,
        }
    }

    /// How this endpoint's connections speak TLS (health probes use it too).
    pub fn tls(&self) -> Option<&Origination> {
        self.tls.as_ref()
    }

    /// A live idle connection (unless `fresh`), or a new one, waiting in the queue when the
    /// endpoint is at its cap. `connect_timeout` overrides the pool's (a route's timeout).
    ///
    /// `check` peeks at an idle connection before reuse (one `recv(MSG_PEEK)`), to find one the
    /// upstream closed; a caller that can resend the request on a fresh connection skips it.
    pub async fn acquire(
        &self,
        fresh: bool,
        check: bool,
        connect_timeout: Option<std::time::Duration>,
    ) -> Result<Lease<'_>, UpstreamError> {
        let mut deadline = None;
        loop {
            if let Some(stream) = (!fresh).then(|| self.take_idle(check)).flatten() {
                bump(&self.stats.reuses);
                return Ok(Lease {
                    pool: self,
                    stream: Some(stream),
                    reused: true,
                });
            }
            let at_cap =
                self.limits.max_connections != 0 && self.open.get() >= self.limits.max_connections;
            // A fresh-only request cannot use an idle connection: it closes one to take its slot
            // (else a slot handed over through the idle list would sit unused).
            if fresh && at_cap && self.idle.borrow_mut().pop_front().is_some() {
                self.open.set(self.open.get() - 1);
            }
            if self.limits.max_connections == 0 || self.open.get() < self.limits.max_connections {
                self.open.set(self.open.get() + 1);
                bump(&self.stats.connects);
                let limit = connect_timeout.unwrap_or(self.connect_timeout);
                return match self.connect(limit).await {
                    Ok(stream) => Ok(Lease {
                        pool: self,
                        stream: Some(stream),
                        reused: false,
                    }),
                    Err(e) => {
                        self.slot_freed();
                        Err(e)
                    }
                };
            }
            let until = match deadline {
                Some(d) => d,
                None if self.waiters.borrow().len() >= self.limits.queue => {
                    bump(&self.stats.pool_overflows);
                    return Err(UpstreamError::PoolFull);
                }
                None => {
                    bump(&self.stats.pool_waits);
                    *deadline.insert(Instant::now() + self.limits.queue_timeout)
                }
            };
            self.wait_for_slot(until).await?;
        }
    }

    fn take_idle(&self, check: bool) -> Option<UpStream> {
        let mut idle = self.idle.borrow_mut();
        while let Some(c) = idle.pop_back() {
            if c.since.elapsed() < self.limits.idle_timeout
                && (!check || peek_liveness(c.stream.fd()) == Liveness::Open)
            {
                return Some(c.stream);
            }
            self.open.set(self.open.get() - 1);
        }
        None
    }

    /// TCP connect, then the TLS handshake when the endpoint speaks TLS, both within `limit`.
    async fn connect(&self, limit: std::time::Duration) -> Result<UpStream, UpstreamError> {
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
        let Some(tls) = &self.tls else {
            return Ok(UpStream::Plain(tcp));
        };
        let failed = match timeout_at(deadline, tls.handshake(tcp)).await {
            Ok(Ok(s)) => {
                bump(&self.stats.tls_handshakes);
                return Ok(s);
            }
            Ok(Err(e)) => crate::tls::failure(&e),
            Err(_) => TlsFailure::Timeout,
        };
        bump(&self.stats.tls_failures[failed.index()]);
        Err(UpstreamError::Tls(failed))
    }

    /// Waits in FIFO order until a slot is handed over, or `until` passes.
    async fn wait_for_slot(&self, until: Instant) -> Result<(), UpstreamError> {
        let me = Rc::new(Waiter::default());
        self.waiters.borrow_mut().push_back(me.clone());
        let granted = poll_fn(|cx| {
            if me.granted.get() {
                Poll::Ready(())
            } else {
                me.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        });
        let res = timeout_at(until, granted).await;
        if res.is_err() {
            self.waiters.borrow_mut().retain(|w| !Rc::ptr_eq(w, &me));
            if me.granted.get() {
                // Granted in the same tick we timed out: pass the slot on.
                self.grant_next();
            }
            return Err(UpstreamError::PoolTimeout);
        }
        Ok(())
    }

    /// A connection closed: one fewer open, and the first waiter may now connect.
    fn slot_freed(&self) {
        self.open.set(self.open.get() - 1);
        self.grant_next();
    }

    fn grant_next(&self) {
        if let Some(w) = self.waiters.borrow_mut().pop_front() {
            w.granted.set(true);
            if let Some(waker) = w.waker.take() {
                waker.wake();
            }
        }
    }

    /// Closes idle connections past the idle timeout or closed by the upstream.
    pub fn sweep(&self) {
        let mut idle = self.idle.borrow_mut();
        let before = idle.len();
        idle.retain(|c| {
            c.since.elapsed() < self.limits.idle_timeout
                && peek_liveness(c.stream.fd()) == Liveness::Open
        });
        let closed = before - idle.len();
        drop(idle);
        for _ in 0..closed {
            self.slot_freed();
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().len()
    }

    /// Busy plus idle connections.
    pub fn open_count(&self) -> usize {
        self.open.get()
    }

    /// A lease again for a connection `Lease::unbind` took out of this pool (its slot still
    /// counted): `release` it when reusable, drop it to close it and free the slot.
    pub fn rebind(&self, stream: UpStream) -> Lease<'_> {
        Lease {
            pool: self,
            stream: Some(stream),
            reused: false,
        }
    }

    /// Closes every idle connection (the endpoint left the config).
    pub fn close_idle(&self) {
        let n = self.idle.borrow().len();
        self.idle.borrow_mut().clear();
        for _ in 0..n {
            self.slot_freed();
        }
    }
}

#[inline]
fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

impl Lease<'_> {
    /// Returns a connection that finished an exchange cleanly to the idle list.
    pub fn release(mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let pool = self.pool;
        let mut idle = pool.idle.borrow_mut();
        if idle.len() < pool.limits.max_idle && pool.waiters.borrow().is_empty() {
            idle.push_back(Idle {
                stream,
                since: Instant::now(),
            });
            return;
        }
        drop(idle);
        if pool.waiters.borrow().is_empty() {
            drop(stream);
            pool.slot_freed();
        } else {
            // Someone is waiting: hand the live connection over through the idle list.
            pool.idle.borrow_mut().push_back(Idle {
                stream,
                since: Instant::now(),
            });
            pool.grant_next();
        }
    }

    /// Takes the connection out of the pool for good (a tunnel after `101`): its slot is freed,
    /// so tunnels do not count against `max_connections`.
    pub fn detach(mut self) -> UpStream {
        let stream = self
            .stream
            .take()
            .expect("lease holds a stream until released");
        self.pool.slot_freed();
        stream
    }

    /// Takes the connection out of the lease while it stays counted as open (its slot is
    /// kept): for a holder that outlives the borrow, such as the library's response body, which
    /// hands it back with `EndpointPool::rebind` when the body is read or dropped.
    pub fn unbind(mut self) -> UpStream {
        self.stream
            .take()
            .expect("lease holds a stream until released")
    }

    pub fn stream(&mut self) -> &mut UpStream {
        self.stream
            .as_mut()
            .expect("lease holds a stream until released")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.stream.take().is_some() {
            self.pool.slot_freed();
        }
    }
}
