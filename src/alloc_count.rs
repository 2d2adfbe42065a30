//! Bench-only (`--features alloc-count`): a global allocator that counts allocations on top of the
//! system allocator, so `bench/alloc.sh` can tell allocations per request in steady state. One
//! relaxed atomic add per allocation: fine for a measuring build, never in a release.
//! `allocations: N` goes to stderr on SIGUSR1 (without stopping) and at exit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed unchanged to the system allocator; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    /// A realloc may move the block: it counts as an allocation.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn count(bytes: usize) {
    ALLOCATIONS.fetch_add(1, Relaxed);
    BYTES.fetch_add(bytes as u64, Relaxed);
}

/// Prints the counters to stderr (read first, so printing does not count itself).
pub fn report() {
    let (n, b) = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
    eprintln!("allocations: {n} bytes: {b}");
}

/// Prints the counters on every SIGUSR1, from a thread of its own.
pub fn report_on_sigusr1() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])
    else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("alloc-count".into())
        .spawn(move || signals.forever().for_each(|_| report()));
}
