//! An HTTPS client connection's task: before the handshake, the first byte tells a ClientHello
//! (a TLS handshake record, 0x16) from plain HTTP sent to the wrong port, which gets a 400 that
//! says so and a close (as nginx does); anything else goes to rustls, which answers it with an
//! alert. The handshake runs within `timeouts.tls_handshake`; then requests are served exactly as
//! on a plain connection (conn.rs's loop, the same pipeline); idle past `idle_buffer_time`, the
//! connection gives back its kit and its stream's buffers and sleeps on readiness with only
//! rustls' state (as a plain connection does), and a `101` tunnels over TLS. A connection that
//! negotiated ALPN `h2` is served by the HTTP/2 connection task (h2/) instead. A drain wakes a
//! connection waiting for its first byte, its next request or in its sleep. Shard thread.

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
use super::wait::{wait_for_request, Wait, Waited, Wake};
use super::{h2, idle, tunnel};
use crate::http::{canned, proxy_protocol};
use crate::shard::boxes::Pooled;
use crate::shard::drain::ConnectionGuard;
use crate::shard::io::Wire;
use crate::shard::Shard;
use crate::stats::ListenerTlsStats;
use crate::sys;
use crate::tls::{HandshakeOutcome, Negotiated};

/// The stream of an HTTPS client connection.
pub type TlsStream = crate::shard::tls_stream::TlsStream<ServerConnection>;

impl Wire for TlsStream {
    fn secure(&self) -> bool {
        true
    }

    fn has_buffered_input(&mut self) -> bool {
        TlsStream::has_buffered_input(self)
    }
}

impl Wait for TlsStream {
    fn wait_for_request(
        shard: &Shard,
        c: &mut Client<Self>,
        wake: Wake,
    ) -> impl Future<Output = Waited> {
        wait_for_request(shard, c, wake)
    }
}

/// How long closing waits to hand close_notify to the kernel.
const CLOSE_NOTIFY: Duration = Duration::from_secs(1);

/// How long a partial PROXY header waits before the socket is looked at again.
const PARTIAL_HEADER_PAUSE: Duration = Duration::from_millis(5);

/// The first byte of a TLS record carrying a handshake message.
const HANDSHAKE_RECORD: u8 = 0x16;

/// The TLS listener a connection came in on, as this shard serves it now.
pub struct On {
    /// The shard's rustls config for the listener, as of the accept.
    pub config: Arc<ServerConfig>,
    /// The listener's handshake counters.
    pub stats: Rc<ListenerTlsStats>,
    /// A PROXY header precedes the TLS bytes.
    pub proxy_header: bool,
}

/// Serves one accepted HTTPS connection until it closes. With `on.proxy_header`, the PROXY
/// header that precedes the TLS bytes is taken first (by its exact length, never a byte of the
/// ClientHello).
pub fn serve(
    shard: Rc<Shard>,
    open: ConnectionGuard,
    stream: TcpStream,
    peer: SocketAddr,
    on: On,
) -> impl Future<Output = ()> {
    let accepted = &shard.stats.accepted;
    accepted.set(accepted.get() + 1);
    let slot = Slot::new(&shard.drain, stream.as_raw_fd());
    async move {
        // Whole guards are moved in (an async block would capture only the fields it uses).
        let (_open, slot) = (open, slot);
        // The handshake's state (some KiB while it runs) is boxed apart: the task that sleeps
        // between requests does not carry it.
        let Some((stream, client, negotiated)) =
            Box::pin(accept(&shard, slot.1, stream, peer, on)).await
        else {
            return;
        };
        if stream.conn.alpn_protocol() == Some(b"h2") {
            return serve_h2(shard, stream, client, slot.1, negotiated).await;
        }
        let mut link = Link {
            stream,
            client,
            tls: Box::new(negotiated),
        };
        let mut wake = Wake::First;
        loop {
            let (next, l) = awake(&shard, link, slot.1, wake).await;
            link = l;
            match next {
                Next::Tunnel(up, idle) => {
                    if shard.drain.open_tunnel(slot.1, up.as_raw_fd()) {
                        Box::pin(tunnel::run(link.stream, up, idle)).await;
                    }
                    return;
                }
                Next::Close => break,
                Next::Sleep(left) => {
                    // Asleep without the kit and without the stream's buffers until readable
                    // (a request, EOF, or a drain or the reaper shutting the receive side).
                    link.stream.release_buffers();
                    if !idle::fall_asleep(&shard.drain, slot.1, left) {
                        break;
                    }
                    let ready = link.stream.tcp().readable(false).await.is_ok();
                    if !shard.drain.wake_up(slot.1) || !ready {
                        break;
                    }
                    wake = Wake::Woken;
                }
            }
        }
        // Say close_notify, so the client knows nothing was cut off.
        let _ = timeout(CLOSE_NOTIFY, link.stream.shutdown()).await;
    }
}

