//! An HTTP/1.1 client connection's state while it serves requests (`Client`: its stream and a kit
//! of buffers, over any `Wire`) and while a TCP connection sleeps without the kit (`Link`), and
//! the canned answer before a close (`refuse`). Shard thread.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::io::Canceller;
use monoio::net::TcpStream;

use crate::shard::io::{write_static, Buf, Wire};
use crate::shard::kit::Kit;
use crate::shard::pipeline::admission::Scratch;
use crate::shard::upstream::replay::RawReplay;
use crate::tls::Negotiated;

/// A client connection while it serves requests: its stream and a kit of buffers, reused for
/// every request until the connection goes idle long enough to give the kit back.
pub struct Client<S = TcpStream> {
    pub stream: S,
    /// The client: the peer, or the source a PROXY header names.
    pub client: SocketAddr,
    /// Bytes read from the client: request heads, bodies, pipelined requests.
    pub buf: Buf,
    /// Bytes read from the upstream of the current exchange.
    pub up_buf: Buf,
    /// The rewritten request head sent upstream (kept for a retry).
    pub head: Vec<u8>,
    /// The response head sent to the client.
    pub out: Vec<u8>,
    pub scratch: Scratch,
    /// Cancels the keep-alive read that waited `idle_buffer_time` (the kit goes back then).
    pub(super) cancel: Canceller,
    /// This connection's slot in the drain's registry of idle sockets.
    pub(super) slot: usize,
    /// What its TLS handshake negotiated (HTTPS only), for the access log and upstream headers.
    pub tls: Option<Box<Negotiated>>,
    /// The current request's body bytes an HTTP/2 upstream may refuse unprocessed (sent again
    /// then); empty, and nothing allocated, until a body streams to an HTTP/2 upstream.
    pub replay: RawReplay,
}

/// What a connection keeps while it has given its kit back: the socket and who is on it.
pub(super) struct Link {
    pub(super) stream: TcpStream,
    pub(super) client: SocketAddr,
}

impl<S> Client<S> {
    /// A connection on `stream` with a kit; `slot` is its place in the drain's registry.
    pub(super) fn new(stream: S, client: SocketAddr, k: Kit, slot: usize) -> Client<S> {
        Client {
            stream,
            client,
            buf: k.buf,
            up_buf: k.up_buf,
            head: k.head,
            out: k.out,
            scratch: k.scratch,
            cancel: k.cancel,
            slot,
            tls: None,
            replay: RawReplay::default(),
        }
    }
}

impl<S> Client<S> {
    /// The stream and the kit, apart again (the kit goes back to the shard's pool).
    pub(super) fn into_parts(self) -> (S, Kit) {
        let kit = Kit {
            buf: self.buf,
            up_buf: self.up_buf,
            head: self.head,
            out: self.out,
            scratch: self.scratch,
            cancel: self.cancel,
        };
        (self.stream, kit)
    }
}

impl Client {
    pub(super) fn assemble(l: Link, k: Kit, slot: usize) -> Client {
        Client::new(l.stream, l.client, k, slot)
    }

    pub(super) fn disassemble(self) -> (Link, Kit) {
        let client = self.client;
        let (stream, kit) = self.into_parts();
        (Link { stream, client }, kit)
    }
}

/// Answers with a canned error before the connection closes; a failed write changes nothing then.
pub(super) async fn refuse<S: Wire>(stream: &mut S, bytes: &'static [u8], idle: Duration) {
    let _ = write_static(stream, bytes, idle).await;
}
