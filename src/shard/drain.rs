//! One shard's drain state: open connections and in-flight requests (counted by guards), the
//! registry of idle keep-alive sockets whose reads a drain ends (by shutting their receive side),
//! the busy connections it wakes (HTTP/2: GOAWAY), and the wake-up the control task and accept
//! loops wait on. Shard thread only: `Cell`/`RefCell`, no atomics.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use std::os::fd::RawFd;
use std::time::Instant;

#[derive(Clone, Copy)]
struct Slot {
    fd: RawFd,
    idle: bool,
    /// Asleep until then (the rest of its idle timeout); `None` when awake.
    until: Option<Instant>,
    /// The idle timeout passed while asleep: the socket's receive side was shut to wake it.
    expired: bool,
    /// A tunnel's upstream socket (-1: not a tunnel); a drain shuts it and `fd` to end the tunnel.
    tunnel_up: RawFd,
    /// Idle when the drain started and not busy since: `close_idle` ends it.
    doomed: bool,
}

impl Slot {
    const FREE: Slot = Slot {
        fd: -1,
        idle: false,
        until: None,
        expired: false,
        tunnel_up: -1,
        doomed: false,
    };
}

#[derive(Default)]
pub struct Drain {
    draining: Cell<bool>,
    /// `close_idle` ran: from now on an idle connection closes instead of waiting.
    idle_closed: Cell<bool>,
    connections: Cell<usize>,
    requests: Cell<usize>,
    /// Each open connection's socket and whether it is waiting for its next request; a drain
    /// shuts the receive side of the idle ones, so their reads end (bytes already read are
    /// still served). Slots are reused; a connection holds one for its lifetime.
    idle: RefCell<Vec<Slot>>,
    free: RefCell<Vec<usize>>,
    /// Connections asleep without their kit (see `sleep`); `reap` ends those past their time.
    asleep: Cell<usize>,
    /// Connections that became tunnels (after a 101), and whether the drain has closed them (a
    /// tunnel opened after that closes at once).
    tunnels: Cell<usize>,
    tunnels_closed: Cell<bool>,
    /// The control task waiting for connections to reach zero, or the accept loop for a free slot.
    waiters: RefCell<Vec<Waker>>,
    /// Per slot, a busy connection that must act when the drain starts (an HTTP/2 connection
    /// sends GOAWAY): its task's waker, replaced on each poll, so the list never grows.
    watchers: RefCell<Vec<Option<Waker>>>,
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// A drain has closed the idle connections (`close_idle`): no connection may idle any more.
    pub fn idle_closed(&self) -> bool {
        self.idle_closed.get()
    }

    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    pub fn requests(&self) -> usize {
        self.requests.get()
    }

    /// Connections asleep without their kit.
    pub fn asleep(&self) -> usize {
        self.asleep.get()
    }

    /// Connections that are tunnels.
    pub fn tunnels(&self) -> usize {
        self.tunnels.get()
    }

    /// The connection in `slot` becomes a tunnel to `up_fd`. False: the drain already closed the
    /// tunnels, do not open this one.
    pub fn open_tunnel(&self, slot: usize, up_fd: RawFd) -> bool {
        if self.tunnels_closed.get() {
            return false;
        }
        self.idle.borrow_mut()[slot].tunnel_up = up_fd;
        self.tunnels.set(self.tunnels.get() + 1);
        true
    }

    /// Ends every tunnel (both sockets shut: their relays see EOF and close) and any opened later.
    /// The drain calls it once in-flight requests have finished or its grace has passed.
    pub fn close_tunnels(&self) {
        if self.tunnels_closed.replace(true) {
            return;
        }
        for s in self.idle.borrow().iter().filter(|s| s.tunnel_up >= 0) {
            crate::sys::shutdown_both(s.fd);
            crate::sys::shutdown_both(s.tunnel_up);
        }
    }

    /// Wakes the connections idle since the drain started, so they close (by shutting their
    /// receive side; bytes already read are still served).
    pub fn close_idle(&self) {
        self.idle_closed.set(true);
        for s in self.idle.borrow_mut().iter_mut() {
            if s.doomed && s.idle {
                crate::sys::shutdown_read(s.fd);
            }
            s.doomed = false;
        }
    }

