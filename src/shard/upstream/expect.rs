//! `Expect: 100-continue` forwarded upstream (route `expect = "forward"`, the default): after the
//! request head went upstream and before any body byte does, wait for the upstream's word. Its
//! `100 Continue` is relayed and the body follows; an early final answer (405, 413, 401…) means
//! the body is never sent: the exchange relays that answer and closes the client connection,
//! whose unread body is still on the wire. An upstream silent for `WAIT` gets the proxy's own 100,
//! as curl and nginx do, so a server that ignores the expectation still receives the body.
//! Shard thread, on the connection task that owns the client.

use std::time::Duration;

use monoio::time::Instant;

use super::relay::Relay;
use crate::http::response::{self, Kind, ResponseCtx};
use crate::http::{canned, Head};
use crate::shard::io::{read_more_until, write_static, write_vec, IoFail, Wire};

/// How long the upstream may think before the proxy says 100 itself.
pub const WAIT: Duration = Duration::from_secs(1);

/// What the upstream's answer to the expectation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continue {
    /// Send the body: the client has a 100 (the upstream's, or ours after `WAIT`).
    Proceed,
    /// A final response head is waiting in `c.up_buf`: send no body.
    Final,
}

/// Why waiting failed: the upstream (read) or the client (write of the 100) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    Upstream(IoFail),
    Client(IoFail),
    /// The upstream's bytes are not a response head.
    Malformed,
}

/// Waits for the upstream's answer to the expectation; adds what the client was sent to
/// `bytes_out`. Interim responses other than 100 (103 Early Hints) are relayed on the way.
pub async fn await_continue<S: Wire, U: Wire>(
    c: &mut Relay<'_, S>,
    up: &mut U,
    upgrade: bool,
    idle: Duration,
    bytes_out: &mut u64,
) -> Result<Continue, WaitError> {
    let deadline = Instant::now() + WAIT;
    loop {
        let ctx = ResponseCtx::plain(false, false, true, upgrade);
        let mut out = std::mem::take(c.out);
        let parsed = response::process(c.up_buf.data(), c.up_buf.is_full(), ctx, &mut out);
        *c.out = out;
        match parsed {
            Ok(Head::Complete(r)) if r.kind == Kind::Interim && r.status == 100 => {
                c.up_buf.consume(r.head_len);
                return say_continue(c, idle, bytes_out).await;
            }
            Ok(Head::Complete(r)) if r.kind == Kind::Interim => {
                c.up_buf.consume(r.head_len);
                write_vec(&mut *c.stream, &mut *c.out, idle)
                    .await
                    .map_err(WaitError::Client)?;
                *bytes_out += c.out.len() as u64;
            }
            // A final head (or a 101): the exchange reads it again from `up_buf`.
            Ok(Head::Complete(_)) => return Ok(Continue::Final),
            Ok(Head::Partial) => match read_more_until(up, &mut *c.up_buf, deadline).await {
                Ok(_) => {}
                Err(IoFail::TimedOut) => {
                    return say_continue(c, idle, bytes_out).await;
                }
                Err(e) => return Err(WaitError::Upstream(e)),
            },
            Err(_) => return Err(WaitError::Malformed),
        }
    }
}

async fn say_continue<S: Wire>(
    c: &mut Relay<'_, S>,
    idle: Duration,
    bytes_out: &mut u64,
) -> Result<Continue, WaitError> {
    write_static(&mut *c.stream, canned::CONTINUE, idle)
        .await
        .map_err(WaitError::Client)?;
    *bytes_out += canned::CONTINUE.len() as u64;
    Ok(Continue::Proceed)
}
