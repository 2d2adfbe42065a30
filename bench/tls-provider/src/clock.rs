//! This thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so time the scheduler gave to other work on
//! a shared machine is not counted. Reading it is a system call (no vDSO for this clock): the
//! cost of one start/stop pair is measured once and subtracted from every span.

use std::sync::OnceLock;

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Median cost of an empty span, in ns.
fn overhead_ns() -> u64 {
    static OVERHEAD: OnceLock<u64> = OnceLock::new();
    *OVERHEAD.get_or_init(|| {
        let mut v: Vec<u64> = (0..10_001)
            .map(|_| {
                let s = now_ns();
                now_ns() - s
            })
            .collect();
        v.sort_unstable();
        v[v.len() / 2]
    })
}

pub struct Span(u64);

impl Span {
    pub fn start() -> Span {
        Span(now_ns())
    }

    /// CPU ns since `start`, less the measured cost of reading the clock.
    pub fn ns(&self) -> u64 {
        (now_ns() - self.0).saturating_sub(overhead_ns())
    }
}

/// Prints the clock's own cost, so a reader can judge what was subtracted.
pub fn calibrate() -> u64 {
    overhead_ns()
}