/// A connection that negotiated ALPN `h2`: the same HTTP/2 connection task as h2c (h2/), over
/// rustls' connection driven by readiness (h2/tls_io.rs: no buffers held while idle, no copy
/// through a wrapper); `h2` says close_notify through its shutdown when the connection ends
/// cleanly.
async fn serve_h2(
    shard: Rc<Shard>,
    stream: TlsStream,
    client: SocketAddr,
    slot: usize,
    negotiated: Negotiated,
) {
    let io = h2::tls(stream);
    let tls = Some(Rc::new(negotiated));
    Box::pin(h2::serve(shard.clone(), io, client, slot, tls)).await;
}

/// The connection's first byte and TLS handshake, within `timeouts.tls_handshake`: the stream,
/// the client (a PROXY header may name it) and what was negotiated, or `None` when the
/// connection ended (answered or counted here).
async fn accept(
    shard: &Shard,
    slot: usize,
    mut stream: TcpStream,
    mut peer: SocketAddr,
    on: On,
) -> Option<(TlsStream, SocketAddr, Negotiated)> {
    let stats = &on.stats;
    let handshake = shard.table().config.timeouts.tls_handshake;
    let deadline = Instant::now() + handshake;
    shard.drain.set_idle(slot, true);
    let first = first_byte(shard, &mut stream, &mut peer, on.proxy_header);
    let first = timeout_at(deadline, first).await;
    shard.drain.set_idle(slot, false);
    match first {
        Ok(Ok(HANDSHAKE_RECORD)) => {}
        Ok(Ok(b)) if b.is_ascii_uppercase() => {
            stats.count(HandshakeOutcome::PlainHttp);
            let idle = shard.table().config.timeouts.body;
            refuse(&mut stream, canned::PLAIN_HTTP_TO_TLS, idle).await;
            return None;
        }
        // Not TLS and not HTTP: rustls answers it with an alert.
        Ok(Ok(_)) => {}
        Ok(Err(Refused::BadProxyHeader)) => {
            let idle = shard.table().config.timeouts.body;
            refuse(&mut stream, canned::response(400), idle).await;
            return None;
        }
        Ok(Err(Refused::Closed)) => {
            stats.count(HandshakeOutcome::Failed);
            return None;
        }
        Err(_) => {
            stats.count(HandshakeOutcome::Timeout);
            return None;
        }
    }
    let Ok(conn) = ServerConnection::new(on.config) else {
        return None;
    };
    let mut stream = TlsStream::new(stream, conn);
    let began = Instant::now();
    let took = match timeout_at(deadline, stream.handshake()).await {
        Ok(Ok(())) => began.elapsed(),
        Ok(Err(e)) => {
            stats.count(HandshakeOutcome::of_error(&e));
            return None;
        }
        Err(_) => {
            stats.count(HandshakeOutcome::Timeout);
            return None;
        }
    };
    let negotiated = Negotiated::of(&stream.conn);
    let version = match negotiated.version {
        "TLSv1.2" => HandshakeOutcome::Tls12,
        _ => HandshakeOutcome::Tls13,
    };
    stats.finished(version, took, negotiated.resumed);
    Some((stream, peer, negotiated))
}

/// What an HTTPS connection keeps while it sleeps without its kit: the TLS stream (rustls' state
/// and its small read buffer), who the client is and what the handshake negotiated.
struct Link {
    stream: TlsStream,
    client: SocketAddr,
    tls: Box<Negotiated>,
}

/// The connection with a kit, serving requests until it closes, tunnels or idles past
/// `idle_buffer_time`; in a pooled block, so the sleeping connection's task does not carry it.
fn awake(
    shard: &Shard,
    link: Link,
    slot: usize,
    wake: Wake,
) -> Pooled<'_, impl Future<Output = (Next, Link)> + '_> {
    shard.boxes.pin(async move {
        let mut c = Client::new(link.stream, link.client, shard.kits.take(), slot);
        c.tls = Some(link.tls);
        let next = serve_requests(shard, &mut c, wake, false).await;
        let tls = c.tls.take().expect("an HTTPS client keeps its TLS facts");
        let client = c.client;
        let (stream, kit) = c.into_parts();
        shard.kits.give(kit);
        (
            next,
            Link {
                stream,
                client,
                tls,
            },
        )
    })
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
