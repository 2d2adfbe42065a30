//! The shard's control task: waits on its mailbox for coordinator events and acts on them
//! (today: drain, with progress reports until the last connection closes). Shard thread.

use std::rc::Rc;
use std::time::Duration;

use monoio::task::JoinHandle;

use super::Shard;
use crate::bus::{Mailbox, Reports, ToCoordinator, ToShard};

/// How often a draining shard reports what it still holds.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs until this shard has drained (or the coordinator is gone). `accepting` are the accept
/// loops: a drain waits for them, so every listener is closed before the runtime ends.
pub async fn run(
    shard: Rc<Shard>,
    accepting: Vec<JoinHandle<()>>,
    mailbox: Mailbox,
    reports: Reports,
) {
    // Drain is the only event so far; config and health events join this match later.
    match mailbox.recv().await {
        Some(ToShard::Drain) => {
            shard.drain.start();
            for accept_loop in accepting {
                accept_loop.await;
            }
            drain(&shard, &reports).await;
            let _ = reports.send(ToCoordinator::Drained { id: shard.id });
        }
        None => {}
    }
}

/// Waits for every connection to close, reporting progress; the coordinator owns the deadline.
async fn drain(shard: &Shard, reports: &Reports) {
    loop {
        let report = ToCoordinator::Progress {
            id: shard.id,
            connections: shard.drain.connections(),
            requests: shard.drain.requests(),
        };
        let _ = reports.send(report);
        if shard.drain.connections() == 0 {
            return;
        }
        let closed = shard.drain.wait_until(|d| d.connections() == 0);
        let _ = monoio::time::timeout(PROGRESS_EVERY, closed).await;
    }
}
