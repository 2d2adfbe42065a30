//! An upstream endpoint's HTTP/2 figures on one shard (clusters with `protocol = "h2"`/`"h2c"`):
//! open connections and streams in flight (gauges), GOAWAYs received and streams the endpoint
//! refused unprocessed (counters), and their snapshot, merged over shards like the other
//! endpoint counts (their `/metrics` rows are in families.rs: `shardgate_upstream_http2_*`). Plain `Cell`s written by the shard thread that owns the endpoint's pool; the
//! coordinator merges the snapshots.

use std::cell::Cell;

/// One endpoint's HTTP/2 figures on one shard.
#[derive(Debug, Default)]
pub struct H2Stats {
    /// HTTP/2 connections open now (from the handshake to the end of the connection's task).
    pub connections: Cell<u64>,
    /// Streams leased on them now.
    pub streams: Cell<u64>,
    /// Connections on which a GOAWAY came (each counted once).
    pub goaways: Cell<u64>,
    /// Streams the endpoint did not process: REFUSED_STREAM, or above a GOAWAY's last stream id.
    pub refused: Cell<u64>,
}

/// The figures of one shard's snapshot, or summed over shards.
#[derive(Debug, Clone, Copy, Default)]
pub struct H2Counts {
    pub connections: u64,
    pub streams: u64,
    pub goaways: u64,
    pub refused: u64,
}

impl H2Counts {
    pub(super) fn of(s: &H2Stats) -> H2Counts {
        H2Counts {
            connections: s.connections.get(),
            streams: s.streams.get(),
            goaways: s.goaways.get(),
            refused: s.refused.get(),
        }
    }

    pub(super) fn add(&mut self, o: &H2Counts) {
        self.connections += o.connections;
        self.streams += o.streams;
        self.goaways += o.goaways;
        self.refused += o.refused;
    }
}

/// Moves a gauge one up (`up`) or one down.
#[inline]
pub fn shift(c: &Cell<u64>, up: bool) {
    c.set(if up {
        c.get() + 1
    } else {
        c.get().saturating_sub(1)
    });
}
