//! An HTTP/2 client connection's task, over any stream with tokio's I/O traits: h2c with prior
//! knowledge (conn.rs: the TCP socket by readiness, ready.rs, its preface rewound) and a TLS
//! connection that negotiated ALPN `h2` (tls.rs: rustls' connection by readiness, tls_io.rs, with
//! what its handshake negotiated); neither holds a read or write buffer of its own. The
//! `h2` server handshake with the `[http2]` limits, then one task per stream (stream.rs) through
//! the same pipeline as HTTP/1.1. `h2` never spawns and keeps no timers, so this task drives the
//! connection (`accept` polls its I/O) and owns the timers: a graceful GOAWAY when the drain
//! starts, when the connection reaches `max_requests` streams or `max_age`, or when it has had no
//! stream for the idle timeout; in-flight streams finish, then the connection closes (at the
//! latest when the coordinator's drain deadline ends the process). Shard thread.

mod guard;
mod ready;
mod rewind;
mod stream;
mod tls_io;

use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;

use bytes::Bytes;
use h2::server::{Builder, SendResponse};
use h2::{Reason, RecvStream};
use monoio::time::{sleep_until, timeout, Instant};
use monoio_compat::{AsyncRead, AsyncWrite};

pub use ready::plain;
pub use rewind::Rewind;
pub use tls_io::tls;

use crate::shard::Shard;
use crate::tls::Negotiated;

/// What woke the connection's task (a stream's handles are moved out at once: no box).
#[allow(clippy::large_enum_variant)]
enum Event {
    Stream(http::Request<RecvStream>, SendResponse<Bytes>),
    /// The connection ended: closed by the client, an error (`h2` sent a GOAWAY for the
    /// client's), or done after a GOAWAY.
    Closed(Option<h2::Error>),
    /// Time to ask the client to go: drain or max age.
    GoAway,
    /// No stream for the idle timeout.
    Idle,
}

/// Counts the connection in `h2_connections` while it lives.
struct Counted<'s>(&'s Shard);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        let c = &self.0.stats.h2_connections;
        c.set(c.get() - 1);
    }
}

/// Serves one HTTP/2 connection on `io` until it closes; `slot` is its drain registration, `tls`
/// what its TLS handshake negotiated (HTTPS only; each stream shares it).
pub async fn serve<T>(
    shard: Rc<Shard>,
    io: T,
    client: SocketAddr,
    slot: usize,
    tls: Option<Rc<Negotiated>>,
) where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let c = &shard.stats.h2_connections;
    c.set(c.get() + 1);
    let _counted = Counted(&shard);
    // A connection keeps the settings of the config version it started with.
    let table = shard.table();
    let (h, t) = (table.config.http2, table.config.timeouts);
    drop(table);
    let s = &shard.base.shards;
    let mut b = Builder::new();
    b.max_concurrent_streams(h.max_concurrent_streams)
        .initial_window_size(h.initial_stream_window)
        .initial_connection_window_size(h.initial_connection_window)
        .max_frame_size(h.max_frame_size)
        .max_header_list_size(u32::try_from(s.buffer_size).unwrap_or(u32::MAX))
        .max_send_buffer_size(s.upstream_buffer_size)
        .max_pending_accept_reset_streams(h.max_pending_accept_reset_streams as usize)
        .max_local_error_reset_streams(Some(h.max_local_error_reset_streams as usize));
    let Ok(Ok(mut conn)) = timeout(t.header, b.handshake::<T, Bytes>(io)).await else {
        return;
    };
    let aging = !h.max_age.is_zero();
    let mut age = pin!(sleep_until(Instant::now() + h.max_age));
    let mut drain = pin!(shard.drain.started(slot));
    let mut opened = 0u64;
    let mut closing = false;
    let mut idle_since = None;
    let running = Rc::new(guard::Tasks::default());
    let live_cap = guard::live_cap(h.max_concurrent_streams);
    loop {
        let idle_at = if conn.has_streams() {
            idle_since = None;
            None
        } else {
            Some(*idle_since.get_or_insert_with(Instant::now) + t.idle)
        };
        let event = monoio::select! {
            r = conn.accept() => match r {
                Some(Ok((req, respond))) => Event::Stream(req, respond),
                Some(Err(e)) => Event::Closed(Some(e)),
                None => Event::Closed(None),
            },
            _ = &mut drain, if !closing => Event::GoAway,
            _ = &mut age, if aging && !closing => Event::GoAway,
            _ = sleep_until(idle_at.unwrap_or_else(Instant::now)), if idle_at.is_some() => Event::Idle,
        };
        match event {
            Event::Stream(req, mut respond) => {
                opened += 1;
                if guard::reset_already(&mut respond) {
                    continue;
                }
                if running.load() >= live_cap {
                    // Rapid reset: the client resets streams whose tasks still run.
                    conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                    guard::count(&shard, Reason::ENHANCE_YOUR_CALM);
                    closing = true;
                    continue;
                }
                let (tls, live) = (tls.clone(), guard::Live::start(&running));
                monoio::spawn(stream::serve(
                    shard.clone(),
                    req,
                    respond,
                    client,
                    tls,
                    live,
                ));
                if h.max_requests > 0 && opened >= h.max_requests && !closing {
                    conn.graceful_shutdown();
                    guard::count(&shard, Reason::NO_ERROR);
                    closing = true;
                }
            }
            Event::Closed(e) => {
                if let Some(e) = e {
                    guard::count_closed(&shard, &e);
                }
                return;
            }
            Event::GoAway => {
                conn.graceful_shutdown();
                guard::count(&shard, Reason::NO_ERROR);
                closing = true;
            }
            // A client that does not answer the GOAWAY's PING within another idle period is
            // closed without waiting more.
            Event::Idle if closing => return,
            Event::Idle => {
                conn.graceful_shutdown();
                guard::count(&shard, Reason::NO_ERROR);
                closing = true;
                idle_since = Some(Instant::now());
            }
        }
    }
}
