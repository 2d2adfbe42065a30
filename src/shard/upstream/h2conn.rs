//! One HTTP/2 connection to an upstream (h2pool.rs opened it): what the pool counts on it
//! (`Conn`: its handle, streams in flight, draining) and its task, which drives the
//! connection's I/O (`h2` never spawns: streams' frames move only while this task polls), sends
//! a keep-alive PING every `ping_every` and closes the connection when its PONG has not come by
//! the next one, closes it once it has had no stream for the pool's idle timeout, and takes it
//! out of the pool when it ends (closed by the upstream, failed, or done after a GOAWAY). Shard
//! thread, one task per upstream HTTP/2 connection.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::{Connection, SendRequest};
use h2::Ping;
use monoio::time::{sleep, Instant};

/// The I/O under an upstream HTTP/2 connection: plain TCP or TLS through the compat wrapper.
pub type Io = monoio_compat::StreamWrapper<super::stream::UpStream>;

/// One HTTP/2 connection as the pool sees it; its task owns the I/O.
pub struct Conn {
    pub send: RefCell<SendRequest<Bytes>>,
    /// Streams leased on it now.
    pub in_flight: Cell<usize>,
    /// GOAWAY received or the connection failed: no new streams.
    pub draining: Cell<bool>,
    /// When its last stream ended (the idle timeout counts from there).
    pub idle_since: Cell<Instant>,
    /// A GOAWAY from the upstream was counted.
    pub goaway: Cell<bool>,
}

impl Conn {
    pub fn new(send: SendRequest<Bytes>) -> Conn {
        Conn {
            send: RefCell::new(send),
            in_flight: Cell::new(0),
            draining: Cell::new(false),
            idle_since: Cell::new(Instant::now()),
            goaway: Cell::new(false),
        }
    }
}

/// What woke the task.
enum Event {
    /// The connection ended.
    Ended,
    /// Time for the keep-alive and idle checks.
    Tick,
    /// The PING was answered.
    Pong,
}

/// Runs one connection until it ends, then calls `on_end` (the pool lets it go); `idle` is the
/// pool's idle timeout.
pub async fn drive(
    mut conn: Connection<Io, Bytes>,
    me: Rc<Conn>,
    idle: Duration,
    on_end: impl FnOnce(),
) {
    let mut pings = conn.ping_pong();
    let ping_every = ping_interval(idle);
    let mut conn = pin!(conn);
    let mut awaiting = false;
    loop {
        let event = monoio::select! {
            _ = &mut conn => Event::Ended,
            _ = sleep(ping_every) => Event::Tick,
            r = poll_fn(|cx| match pings.as_mut() {
                Some(p) if awaiting => p.poll_pong(cx).map(|r| r.is_ok()),
                _ => std::task::Poll::Pending,
            }) => if r { Event::Pong } else { Event::Ended },
        };
        match event {
            Event::Ended => break,
            Event::Pong => awaiting = false,
            Event::Tick => {
                let quiet = me.in_flight.get() == 0;
                if quiet && (me.idle_since.get().elapsed() >= idle || me.draining.get()) {
                    break;
                }
                // A PING still unanswered after a whole interval: the upstream is gone.
                if awaiting {
                    break;
                }
                if let Some(p) = pings.as_mut() {
                    awaiting = p.send_ping(Ping::opaque()).is_ok();
                }
            }
        }
    }
    on_end();
}

/// How often an upstream connection is PINGed (and its idleness checked): a quarter of the idle
/// timeout, between 1 and 30 seconds.
fn ping_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}
