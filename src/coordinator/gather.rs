//! Statistics gathering for a scrape (`/metrics`, `/shards`): asks every shard for a snapshot and
//! waits, bounded, for the answers, noting each shard's connection and request counts on the way.
//! Coordinator thread only.

use std::time::Duration;

use crossbeam_channel::{after, select};

use super::state::Coordinator;
use crate::bus::{ToCoordinator, ToShard};
use crate::stats::Snapshot;

/// How long a scrape waits for every shard's snapshot.
const STATS_TIMEOUT: Duration = Duration::from_secs(1);

impl Coordinator {
    /// Asks every shard for a snapshot and waits (bounded) for the answers; a shard that does not
    /// answer in time is left out.
    pub(super) fn gather(&mut self) -> Vec<Snapshot> {
        for link in &self.links {
            link.send(ToShard::Stats);
        }
        let mut got: Vec<Option<Snapshot>> = vec![None; self.links.len()];
        let deadline = after(STATS_TIMEOUT);
        while got.iter().any(Option::is_none) {
            select! {
                recv(self.reports) -> msg => match msg {
                    Ok(ToCoordinator::Stats { id, connections, requests, snapshot }) => {
                        self.shards[id].connections = connections;
                        self.shards[id].requests = requests;
                        got[id] = Some(*snapshot);
                    }
                    Ok(other) => self.report(other),
                    Err(_) => break,
                },
                recv(deadline) -> _ => break,
            }
        }
        got.into_iter().flatten().collect()
    }
}
