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
//! ENHANCE_YOUR_CALM, as Go's server does. Shard thread, in the connection's task.

use std::cell::Cell;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::Reason;

use crate::http::h2_reason;
use crate::shard::Shard;

/// One running stream task of a connection; the count drops when the task ends.
pub struct Live(Rc<Cell<u32>>);

impl Live {
    /// Counts a stream task about to be spawned.
    pub fn start(running: &Rc<Cell<u32>>) -> Live {
        running.set(running.get() + 1);
        Live(running.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
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