    /// Starts the drain: stop accepting, mark the idle connections for `close_idle` (the control
    /// task calls it after `drain_idle_grace`: a client that sends its next request meanwhile
    /// gets it answered with `Connection: close` instead of a close it would have to retry).
    pub fn start(&self) {
        if self.draining.replace(true) {
            return;
        }
        for s in self.idle.borrow_mut().iter_mut() {
            s.doomed = s.idle;
        }
        for w in self.watchers.borrow_mut().iter_mut() {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
        self.wake_all();
    }

    /// Resolves once the drain has started; the connection in `slot` is woken then, however busy.
    pub async fn started(&self, slot: usize) {
        poll_fn(|cx| {
            if self.is_draining() {
                return Poll::Ready(());
            }
            let mut w = self.watchers.borrow_mut();
            if w.len() <= slot {
                w.resize(slot + 1, None);
            }
            if !w[slot].as_ref().is_some_and(|o| o.will_wake(cx.waker())) {
                w[slot] = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Registers a connection's socket; `release` it when the connection ends.
    pub fn register(&self, fd: RawFd) -> usize {
        let mut idle = self.idle.borrow_mut();
        let s = Slot { fd, ..Slot::FREE };
        match self.free.borrow_mut().pop() {
            Some(slot) => {
                idle[slot] = s;
                slot
            }
            None => {
                idle.push(s);
                idle.len() - 1
            }
        }
    }

    pub fn release(&self, slot: usize) {
        let mut idle = self.idle.borrow_mut();
        if idle[slot].tunnel_up >= 0 {
            self.tunnels.set(self.tunnels.get() - 1);
        }
        idle[slot] = Slot::FREE;
        drop(idle);
        if let Some(w) = self.watchers.borrow_mut().get_mut(slot) {
            *w = None;
        }
        self.free.borrow_mut().push(slot);
    }

    /// Marks the connection as waiting for its next request (or not).
    #[inline]
    pub fn set_idle(&self, slot: usize, idle: bool) {
        let s = &mut self.idle.borrow_mut()[slot];
        s.idle = idle;
        // Busy again: it answers with `Connection: close` and closes by itself.
        s.doomed &= idle;
    }

    /// The connection in `slot`, idle, closes at `close_idle` unless a request comes first.
    pub fn doom(&self, slot: usize) {
        self.idle.borrow_mut()[slot].doomed = true;
    }

    /// The connection sleeps without its kit until `until` (its idle timeout): idle for the
    /// drain, and due for `reap` then. One timer for all sleepers instead of one each.
    pub fn sleep(&self, slot: usize, until: Instant) {
        let mut idle = self.idle.borrow_mut();
        idle[slot] = Slot {
            idle: true,
            until: Some(until),
            expired: false,
            // Only a connection idle since before the drain falls asleep during it.
            doomed: self.is_draining(),
            ..idle[slot]
        };
        self.asleep.set(self.asleep.get() + 1);
    }

    /// The sleeper woke; false if it woke because its idle timeout passed.
    pub fn wake_up(&self, slot: usize) -> bool {
        let mut idle = self.idle.borrow_mut();
        let s = &mut idle[slot];
        let timely = !s.expired;
        *s = Slot {
            fd: s.fd,
            ..Slot::FREE
        };
        self.asleep.set(self.asleep.get() - 1);
        timely
    }

    /// Wakes the sleepers whose idle timeout passed (by shutting their receive side; they close).
    pub fn reap(&self, now: Instant) {
        if self.asleep.get() == 0 {
            return;
        }
        for s in self.idle.borrow_mut().iter_mut() {
            if !s.expired && s.until.is_some_and(|u| u <= now) {
                s.expired = true;
                crate::sys::shutdown_read(s.fd);
            }
        }
    }

    /// Counts a connection until the guard drops.
    pub fn connection(self: &Rc<Self>) -> ConnectionGuard {
        self.connections.set(self.connections.get() + 1);
        ConnectionGuard(self.clone())
    }

    /// Counts an in-flight request until the guard drops.
    pub fn request(self: &Rc<Self>) -> RequestGuard {
        self.requests.set(self.requests.get() + 1);
        RequestGuard(self.clone())
    }

    /// Resolves once `cond` holds; re-checked whenever a connection closes or the drain starts.
    pub async fn wait_until(&self, cond: impl Fn(&Drain) -> bool) {
        poll_fn(|cx| {
            if cond(self) {
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Wakes every waiter to re-check its condition (a listener was closed by a reload).
    pub fn wake(&self) {
        self.wake_all();
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }
}

pub struct ConnectionGuard(Rc<Drain>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
        self.0.wake_all();
    }
}

pub struct RequestGuard(Rc<Drain>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.requests.set(self.0.requests.get() - 1);
    }
}
