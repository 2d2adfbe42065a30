//! The only messages that cross threads: coordinator → shard (`ToShard`) and shard → coordinator
//! (`ToCoordinator`), over crossbeam channels, plus the wake-up that lets a shard's control task
//! sleep on its mailbox instead of polling (monoio's `sync` feature makes cross-thread wakes work).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::config::Config;
use crate::stats::Snapshot;
use crate::tls::TicketKeys;

/// Events a shard acts on.
#[derive(Debug, Clone)]
pub enum ToShard {
    /// Stop accepting, finish in-flight requests, report `Drained`.
    Drain,
    /// A new validated config (reload, or re-resolved endpoints): new requests use it at once.
    Config(Arc<Config>),
    /// Another shard's (or a probe's) verdict on an endpoint.
    Health(HealthNews),
    /// Send a `Stats` snapshot.
    Stats,
    /// Start accepting on listeners a reload added (this shard's sockets, opened by the coordinator).
    Listen(Handoff),
    /// Stop accepting on a listener a reload removed (queued connections are still served).
    Unlisten(SocketAddr),
    /// Session-ticket keys of a rotation (every shard gets the same copy, so a ticket one shard
    /// sealed resumes on any other).
    TicketKeys(TicketKeys),
    /// The limits thread's verdict on `scope = "global"` limits: keys over the fleet-wide
    /// allowance until when, and routes that cannot be checked (replaces the previous one).
    GlobalDenials(Arc<GlobalDenials>),
}

pub use crate::policy::ratelimit::CountKey;

/// Keys over their global allowance (until an instant of this host's clock, converted from the
/// relative time Redis answered), and the routes with `on_error = "deny"` whose Redis cannot be
/// reached (every key of them answers 429). Route indices are those of the config the limits
/// thread was last given (the one the shards serve).
#[derive(Debug, Default, PartialEq)]
pub struct GlobalDenials {
    pub until: Vec<(CountKey, std::time::Instant)>,
    pub unchecked: Vec<u32>,
}

/// What one shard admitted on `scope = "global"` routes during one `sync` period, per (route,
/// key); route indices are those of `config`, the version the shard counted under.
#[derive(Debug, Clone)]
pub struct AdmittedBatch {
    pub config: Arc<Config>,
    pub counts: Vec<(CountKey, u64)>,
}

/// What a listening socket serves: whether each connection starts with a PROXY header, and for
/// HTTPS the TLS listener it belongs to (the address it is bound to, the key of the shard's
/// acceptor for it: two listeners written `127.0.0.1:0` are two listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerKind {
    pub proxy_header: bool,
    pub tls: Option<SocketAddr>,
    /// A connection opening with the HTTP/2 preface speaks h2c (plain listeners only).
    pub h2c: bool,
}

impl ListenerKind {
    /// What `l` serves, once it is bound to `bound`.
    pub fn of(l: &crate::config::Listener, bound: SocketAddr) -> ListenerKind {
        ListenerKind {
            proxy_header: l.proxy_protocol,
            tls: l.tls.as_ref().map(|_| bound),
            h2c: l.h2c,
        }
    }
}

/// Listening sockets handed to one shard, with what each serves. Taken once.
#[derive(Debug, Clone, Default)]
pub struct Handoff(Arc<Mutex<Vec<(std::net::TcpListener, ListenerKind)>>>);

impl Handoff {
    pub fn new(sockets: Vec<(std::net::TcpListener, ListenerKind)>) -> Handoff {
        Handoff(Arc::new(Mutex::new(sockets)))
    }

    pub fn take(&self) -> Vec<(std::net::TcpListener, ListenerKind)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Health of one endpoint, as one shard learnt it; the coordinator relays it to every shard.
#[derive(Debug, Clone)]
pub struct HealthNews {
    /// The shard it came from (it has applied it already).
    pub from: usize,
    pub cluster: Arc<str>,
    pub endpoint: Arc<str>,
    pub event: HealthEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthEvent {
    /// Active checks reached `rise` successes.
    ProbeUp,
    /// Active checks reached `fall` failures.
    ProbeDown,
    /// Passive outlier detection: the shard's breaker opened.
    Ejected,
    /// The shard's breaker let a probe through after its open timeout (logged, not relayed).
    HalfOpened,
    /// The shard's breaker closed again.
    Readmitted,
}

/// Which I/O driver a shard's runtime got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring, with the setup flags its ring got.
    IoUring(crate::config::UringSetup),
    Epoll,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring(_) => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Reports a shard sends.
#[derive(Debug, Clone)]
pub enum ToCoordinator {
    /// Listening and serving.
    Ready {
        id: usize,
        driver: Driver,
        core: Option<usize>,
    },
    /// Could not start (bind error, runtime error): the process exits.
    Failed { id: usize, error: String },
    /// While draining: what is still open on this shard.
    Progress {
        id: usize,
        connections: usize,
        requests: usize,
        /// Connections that are tunnels (WebSockets), among `connections`.
        tunnels: usize,
    },
    /// Every connection of this shard is closed.
    Drained { id: usize },
    /// An endpoint changed state on this shard: relay to the others.
    Health(HealthNews),
    /// This shard serves new requests with the config it was sent (`ToShard::Config`).
    ConfigApplied { id: usize },
    /// The answer to `ToShard::Stats`.
    Stats {
        id: usize,
        connections: usize,
        requests: usize,
        snapshot: Box<Snapshot>,
    },
    /// Counts admitted on global routes since this shard's last batch (at most one per `sync`
    /// period, none when nothing was admitted): relayed to the limits thread.
    Admitted(AdmittedBatch),
}

type WakeSlot = Arc<Mutex<Option<Waker>>>;

/// The coordinator's end of one shard's mailbox.
pub struct ShardLink {
    tx: Sender<ToShard>,
    wake: WakeSlot,
}

/// The shard's end: awaited by its control task.
pub struct Mailbox {
    rx: Receiver<ToShard>,
    wake: WakeSlot,
}

/// A mailbox pair for one shard.
pub fn mailbox() -> (ShardLink, Mailbox) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let wake = WakeSlot::default();
    (
        ShardLink {
            tx,
            wake: wake.clone(),
        },
        Mailbox { rx, wake },
    )
}

impl ShardLink {
    /// Sends and wakes the shard's control task; false when the shard is gone.
    pub fn send(&self, msg: ToShard) -> bool {
        let sent = self.tx.send(msg).is_ok();
        if let Some(w) = self.wake.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.wake();
        }
        sent
    }
}

impl Mailbox {
    /// The next event; `None` when the coordinator is gone.
    pub async fn recv(&self) -> Option<ToShard> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<ToShard>> {
        match self.rx.try_recv() {
            Ok(m) => return Poll::Ready(Some(m)),
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        *self.wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        // A message sent between the first try and storing the waker would otherwise be missed.
        match self.rx.try_recv() {
            Ok(m) => Poll::Ready(Some(m)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }
}

/// Where shards report to.
pub type Reports = Sender<ToCoordinator>;
