//! A client connection's task: wait for a request (idle timeout; woken by drain), read its head
//! (header timeout, size limits), validate it, run the exchange, and loop for keep-alive and
//! pipelining until either side closes. Runs on the shard that accepted the connection.

use std::net::SocketAddr;
use std::rc::Rc;

use monoio::buf::IoBufMut;
use monoio::io::CancelableAsyncReadRent;
use monoio::net::TcpStream;
use monoio::time::Instant;

use super::forward::{self, Outcome};
use super::io::{read_more_until, write_buf, write_static, Buf, IoFail};
use super::{tunnel, Shard};
use crate::http::request::{self, Forwarding, Reject};
use crate::http::{canned, Head};

/// Everything one client connection owns; buffers are reused for every request on it.
pub struct Client {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Bytes read from the client: request heads, bodies, pipelined requests.
    pub buf: Buf,
    /// Bytes read from the upstream of the current exchange.
    pub up_buf: Buf,
    /// The rewritten head being sent (request upstream, then response to the client).
    pub head: Vec<u8>,
}

/// Serves one accepted connection until it closes.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _open = shard.drain.connection();
    let _ = stream.set_nodelay(true);
    let size = shard.config.shards.buffer_size;
    let mut c = Client {
        stream,
        peer,
        buf: Buf::with_capacity(size),
        up_buf: Buf::with_capacity(size),
        head: Vec::with_capacity(1024),
    };
    loop {
        if c.buf.is_empty() && !wait_for_request(&shard, &mut c).await {
            return;
        }
        let _in_flight = shard.drain.request();
        let Some(req) = read_head(&shard, &mut c).await else {
            return;
        };
        match forward::exchange(&shard, &mut c, &req).await {
            Outcome::KeepAlive => {}
            Outcome::Close => return,
            Outcome::Tunnel(upstream) => {
                let pending = c.buf.len();
                let mut up = upstream;
                if pending > 0
                    && write_buf(&mut up, &mut c.buf, pending, shard.config.timeouts.body)
                        .await
                        .is_err()
                {
                    return;
                }
                drop(_in_flight);
                tunnel::run(c.stream, up).await;
                return;
            }
        }
    }
}

/// Waits for the first bytes of the next request. False: close (EOF, idle timeout, drain).
async fn wait_for_request(shard: &Shard, c: &mut Client) -> bool {
    if shard.drain.is_draining() {
        return false;
    }
    let v = std::mem::take(&mut c.buf.v);
    let cap = v.capacity();
    let read = c
        .stream
        .cancelable_read(v.slice_mut(0..cap), shard.drain.idle_read_handle());
    monoio::select! {
        (res, slice) = read => {
            c.buf.v = slice.into_inner();
            matches!(res, Ok(n) if n > 0)
        }
        _ = monoio::time::sleep(shard.config.timeouts.idle) => false,
    }
}

/// Reads until a whole head is buffered and validated; answers and returns `None` when refused.
async fn read_head(shard: &Shard, c: &mut Client) -> Option<request::Request> {
    let limits = &shard.config.shards;
    let deadline = Instant::now() + shard.config.timeouts.header;
    let fwd = Forwarding {
        client_ip: c.peer.ip(),
        request_id: shard.next_request_id(),
        fallback_host: shard.fallback_host.as_bytes(),
    };
    loop {
        match request::process(
            c.buf.data(),
            c.buf.is_full(),
            limits.max_request_line,
            &fwd,
            &mut c.head,
        ) {
            Ok(Head::Complete(req)) => return Some(req),
            Ok(Head::Partial) => match read_more_until(&mut c.stream, &mut c.buf, deadline).await {
                Ok(_) => {}
                Err(IoFail::TimedOut) => {
                    refuse(&mut c.stream, 408, shard.config.timeouts.body).await;
                    return None;
                }
                Err(_) => return None,
            },
            Err(reject) => {
                let status = match reject {
                    Reject::BadRequest => 400,
                    Reject::UriTooLong => 414,
                    Reject::HeadersTooLarge => 431,
                    Reject::NotImplemented => 501,
                    Reject::ExpectationFailed => 417,
                };
                refuse(&mut c.stream, status, shard.config.timeouts.body).await;
                return None;
            }
        }
    }
}

/// Answers with a canned error before the connection closes; a failed write changes nothing then.
pub(super) async fn refuse(stream: &mut TcpStream, status: u16, idle: std::time::Duration) {
    let _ = write_static(stream, canned::response(status), idle).await;
}
