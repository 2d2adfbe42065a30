//! A per-shard free list of heap blocks for connections' boxed serving futures: a connection that
//! sleeps between requests drops its serving future (some KiB) and the next wake-up builds a new
//! one in a block from this list. Freeing them to the allocator instead would let the small,
//! long-lived allocations of new connections split the freed blocks, so a crowd of idle
//! connections would leave the heap full of holes. Bounded; shard thread only.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// Blocks kept per shard; more are freed when given back.
const KEEP: usize = 64;

#[derive(Default)]
pub struct BoxPool {
    free: RefCell<Vec<(NonNull<u8>, Layout)>>,
}

/// A future in a block of its pool; the block goes back to the pool when this drops.
pub struct Pooled<'p, F> {
    ptr: NonNull<F>,
    pool: &'p BoxPool,
}

impl BoxPool {
    /// Moves `f` into a pooled block (a new one if none of its size is free).
    pub fn pin<F: Future>(&self, f: F) -> Pooled<'_, F> {
        let layout = Layout::new::<F>();
        assert!(layout.size() > 0, "a pooled future has a size");
        let block = {
            let mut free = self.free.borrow_mut();
            match free.iter().rposition(|&(_, l)| l == layout) {
                Some(i) => free.swap_remove(i).0,
                None => {
                    // SAFETY: the layout has a non-zero size (asserted above).
                    let p = unsafe { alloc(layout) };
                    NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout))
                }
            }
        };
        let ptr = block.cast::<F>();
        // SAFETY: `block` is valid for writes of `layout`, the layout of F, and unused.
        unsafe { ptr.as_ptr().write(f) };
        Pooled { ptr, pool: self }
    }

    fn give(&self, block: NonNull<u8>, layout: Layout) {
        let mut free = self.free.borrow_mut();
        if free.len() < KEEP {
            free.push((block, layout));
        } else {
            // SAFETY: the block came from `alloc(layout)` and nothing refers to it any more.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

impl Drop for BoxPool {
    fn drop(&mut self) {
        for (block, layout) in self.free.get_mut().drain(..) {
            // SAFETY: each block came from `alloc(layout)` and holds no value.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

impl<F: Future> Future for Pooled<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future stays in its block, never moved, until `drop` drops it in place.
        unsafe { Pin::new_unchecked(&mut *self.ptr.as_ptr()) }.poll(cx)
    }
}

impl<F> Drop for Pooled<'_, F> {
    fn drop(&mut self) {
        // SAFETY: the block holds a live F written by `pin`; it is dropped once, here.
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
        self.pool.give(self.ptr.cast(), Layout::new::<F>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn blocks_are_reused_values_dropped_and_the_pool_bounded() {
        let pool = BoxPool::default();
        let alive = Rc::new(());
        let a = pool.pin({
            let alive = alive.clone();
            async move { Rc::strong_count(&alive) }
        });
        let first = a.ptr.cast::<u8>();
        assert_eq!(Rc::strong_count(&alive), 2);
        drop(a);
        assert_eq!(
            Rc::strong_count(&alive),
            1,
            "the future was dropped in place"
        );
        let b = pool.pin({
            let alive = alive.clone();
            async move { Rc::strong_count(&alive) }
        });
        assert_eq!(b.ptr.cast::<u8>(), first, "the block was reused");
        let out = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap()
            .block_on(b);
        assert_eq!(out, 2);
        let many: Vec<_> = (0..KEEP + 3).map(|i| pool.pin(async move { i })).collect();
        drop(many);
        assert_eq!(pool.free.borrow().len(), KEEP);
    }
}
