//! One shard's accept loop on its SO_REUSEPORT listener (opened by the coordinator): at most
//! `max_connections` at once, and on drain: cancel the pending accept, serve what is already
//! queued, then close the listener. Shard thread.

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use monoio::net::TcpListener;

use super::{conn, Shard};
use crate::sys::has_pending_connection;

/// Accepts until the drain; returns once the listener is closed.
pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, proxy_header: bool) {
    let max = shard.base.shards.max_connections;
    while !shard.drain.is_draining() {
        if shard.drain.connections() >= max {
            shard
                .drain
                .wait_until(|d| d.connections() < max || d.is_draining())
                .await;
            continue;
        }
        match listener
            .cancelable_accept(shard.drain.accept_handle())
            .await
        {
            // A connection that won the race against a drain's cancel is served all the same.
            Ok((stream, peer)) => {
                monoio::spawn(conn::serve(shard.clone(), stream, peer, proxy_header));
            }
            Err(_) if shard.drain.is_draining() => break,
            // EMFILE, ENFILE, ENOBUFS: back off briefly instead of spinning.
            Err(_) => monoio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    // Closing a listener resets what is still in its queue: accept that first.
    while has_pending_connection(listener.as_raw_fd()) {
        match listener.accept().await {
            Ok((stream, peer)) => {
                monoio::spawn(conn::serve(shard.clone(), stream, peer, proxy_header));
            }
            Err(_) => break,
        }
    }
}
