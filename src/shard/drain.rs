//! One shard's drain state: open connections and in-flight requests (counted by guards), the
//! registry of idle keep-alive sockets whose reads a drain ends (by shutting their receive side),
//! and the wake-up the control task and accept loops wait on. Shard thread only: `Cell`/`RefCell`,
//! no atomics.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use std::os::fd::RawFd;

#[derive(Default)]
pub struct Drain {
    draining: Cell<bool>,
    connections: Cell<usize>,
    requests: Cell<usize>,
    /// Each open connection's socket and whether it is waiting for its next request; a drain
    /// shuts the receive side of the idle ones, so their reads end (bytes already read are
    /// still served). Slots are reused; a connection holds one for its lifetime.
    idle: RefCell<Vec<(RawFd, bool)>>,
    free: RefCell<Vec<usize>>,
    /// The control task waiting for connections to reach zero, or the accept loop for a free slot.
    waiters: RefCell<Vec<Waker>>,
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    pub fn requests(&self) -> usize {
        self.requests.get()
    }

    /// Starts the drain: stop accepting, wake idle connections so they close.
    pub fn start(&self) {
        if self.draining.replace(true) {
            return;
        }
        for &(fd, idle) in self.idle.borrow().iter() {
            if idle {
                crate::sys::shutdown_read(fd);
            }
        }
        self.wake_all();
    }

    /// Registers a connection's socket; `release` it when the connection ends.
    pub fn register(&self, fd: RawFd) -> usize {
        let mut idle = self.idle.borrow_mut();
        match self.free.borrow_mut().pop() {
            Some(slot) => {
                idle[slot] = (fd, false);
                slot
            }
            None => {
                idle.push((fd, false));
                idle.len() - 1
            }
        }
    }

    pub fn release(&self, slot: usize) {
        self.idle.borrow_mut()[slot] = (-1, false);
        self.free.borrow_mut().push(slot);
    }

    /// Marks the connection as waiting for its next request (or not).
    #[inline]
    pub fn set_idle(&self, slot: usize, idle: bool) {
        self.idle.borrow_mut()[slot].1 = idle;
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
