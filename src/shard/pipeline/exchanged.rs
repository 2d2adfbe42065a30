//! What one request reads in the pipeline (`Ctx`: the route, its cluster and the table they
//! belong to) and what it comes to (`Exchanged` for the access log and statistics, `Outcome` for
//! the front-end that carries it). Shard thread.

use std::net::SocketAddr;

use crate::config::Route;
use crate::shard::table::{RouteView, Table};
use crate::shard::upstream::attempt::Tally;
use crate::shard::upstream::cluster::ClusterView;
use crate::shard::upstream::stream::UpStream;

/// What the front-end does after a request.
pub enum Outcome {
    /// Read the next request.
    KeepAlive,
    Close,
    /// The upstream switched protocols: tunnel bytes both ways until either side closes.
    Tunnel(UpStream),
}

/// A request as the access log and statistics see it.
pub struct Exchanged {
    pub outcome: Outcome,
    /// Status, bytes both ways and upstream time.
    pub tally: Tally,
    /// The endpoint of the last attempt.
    pub upstream: Option<SocketAddr>,
}

impl Exchanged {
    /// Nothing answered yet: the head's bytes are in, the connection closes unless told otherwise.
    pub fn new(head_len: usize) -> Exchanged {
        Exchanged {
            outcome: Outcome::Close,
            tally: Tally {
                bytes_in: head_len as u64,
                ..Tally::default()
            },
            upstream: None,
        }
    }
}

/// Everything one exchange reads from the table.
pub struct Ctx<'t> {
    pub table: &'t Table,
    pub route: &'t RouteView,
    pub cfg: &'t Route,
    pub cluster: &'t ClusterView,
}
