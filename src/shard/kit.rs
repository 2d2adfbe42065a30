//! The per-shard pool of connection kits: the buffers a client connection needs only while it is
//! serving requests (client-side and upstream-side read buffers, the rewritten heads, admission
//! scratch). A connection idle past `idle_buffer_time` gives its kit back; the next request takes
//! one; so does every HTTP/2 stream while it runs. Bounded: kits beyond the bound are freed (their
//! large buffers have mappings of their own, `sys::map_large_allocations`, so freeing them returns
//! the memory). The bound is high while the shard is busy (hundreds of HTTP/2 streams in flight
//! each hold a kit: a lower bound makes most of them map and unmap two buffers per request) and
//! drops back once no kit was taken for `TRIM_EVERY`. Shard thread only.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use monoio::io::Canceller;

use super::io::Buf;
use super::pipeline::admission::Scratch;

/// Kits kept for reuse per shard while kits are being taken; more are freed when given back.
const KEEP: usize = 1024;
/// Kits kept once the shard has been quiet (no kit taken) for `TRIM_EVERY`.
const KEEP_QUIET: usize = 64;
/// How often the shard looks whether it has been quiet (`Kits::trim`).
pub const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Everything a connection holds only while serving.
pub struct Kit {
    /// Bytes read from the client: request heads, bodies, pipelined requests.
    pub buf: Buf,
    /// Bytes read from the upstream of the current exchange.
    pub up_buf: Buf,
    /// The rewritten request head sent upstream (kept for a retry).
    pub head: Vec<u8>,
    /// The response head sent to the client.
    pub out: Vec<u8>,
    pub scratch: Scratch,
    /// Cancels a keep-alive read that waited too long.
    pub cancel: Canceller,
}

pub struct Kits {
    buffer_size: usize,
    upstream_buffer_size: usize,
    free: RefCell<Vec<Kit>>,
    /// Kits taken since the last `trim`.
    taken: Cell<u64>,
    /// Kits allocated because none was free (the `shardgate_kits_allocated_total` counter).
    allocated: Cell<u64>,
}

impl Kits {
    pub fn new(buffer_size: usize, upstream_buffer_size: usize) -> Kits {
        Kits {
            buffer_size,
            upstream_buffer_size,
            free: RefCell::new(Vec::new()),
            taken: Cell::new(0),
            allocated: Cell::new(0),
        }
    }

    pub fn take(&self) -> Kit {
        self.taken.set(self.taken.get() + 1);
        self.free
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| self.allocate())
    }

    fn allocate(&self) -> Kit {
        self.allocated.set(self.allocated.get() + 1);
        Kit {
            buf: Buf::with_capacity(self.buffer_size),
            up_buf: Buf::with_capacity(self.upstream_buffer_size),
            head: Vec::with_capacity(1024),
            out: Vec::with_capacity(1024),
            scratch: Scratch::default(),
            cancel: Canceller::new(),
        }
    }

    /// Takes a kit back, empty (a connection that gives its kit back has no bytes pending).
    pub fn give(&self, mut kit: Kit) {
        let mut free = self.free.borrow_mut();
        // An I/O op abandoned by a timeout keeps the buffer it was lent: such a kit is not whole.
        let whole = kit.buf.v.capacity() >= self.buffer_size
            && kit.up_buf.v.capacity() >= self.upstream_buffer_size;
        if free.len() >= KEEP || !whole {
            return;
        }
        kit.buf.consume(kit.buf.len());
        // A buffer a request body replay grew (upstream/replay.rs) goes back to its size.
        kit.buf.v.shrink_to(self.buffer_size);
        kit.up_buf.consume(kit.up_buf.len());
        kit.head.clear();
        kit.out.clear();
        free.push(kit);
    }

    /// Frees the kits kept beyond `KEEP_QUIET` when none was taken since the last call (every
    /// `TRIM_EVERY`, from the shard's own task).
    pub fn trim(&self) {
        if self.taken.replace(0) == 0 {
            self.free.borrow_mut().truncate(KEEP_QUIET);
        }
    }

    /// Kits allocated since start because the pool had none free.
    pub fn allocated(&self) -> u64 {
        self.allocated.get()
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kits_are_reused_empty_and_bounded() {
        let kits = Kits::new(1024, 4096);
        let mut k = kits.take();
        k.buf.v.extend_from_slice(b"GET / HTTP/1.1\r\n");
        k.head.extend_from_slice(b"head");
        let ptr = k.buf.v.as_ptr();
        kits.give(k);
        let k = kits.take();
        assert_eq!(k.buf.v.as_ptr(), ptr, "the same buffer comes back");
        assert!(k.buf.is_empty() && k.head.is_empty());
        assert_eq!(k.up_buf.v.capacity(), 4096);
        let many: Vec<Kit> = (0..KEEP + 10).map(|_| kits.take()).collect();
        for k in many {
            kits.give(k);
        }
        assert_eq!(kits.kept(), KEEP);
        kits.give(k);
        assert_eq!(kits.kept(), KEEP);
        assert_eq!(
            kits.allocated(),
            KEEP as u64 + 11,
            "the first kit, then KEEP + 10 more"
        );
        // Busy since the last trim: all kept; quiet for a whole period: back to KEEP_QUIET.
        kits.trim();
        assert_eq!(kits.kept(), KEEP);
        kits.trim();
        assert_eq!(kits.kept(), KEEP_QUIET);
        // A buffer lost to an abandoned read makes the kit unfit for reuse.
        let kits = Kits::new(1024, 4096);
        let mut k = kits.take();
        k.up_buf.v = Vec::new();
        kits.give(k);
        assert_eq!(kits.kept(), 0);
        assert_eq!(kits.take().up_buf.v.capacity(), 4096);
    }
}
