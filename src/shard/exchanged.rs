//! What one exchange reads (`Ctx`: the route, its cluster and the table they belong to) and what
//! it comes to (`Exchanged` for the access log and statistics, `Outcome` for the connection loop).
//! Shared by conn.rs, forward.rs and exchange.rs, so that the exchange below never imports the
//! code above it. Shard thread.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

use super::table::{RouteView, Table};
use super::upstream::ClusterView;
use crate::config::Route;

/// What the connection task does after an exchange.
pub enum Outcome {
    /// Read the next request.
    KeepAlive,
    Close,
    /// The upstream switched protocols: tunnel bytes both ways until either side closes.
    Tunnel(TcpStream),
}

/// An exchange as the access log and statistics see it.
pub struct Exchanged {
    pub outcome: Outcome,
    /// The status the client got (0: none, the client went away).
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub upstream: Option<SocketAddr>,
    /// From sending the request to the response head, on the last attempt.
    pub upstream_time: Option<Duration>,
}

/// Everything one exchange reads from the table.
pub struct Ctx<'t> {
    pub table: &'t Table,
    pub route: &'t RouteView,
    pub cfg: &'t Route,
    pub cluster: &'t ClusterView,
}
