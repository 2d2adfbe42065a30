//! What the coordinator holds: the current config, the shards' links and what each reported, the
//! channels it selects on, the lifecycle `Phase` and the timers of the current config (the TLS file
//! watch) and DNS discovery. The
//! behaviour lives beside it, one concept a file (`control`, `reload`, `relisten`, `gather`,
//! `admin::answer`). Coordinator thread only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{never, Receiver};

use super::admin::status::ProcessStatus;
use super::admin::AdminCall;
use super::admin::TokenSlot;
use super::cert_watch::CertWatch;
use super::phase::Phase;
use super::state_log::StateLog;
use super::tickets::Tickets;
use crate::access_log::Writer;
use crate::bus::{Driver, ShardLink, ToCoordinator};
use crate::config::Config;

/// Reads and validates the config again (file, then the same flags); the error names file/line.
pub type Reloader = Box<dyn Fn() -> Result<Config, String> + Send>;

/// What the coordinator knows of one shard.
#[derive(Clone, Default)]
pub(super) struct ShardInfo {
    pub(super) ready: bool,
    pub(super) driver: Option<Driver>,
    pub(super) core: Option<usize>,
    pub(super) connections: usize,
    pub(super) requests: usize,
    /// Tunnels among `connections` (as of the last drain progress report).
    pub(super) tunnels: usize,
    pub(super) drained: bool,
}

pub struct Coordinator {
    /// The config every shard serves with (the last one broadcast).
    pub(super) config: Arc<Config>,
    pub(super) links: Vec<ShardLink>,
    pub(super) reports: Receiver<ToCoordinator>,
    pub(super) signals: Receiver<i32>,
    pub(super) calls: Receiver<AdminCall>,
    pub(super) log: Option<Writer>,
    pub(super) reload: Reloader,
    pub(super) shards: Vec<ShardInfo>,
    /// Starting, running, draining (with the drain's timers) or exiting (with the exit code, set
    /// when the process should exit after answering the current call).
    pub(super) phase: Phase,
    /// DNS discovery: its thread's answers and the last-known endpoint sets.
    pub(super) discovery: crate::external::discovery::Discovery,
    /// Cluster-wide rate limits: the limits thread, its news, its failed-sync counts.
    pub(super) limits: crate::external::limits::Limits,
    /// Endpoint state changes written to stderr, rate-limited per endpoint.
    pub(super) state_log: StateLog,
    /// The session-ticket keys every shard holds, and when they rotate.
    pub(super) tickets: Tickets,
    /// Start time, config version and the last reload's outcome (`/stats.json`).
    pub(super) status: ProcessStatus,
    /// The TLS listeners' files as last loaded, looked at on `cert_tick` (every
    /// `tls_watch_interval` of the current config; never when it is zero or nothing is TLS).
    pub(super) cert_watch: CertWatch,
    pub(super) cert_every: Option<Duration>,
    pub(super) cert_tick: Receiver<Instant>,
    /// The listening sockets an upgrade hands over, the upgrade socket's events, SIGUSR2.
    pub(super) upgrades: crate::upgrade::lifecycle::Upgrades,
    /// The admin token the admin thread checks: `config.admin_token`, put in force again after
    /// every reload (`reload.rs`).
    pub(super) admin_token: TokenSlot,
}

impl Coordinator {
    pub fn new(
        config: Arc<Config>,
        links: Vec<ShardLink>,
        reports: Receiver<ToCoordinator>,
        signals: Receiver<i32>,
        calls: Receiver<AdminCall>,
        (log, tickets, upgrades, admin_token): (
            Writer,
            Tickets,
            crate::upgrade::lifecycle::Upgrades,
            TokenSlot,
        ),
        reload: Reloader,
    ) -> Coordinator {
        let n = links.len();
        Coordinator {
            config,
            links,
            reports,
            signals,
            calls,
            log: Some(log),
            reload,
            shards: vec![ShardInfo::default(); n],
            phase: Phase::Starting,
            discovery: Default::default(),
            limits: Default::default(),
            state_log: StateLog::default(),
            tickets,
            status: ProcessStatus::default(),
            cert_watch: CertWatch::default(),
            cert_every: None,
            cert_tick: never(),
            upgrades,
            admin_token,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.links.len()
    }
}
