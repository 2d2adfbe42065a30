//! An HTTPS client connection's task: before the handshake, the first byte tells a ClientHello
//! (a TLS handshake record, 0x16) from plain HTTP sent to the wrong port, which gets a 400 that
//! says so and a close (as nginx does); anything else goes to rustls, which answers it with an
//! alert. The handshake runs within `timeouts.tls_handshake`; then requests are served exactly as
//! on a plain connection (conn.rs's loop, the same pipeline), waiting for the next one with the
//! TLS state and the kit held (buffered rustls keeps buffers of its own), and a `101` tunnels over
//! TLS. A drain wakes a connection waiting for its first byte or its next request. Shard thread.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;
use monoio::time::timeout;
use monoio_rustls::{ServerTlsStream, TlsAcceptor};

use super::client::{refuse, Client};
use super::conn::{serve_requests, Next, Slot};
use super::tunnel;
use super::wait::{wait_holding, Wait, Waited, Wake};
use crate::http::canned;
use crate::shard::drain::ConnectionGuard;
use crate::shard::io::Wire;
use crate::shard::Shard;
use crate::sys;

/// The stream of an HTTPS client connection.
pub type TlsStream = ServerTlsStream<TcpStream>;

impl Wire for TlsStream {
    fn secure(&self) -> bool {
        true
    }
}

impl Wait for TlsStream {
    fn wait_for_request(
        shard: &Shard,
        c: &mut Client<Self>,
        wake: Wake,
    ) -> impl Future<Output = Waited> {
        wait_holding(shard, c, wake)
    }
}

/// How long closing waits to hand close_notify to the kernel.
const CLOSE_NOTIFY: Duration = Duration::from_secs(1);

/// The first byte of a TLS record carrying a handshake message.
const HANDSHAKE_RECORD: u8 = 0x16;

/// Serves one accepted HTTPS connection until it closes.
pub fn serve(
    shard: Rc<Shard>,
    open: ConnectionGuard,
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handshake: Duration,
) -> impl Future<Output = ()> {
    let accepted = &shard.stats.accepted;
    accepted.set(accepted.get() + 1);
    let slot = Slot::new(&shard.drain, stream.as_raw_fd());
    async move {
        let _open = open;
        let mut stream = stream;
        match timeout(handshake, first_byte(&shard, &stream, slot.1)).await {
            Ok(Some(HANDSHAKE_RECORD)) => {}
            Ok(Some(b)) if b.is_ascii_uppercase() => {
                let idle = shard.table().config.timeouts.body;
                refuse(&mut stream, canned::PLAIN_HTTP_TO_TLS, idle).await;
                return;
            }
            // Not TLS and not HTTP: rustls answers it with an alert.
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
        let stream = match timeout(handshake, acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            _ => return,
        };
        let mut c = Client::new(stream, peer, shard.kits.take(), slot.1);
        let next = Box::pin(serve_requests(&shard, &mut c, Wake::First, false)).await;
        let (mut stream, kit) = c.into_parts();
        shard.kits.give(kit);
        match next {
            Next::Tunnel(up, idle) => {
                if shard.drain.open_tunnel(slot.1, up.as_raw_fd()) {
                    Box::pin(tunnel::run(stream, up, idle)).await;
                }
            }
            // Say close_notify, so the client knows nothing was cut off.
            Next::Close | Next::Sleep(_) => {
                let _ = timeout(CLOSE_NOTIFY, stream.shutdown()).await;
            }
        }
    }
}

/// Waits for the connection's first byte without taking it (`None`: closed, or a drain shut it).
async fn first_byte(shard: &Shard, stream: &TcpStream, slot: usize) -> Option<u8> {
    shard.drain.set_idle(slot, true);
    let byte = loop {
        if stream.readable(false).await.is_err() {
            break None;
        }
        match sys::peek_first_byte(stream.as_raw_fd()) {
            Ok(b) => break b,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break None,
        }
    };
    shard.drain.set_idle(slot, false);
    byte
}
