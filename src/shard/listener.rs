//! One shard's accept loop on one SO_REUSEPORT listener (opened by the coordinator): at most
//! `max_connections` at once, and on drain or when a reload removes the listener: cancel the
//! pending accept, serve what is already queued, then close the listener. Shard thread.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::Canceller;
use monoio::net::TcpListener;

use monoio::net::TcpStream;

use super::downstream::{conn, tls};
use super::Shard;
use crate::bus::ListenerKind;
use crate::sys::has_pending_connection;

/// Stops one accept loop (drain, or the listener left the config).
#[derive(Default)]
pub struct ListenerCtl {
    pub addr: Option<SocketAddr>,
    closing: Cell<bool>,
    accept: RefCell<Canceller>,
}

impl ListenerCtl {
    pub fn new(addr: Option<SocketAddr>) -> Rc<ListenerCtl> {
        Rc::new(ListenerCtl {
            addr,
            ..Default::default()
        })
    }

    /// Cancels the pending accept; the loop serves what is queued and closes the socket.
    pub fn close(&self) {
        if !self.closing.replace(true) {
            self.accept.replace(Canceller::new()).cancel();
        }
    }

    fn stopped(&self, shard: &Shard) -> bool {
        self.closing.get() || shard.drain.is_draining()
    }
}

/// Starts serving one accepted connection: plain HTTP, or HTTPS with the current config's
/// acceptor for its listener. Counted at accept, so the loop's next turn sees it (max_connections).
fn serve(shard: &Rc<Shard>, stream: TcpStream, peer: SocketAddr, kind: ListenerKind) {
    let open = shard.drain.connection();
    match kind.tls {
        None => {
            monoio::spawn(conn::serve(
                shard.clone(),
                open,
                stream,
                peer,
                kind.proxy_header,
                kind.h2c,
            ));
        }
        Some(bound) => {
            let table = shard.table();
            // None only when its rustls config failed to build (said on stderr): close.
            if let Some(t) = table.tls_listener(bound) {
                let on = tls::On {
                    config: t.acceptor.clone(),
                    stats: t.stats.clone(),
                    proxy_header: kind.proxy_header,
                };
                monoio::spawn(tls::serve(shard.clone(), open, stream, peer, on));
            }
        }
    }
}

/// Accepts until the drain or `ctl.close()`; returns once the listener is closed.
pub async fn accept_loop(
    shard: Rc<Shard>,
    listener: TcpListener,
    kind: ListenerKind,
    ctl: Rc<ListenerCtl>,
) {
    let max = shard.base.shards.max_connections;
    while !ctl.stopped(&shard) {
        if shard.drain.connections() >= max {
            shard
                .drain
                .wait_until(|d| d.connections() < max || d.is_draining() || ctl.closing.get())
                .await;
            continue;
        }
        let handle = ctl.accept.borrow().handle();
        match listener.cancelable_accept(handle).await {
            // A connection that won the race against a cancel is served all the same.
            Ok((stream, peer)) => serve(&shard, stream, peer, kind),
            Err(_) if ctl.stopped(&shard) => break,
            // EMFILE, ENFILE, ENOBUFS: back off briefly instead of spinning.
            Err(_) => monoio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    // Closing a listener resets what is still in its queue: accept that first.
    while has_pending_connection(listener.as_raw_fd()) {
        match listener.accept().await {
            Ok((stream, peer)) => serve(&shard, stream, peer, kind),
            Err(_) => break,
        }
    }
}
