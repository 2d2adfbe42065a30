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
use std::sync::Arc;
use std::time::Duration;

use monoio::io::{AsyncReadRentExt, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::time::{timeout, timeout_at, Instant};
use rustls::{ServerConfig, ServerConnection};

use super::client::{refuse, Client};
use super::conn::{serve_requests, Next, Slot};
use super::tunnel;
use super::wait::{wait_holding, Wait, Waited, Wake};
use crate::http::{canned, proxy_protocol};
use crate::shard::drain::ConnectionGuard;
use crate::shard::io::Wire;
use crate::shard::Shard;
use crate::sys;
use crate::tls::{HandshakeOutcome, Negotiated};

/// The stream of an HTTPS client connection.
pub type TlsStream = crate::shard::tls_stream::TlsStream<ServerConnection>;

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

/// How long a partial PROXY header waits before the socket is looked at again.
const PARTIAL_HEADER_PAUSE: Duration = Duration::from_millis(5);

/// The first byte of a TLS record carrying a handshake message.
const HANDSHAKE_RECORD: u8 = 0x16;

/// Serves one accepted HTTPS connection until it closes. With `proxy_header`, the PROXY header
/// that precedes the TLS bytes is taken first (by its exact length, never a byte of the
/// ClientHello).
pub fn serve(
    shard: Rc<Shard>,
    open: ConnectionGuard,
    stream: TcpStream,
    peer: SocketAddr,
    proxy_header: bool,
    config: Arc<ServerConfig>,
) -> impl Future<Output = ()> {
    let accepted = &shard.stats.accepted;
    accepted.set(accepted.get() + 1);
    let slot = Slot::new(&shard.drain, stream.as_raw_fd());
    async move {
        // Whole guards are moved in (an async block would capture only the fields it uses).
        let (_open, slot) = (open, slot);
        let mut stream = stream;
        let mut peer = peer;
        let handshake = shard.table().config.timeouts.tls_handshake;
        let deadline = Instant::now() + handshake;
        shard.drain.set_idle(slot.1, true);
        let first = timeout_at(
            deadline,
            first_byte(&shard, &mut stream, &mut peer, proxy_header),
        );
        let first = first.await;
        shard.drain.set_idle(slot.1, false);
        match first {
            Ok(Ok(HANDSHAKE_RECORD)) => {}
            Ok(Ok(b)) if b.is_ascii_uppercase() => {
                count(&shard, HandshakeOutcome::PlainHttp);
                let idle = shard.table().config.timeouts.body;
                refuse(&mut stream, canned::PLAIN_HTTP_TO_TLS, idle).await;
                return;
            }
            // Not TLS and not HTTP: rustls answers it with an alert.
            Ok(Ok(_)) => {}
            Ok(Err(Refused::BadProxyHeader)) => {
                let idle = shard.table().config.timeouts.body;
                refuse(&mut stream, canned::response(400), idle).await;
                return;
            }
            Ok(Err(Refused::Closed)) => return count(&shard, HandshakeOutcome::Failed),
            Err(_) => return count(&shard, HandshakeOutcome::Timeout),
        }
        let Ok(conn) = ServerConnection::new(config) else {
            return;
        };
        let mut stream = TlsStream::new(stream, conn);
        let began = Instant::now();
        match timeout_at(deadline, stream.handshake()).await {
            Ok(Ok(())) => shard.stats.tls_handshake_time.record(began.elapsed()),
            Ok(Err(e)) => return count(&shard, HandshakeOutcome::of_error(&e)),
            Err(_) => return count(&shard, HandshakeOutcome::Timeout),
        }
        let mut c = Client::new(stream, peer, shard.kits.take(), slot.1);
        let negotiated = Negotiated::of(&c.stream.conn);
        count(
            &shard,
            match negotiated.version {
                "TLSv1.2" => HandshakeOutcome::Tls12,
                _ => HandshakeOutcome::Tls13,
            },
        );
        if negotiated.resumed {
            let resumed = &shard.stats.tls_resumed;
            resumed.set(resumed.get() + 1);
        }
        c.tls = Some(Box::new(negotiated));
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

/// Counts one listener handshake by how it ended.
fn count(shard: &Shard, outcome: HandshakeOutcome) {
    let c = &shard.stats.tls_handshakes[outcome.index()];
    c.set(c.get() + 1);
}

/// Why a connection ended before its handshake.
enum Refused {
    /// The peer closed, a drain shut the socket, or it failed.
    Closed,
    /// A PROXY header that does not parse, or from a peer that is not a trusted proxy.
    BadProxyHeader,
}

/// The connection's first byte after any PROXY header, left in the socket for rustls.
async fn first_byte(
    shard: &Shard,
    stream: &mut TcpStream,
    peer: &mut SocketAddr,
    proxy_header: bool,
) -> Result<u8, Refused> {
    let mut buf = [0u8; proxy_protocol::V2_MAX_LEN];
    let mut want_header = proxy_header;
    if want_header {
        let table = shard.table();
        if !table.trusted.is_empty() && !table.trusted.contains(peer.ip()) {
            return Err(Refused::BadProxyHeader);
        }
    }
    loop {
        stream.readable(false).await.map_err(|_| Refused::Closed)?;
        let n = match sys::peek(stream.as_raw_fd(), &mut buf) {
            Ok(0) => return Err(Refused::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err(Refused::Closed),
        };
        if !want_header {
            return Ok(buf[0]);
        }
        match proxy_protocol::parse(&buf[..n]) {
            Ok(proxy_protocol::Parsed::Complete {
                consumed, source, ..
            }) => {
                take(stream, consumed).await?;
                if let Some(s) = source {
                    *peer = s;
                }
                want_header = false;
            }
            // The rest of the header is on its way: look again shortly (readiness would fire
            // at once for the bytes already there); the handshake deadline bounds the wait.
            Ok(proxy_protocol::Parsed::Partial) => {
                monoio::time::sleep(PARTIAL_HEADER_PAUSE).await;
            }
            Err(_) => return Err(Refused::BadProxyHeader),
        }
    }
}

/// Reads and drops exactly `n` bytes that are already in the socket (a PROXY header).
async fn take(stream: &mut TcpStream, n: usize) -> Result<(), Refused> {
    let (res, _) = stream.read_exact(vec![0u8; n]).await;
    res.map(|_| ()).map_err(|_| Refused::Closed)
}
