//! One shard's SO_REUSEPORT listener and its accept loop: at most `max_connections` at once, and
//! on drain: cancel the pending accept, serve what is already queued, then close. Shard thread.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use monoio::net::{ListenerOpts, TcpListener};

use super::{conn, Shard};
use crate::sys::has_pending_connection;

/// Binds `addr` with SO_REUSEPORT so every shard has its own accept queue on the same port.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let opts = ListenerOpts::new().reuse_port(true).reuse_addr(true).backlog(backlog as i32);
    TcpListener::bind_with_config(addr, &opts)
}

pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    let max = shard.config.shards.max_connections;
    while !shard.drain.is_draining() {
        if shard.drain.connections() >= max {
            shard.drain.wait_until(|d| d.connections() < max || d.is_draining()).await;
            continue;
        }
        match listener.cancelable_accept(shard.drain.accept_handle()).await {
            // A connection that won the race against a drain's cancel is served all the same.
            Ok((stream, peer)) => {
                monoio::spawn(conn::serve(shard.clone(), stream, peer));
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
                monoio::spawn(conn::serve(shard.clone(), stream, peer));
            }
            Err(_) => break,
        }
    }
}
