//! A keep-alive client connection asleep between requests, without its kit: it waits for
//! readiness alone (no buffer is lent to the kernel), for the rest of its idle timeout, which one
//! per-shard task enforces for all sleepers; a drain ends the sleep early. Shard thread.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::shard::drain::Drain;

/// How often sleepers past their idle timeout are found: the precision of idle timeouts longer
/// than `idle_buffer_time` (shorter ones are timed exactly, while the kit is held).
pub const REAP_EVERY: Duration = Duration::from_millis(100);

/// Puts a connection to sleep for `left` (the rest of its idle timeout): it then waits for
/// readiness alone, and `Drain::wake_up` says whether it woke in time. False: a drain has
/// closed the idle connections, or no time is left; close instead. (During a drain's
/// `drain_idle_grace` only connections idle since before the drain get here: they sleep until
/// `Drain::close_idle`, so a request sent meanwhile is still answered.) No timer of its own (a monoio timer is 640 bytes): the
/// shard's `reap` task ends the sleeps that pass their time.
pub fn fall_asleep(drain: &Drain, slot: usize, left: Duration) -> bool {
    if drain.idle_closed() || left.is_zero() {
        return false;
    }
    drain.sleep(slot, Instant::now() + left);
    true
}

/// The shard's one timer for all sleeping connections.
pub async fn reap(drain: Rc<Drain>) {
    loop {
        monoio::time::sleep(REAP_EVERY).await;
        drain.reap(Instant::now());
    }
}
