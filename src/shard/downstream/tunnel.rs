//! After a `101 Switching Protocols`: copy bytes both ways between client and upstream until each
//! direction ends, then close both. A tunnel with no byte moving either way for its idle timeout
//! (`tunnel_idle_timeout`, `timeouts.tunnel_idle`) is closed; a drain closes it by shutting both
//! sockets (see `Drain::close_tunnels`). Either side may be TLS. Runs on the shard that owned
//! the exchange.

use std::cell::Cell;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::time::Instant;

use crate::shard::upstream::stream::UpStream;

/// Bytes one direction moves per read; two per tunnel, for its lifetime.
const CHUNK: usize = 16 * 1024;

/// Relays until both directions have finished (each side's EOF is passed on as a FIN), or until
/// nothing moved for `idle`; then both sockets close.
pub async fn run<C>(client: C, upstream: UpStream, idle: Duration)
where
    C: Splitable,
    C::OwnedRead: AsyncReadRent,
    C::OwnedWrite: AsyncWriteRent,
{
    match upstream {
        UpStream::Plain(s) => relay(client, s, idle).await,
        UpStream::Tls { stream, .. } => relay(client, *stream, idle).await,
    }
}

/// `run` over one kind of upstream stream.
async fn relay<C, U>(client: C, upstream: U, idle: Duration)
where
    C: Splitable,
    C::OwnedRead: AsyncReadRent,
    C::OwnedWrite: AsyncWriteRent,
    U: Splitable,
    U::OwnedRead: AsyncReadRent,
    U::OwnedWrite: AsyncWriteRent,
{
    let last = Cell::new(Instant::now());
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut up_rd, mut up_wr) = upstream.into_split();
    let relay = async {
        monoio::join!(
            pipe(&mut client_rd, &mut up_wr, &last),
            pipe(&mut up_rd, &mut client_wr, &last)
        );
    };
    let watchdog = async {
        loop {
            let due = last.get() + idle;
            if Instant::now() >= due {
                return;
            }
            monoio::time::sleep_until(due).await;
        }
    };
    // Past the idle time the relay is dropped (its reads cancelled) and both halves close.
    monoio::select! {
        _ = relay => {}
        _ = watchdog => {}
    }
}

/// One direction: copy until EOF or an error, noting when bytes last moved, then pass the FIN on.
async fn pipe<R: AsyncReadRent, W: AsyncWriteRent>(rd: &mut R, wr: &mut W, last: &Cell<Instant>) {
    let mut buf = Vec::with_capacity(CHUNK);
    loop {
        let (res, b) = rd.read(buf).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            break;
        }
        last.set(Instant::now());
        let (res, b) = wr.write_all(buf).await;
        buf = b;
        if res.is_err() {
            break;
        }
        buf.clear();
    }
    let _ = wr.shutdown().await;
}
