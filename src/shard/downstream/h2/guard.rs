//! What an HTTP/2 connection's task does against abusive clients beyond `h2`'s own limits, and
//! how it counts the GOAWAYs it sends (`shardgate_downstream_http2_goaways_total{reason}`).
//!
//! `h2` bounds the streams a client resets while they wait to be accepted
//! (`max_pending_accept_reset_streams`), but a stream accepted before its RST_STREAM arrived no
//! longer counts as open for the client, while its task may still be working (an upstream
//! exchange). Rapid reset (CVE-2023-44487) opens and resets streams so that each costs the
//! server work and none counts against SETTINGS_MAX_CONCURRENT_STREAMS. So: a stream the client
//! reset before it was taken up is not served at all, and the connection's stream tasks are
//! counted (`Live`); more than twice the stream limit running at once (a client can only have
//! the limit open; a finished stream's task lingers a moment) ends the connection with GOAWAY
//! ENHANCE_YOUR_CALM, as Go's server does. A stream the client resets mid-exchange ends its
//! task at once (its upstream side is cancelled), so such streams keep counting as running while
//! they are at least as many as the streams that ended normally (Envoy's premature-reset rule,
//! in spirit): a client that mostly resets still meets the cap; one that cancels now and then
//! does not. Shard thread, in the connection's task.

use std::cell::Cell;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::Reason;

use crate::http::h2_reason;
use crate::shard::Shard;

/// A connection's stream tasks: running now, started, and ended because the client reset the
/// stream before its response was complete.
#[derive(Default)]
pub struct Tasks {
    running: Cell<u32>,
    started: Cell<u32>,
    reset: Cell<u32>,
}

impl Tasks {
    /// What the cap is held against: the running tasks, plus the streams the client reset
    /// mid-exchange while those are at least as many as the streams that ended normally.
    pub fn load(&self) -> u32 {
        let (running, reset) = (self.running.get(), self.reset.get());
        let normal = self.started.get() - running - reset;
        if reset >= normal {
            running + reset
        } else {
            running
        }
    }
}

/// One running stream task of a connection; the count drops when the task ends.
pub struct Live(Rc<Tasks>);

impl Live {
    /// Counts a stream task about to be spawned.
    pub fn start(tasks: &Rc<Tasks>) -> Live {
        tasks.running.set(tasks.running.get() + 1);
        tasks.started.set(tasks.started.get() + 1);
        Live(tasks.clone())
    }

    /// The task ends because the client reset its stream before the response was complete.
    pub fn reset_by_client(&self) {
        self.0.reset.set(self.0.reset.get() + 1);
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.running.set(self.0.running.get() - 1);
    }
}

/// Stream tasks a connection may have running at once before it is closed: twice the streams
/// the client may have open.
pub fn live_cap(max_concurrent_streams: u32) -> u32 {
    max_concurrent_streams.saturating_mul(2)
}

/// Whether the client already reset this stream (it was waiting to be accepted): nothing to
/// serve. Looks without waiting (a no-op waker; the stream's task registers its own later).
pub fn reset_already(respond: &mut SendResponse<Bytes>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    matches!(respond.poll_reset(&mut cx), Poll::Ready(_))
}

/// Counts one GOAWAY sent with `reason`.
pub fn count(shard: &Shard, reason: Reason) {
    let c = &shard.stats.h2_goaways[h2_reason::index(reason.into())];
    c.set(c.get() + 1);
}

/// Counts the GOAWAY `h2` sent itself when it ended the connection for the client's error
/// (a protocol error, a flood past its limits); errors from the socket or the client's own
/// GOAWAY count nothing.
pub fn count_closed(shard: &Shard, e: &h2::Error) {
    if e.is_go_away() && e.is_library() {
        if let Some(reason) = e.reason() {
            count(shard, reason);
        }
    }
}
