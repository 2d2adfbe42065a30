//! Waiting for the next request on a keep-alive HTTP/1.1 connection (`Wait`, per stream type):
//! hold the kit for at most `idle_buffer_time` (the read is then cancelled, bytes it got are
//! kept), or less when the shard holds many connections (`lean_above`); past that, the
//! connection sleeps without it (idle.rs). Plain TCP and TLS wait the same way: a TLS stream's
//! read cancels only its socket read, never ciphertext it already has. A drain wakes the read by
//! shutting the receive side. Shard thread, on the connection's task.

use std::future::Future;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::CancelableAsyncReadRent;
use monoio::net::TcpStream;

use super::client::Client;
use crate::shard::io::Wire;
use crate::shard::Shard;

/// How a connection's stream waits for the next request.
pub(super) trait Wait: Wire + Sized {
    fn wait_for_request(
        shard: &Shard,
        c: &mut Client<Self>,
        wake: Wake,
    ) -> impl Future<Output = Waited>;
}

impl Wait for TcpStream {
    fn wait_for_request(
        shard: &Shard,
        c: &mut Client<Self>,
        wake: Wake,
    ) -> impl Future<Output = Waited> {
        wait_for_request(shard, c, wake)
    }
}

/// How long a connection may wait for its next request, or `None`: close now (the drain has
/// closed its idle connections, and this one already had a response).
fn patience(shard: &Shard, wake: Wake) -> Option<Duration> {
    let t = shard.table().config.timeouts;
    match (shard.drain.is_draining(), wake) {
        (false, _) => Some(t.idle),
        (true, Wake::Again) if shard.drain.idle_closed() => None,
        (true, _) => Some(t.header),
    }
}

/// Why a connection is about to read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    /// Just accepted.
    First,
    /// Readiness after an idle wait without the kit.
    Woken,
    /// After a response on a keep-alive connection.
    Again,
}

/// What waiting for the next request came to.
pub(super) enum Waited {
    Request,
    Close,
    /// No request within `idle_buffer_time`: sleep without the kit for the rest of the idle time.
    Sleep(Duration),
}

/// Waits for the first bytes of the next request, holding the kit for at most
/// `idle_buffer_time` (then the read is cancelled; bytes it got in the meantime are kept).
/// A connection accepted from the queue while draining, or woken from its sleep, still gets its
/// request read (and answered with `Connection: close`), within the header timeout.
pub(super) async fn wait_for_request<S: Wire + CancelableAsyncReadRent>(
    shard: &Shard,
    c: &mut Client<S>,
    wake: Wake,
) -> Waited {
    let Some(wait) = patience(shard, wake) else {
        return Waited::Close;
    };
    let draining = shard.drain.is_draining();
    // Woken by readiness, the bytes are there: read them whatever `idle_buffer_time` says.
    let s = &shard.base.shards;
    let keep = if draining || wake == Wake::Woken {
        wait
    } else if shard.drain.connections() > s.lean_above {
        Duration::ZERO
    } else {
        s.idle_buffer_time.min(wait)
    };
    // A TLS stream may hold the request already (it came with the handshake's last flight):
    // readiness would never come for it, so it is read at once.
    let keep = match keep.is_zero() {
        true if !c.stream.has_buffered_input() => return Waited::Sleep(wait),
        true => wait,
        false => keep,
    };
    let v = std::mem::take(&mut c.buf.v);
    let cap = v.capacity();
    // A drain wakes this read by shutting the socket's receive side (see Drain::close_idle).
    shard.drain.set_idle(c.slot, true);
    if draining && wake == Wake::Again {
        // Its last response went out keep-alive before the drain began (one during the drain
        // says close and ends the connection): its client may send another request, which is
        // answered if it comes before `Drain::close_idle`.
        shard.drain.doom(c.slot);
    }
    if keep >= wait {
        // The idle timeout comes first: nothing to cancel, the connection closes then.
        let read = c.stream.read(v.slice_mut(0..cap));
        let got = monoio::select! {
            r = read => Some(r),
            _ = monoio::time::sleep(wait) => None,
        };
        shard.drain.set_idle(c.slot, false);
        let Some((res, slice)) = got else {
            return Waited::Close;
        };
        c.buf.v = slice.into_inner();
        return match res {
            Ok(n) if n > 0 => Waited::Request,
            _ => Waited::Close,
        };
    }
    let read = c
        .stream
        .cancelable_read(v.slice_mut(0..cap), c.cancel.handle());
    let mut read = std::pin::pin!(read);
    let (res, slice) = monoio::select! {
        r = &mut read => r,
        _ = monoio::time::sleep(keep) => {
            // Bytes that arrived before the cancel took effect are returned, not lost.
            c.cancel = std::mem::take(&mut c.cancel).cancel();
            read.await
        }
    };
    shard.drain.set_idle(c.slot, false);
    c.buf.v = slice.into_inner();
    match res {
        Ok(n) if n > 0 => Waited::Request,
        Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => Waited::Sleep(wait - keep),
        _ => Waited::Close,
    }
}
