//! Session-ticket keys: the coordinator makes them at start (random from the OS), hands a copy
//! to every shard as it spawns, and every `tls.ticket_rotation` makes the next generation (a new
//! key seals, the one before still opens) and sends it to every shard (`ToShard::TicketKeys`),
//! so a ticket any shard sealed resumes on every shard and no handshake takes a lock another
//! core holds. A reload that changes the period restarts the timer with it. Coordinator thread.

use std::time::{Duration, Instant};

use crossbeam_channel::{never, tick, Receiver};

use super::state::Coordinator;
use crate::bus::ToShard;
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

impl Coordinator {
    /// Starts (or, after a reload changed the period, restarts) the rotation timer.
    pub(super) fn time_tickets(&mut self) {
        let every = self.config.tls.ticket_rotation;
        if every != self.tickets.every {
            self.tickets.every = every;
            self.tickets.due = tick(every);
        }
    }

    /// The next generation of keys, sent to every shard; the current keys stay when the OS
    /// gives no random bytes (said on stderr, tried again at the next tick).
    pub(super) fn rotate_tickets(&mut self) {
        match self.tickets.keys.rotate(self.tickets.every) {
            Ok(next) => {
                for link in &self.links {
                    link.send(ToShard::TicketKeys(next.clone()));
                }
                self.tickets.keys = next;
            }
            Err(e) => eprintln!("error: session-ticket keys not rotated: {e}"),
        }
    }
}
