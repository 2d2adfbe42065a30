//! Session-ticket keys: the coordinator makes them at start (random from the OS), hands a copy
//! to every shard as it spawns, and every `tls_ticket_rotation` makes the next generation (a new
//! key seals, the one before still opens) and sends it to every shard (`ToShard::TicketKeys`),
//! so a ticket any shard sealed resumes on every shard and no handshake takes a lock another
//! core holds. A reload that changes the period restarts the timer with it. Coordinator thread.

use std::time::{Duration, Instant};

use crossbeam_channel::{never, tick, Receiver};

use crate::bus::{ShardLink, ToShard};
use crate::tls::TicketKeys;

/// The keys every shard holds and when the next ones are due.
pub(super) struct Tickets {
    keys: TicketKeys,
    every: Duration,
    pub(super) due: Receiver<Instant>,
}

impl Tickets {
    /// Keys for a process that has not started shards yet (and so has no timer yet).
    pub(super) fn idle(keys: TicketKeys) -> Tickets {
        Tickets {
            keys,
            every: Duration::ZERO,
            due: never(),
        }
    }

    /// The keys to hand a shard that is starting.
    pub(super) fn keys(&self) -> &TicketKeys {
        &self.keys
    }
}

impl Tickets {
    /// Starts the rotation timer, or restarts it when a reload changed the period.
    pub(super) fn time(&mut self, every: Duration) {
        if every != self.every {
            self.every = every;
            self.due = tick(every);
        }
    }

    /// The next generation of keys, sent to every shard; the current keys stay when the OS
    /// gives no random bytes (said on stderr, tried again at the next tick).
    pub(super) fn rotate(&mut self, links: &[ShardLink]) {
        match self.keys.rotate(self.every) {
            Ok(next) => {
                for link in links {
                    link.send(ToShard::TicketKeys(next.clone()));
                }
                self.keys = next;
            }
            Err(e) => eprintln!("error: session-ticket keys not rotated: {e}"),
        }
    }
}
