//! One shard's drain state: open connections and in-flight requests (counted by guards), the
//! cancellers that pull accept and idle keep-alive reads out of the kernel, and the wake-up the
//! control task waits on. Shard thread only: `Cell`/`RefCell`, no atomics.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use monoio::io::{CancelHandle, Canceller};

#[derive(Default)]
pub struct Drain {
    draining: Cell<bool>,
    connections: Cell<usize>,
    requests: Cell<usize>,
    /// Cancels idle keep-alive reads (a read that already got bytes still returns them).
    idle_reads: RefCell<Canceller>,
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
        let c = self.idle_reads.replace(Canceller::new());
        c.cancel();
        self.wake_all();
    }

    pub fn idle_read_handle(&self) -> CancelHandle {
        self.idle_reads.borrow().handle()
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
