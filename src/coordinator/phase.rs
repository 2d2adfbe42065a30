//! The coordinator's lifecycle phase (starting, running, draining, exiting) and its transitions;
//! the drain's deadline and progress timers live in the `Draining` arm. Coordinator thread only.
//!
//! ```text
//! Starting ──every shard Ready──▶ Running ──TERM/INT, POST /drain──▶ Draining
//!    │  └──────────POST /drain────────────────────────────────────────▶ │
//!    └──────────────────────── exit(code) from any phase ──────────────┴──▶ Exiting
//! ```
//! A drain asked for in `Draining` does nothing; the loop ends at `Exiting`.

use std::time::{Duration, Instant};

use crossbeam_channel::{after, never, tick, Receiver};

/// How often a drain prints what is left.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub enum Phase {
    /// Shards are binding; not every one has reported `Ready`.
    Starting,
    /// Every shard serves; signals and admin calls act (see `coordinator`'s module doc).
    Running,
    /// No new connections; in-flight requests finish until every shard drained or `give_up` fires.
    Draining(Drain),
    /// The process exits with `code` once the current event is handled. `draining`: whether a
    /// drain had started (admin answers still say so).
    Exiting { code: i32, draining: bool },
}

/// The timers of a drain.
pub struct Drain {
    /// Fires when the drain gives up (exit 1).
    give_up: Receiver<Instant>,
    /// Fires once a second: print the shards' progress.
    progress: Receiver<Instant>,
}

impl Phase {
    /// Every shard reported `Ready`: `Starting` becomes `Running`; a drain or an exit asked for
    /// meanwhile stays.
    pub fn started(&mut self) {
        if let Phase::Starting = self {
            *self = Phase::Running;
        }
    }

    /// Starts a drain that gives up after `deadline`; false when one had started already (then
    /// nothing changes).
    pub fn drain(&mut self, deadline: Duration) -> bool {
        match self {
            Phase::Draining(_) | Phase::Exiting { draining: true, .. } => false,
            Phase::Exiting { draining, .. } => {
                *draining = true;
                true
            }
            Phase::Starting | Phase::Running => {
                *self = Phase::Draining(Drain {
                    give_up: after(deadline),
                    progress: tick(PROGRESS_EVERY),
                });
                true
            }
        }
    }

    /// The process should exit with `code` (a later call's code replaces an earlier one's).
    pub fn exit(&mut self, code: i32) {
        let draining = self.is_draining();
        *self = Phase::Exiting { code, draining };
    }

    /// Whether a drain has started (and the process is draining or exiting after one).
    pub fn is_draining(&self) -> bool {
        matches!(
            self,
            Phase::Draining(_) | Phase::Exiting { draining: true, .. }
        )
    }

    /// The exit code, once the process should exit.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Phase::Exiting { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The drain's deadline and progress timers, to select on (never firing outside a drain).
    pub fn timers(&self) -> (Receiver<Instant>, Receiver<Instant>) {
        match self {
            Phase::Draining(d) => (d.give_up.clone(), d.progress.clone()),
            _ => (never(), never()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn starting_becomes_running_once_every_shard_is_ready() {
        let mut p = Phase::Starting;
        assert!(!p.is_draining());
        p.started();
        assert!(matches!(p, Phase::Running));
        assert_eq!(p.exit_code(), None);
    }

    #[test]
    fn a_drain_starts_once() {
        let mut p = Phase::Running;
        assert!(p.drain(LONG));
        assert!(p.is_draining());
        let (give_up, progress) = p.timers();
        assert!(!p.drain(Duration::ZERO), "a second drain is not a new one");
        let (still, ticking) = p.timers();
        assert!(give_up.same_channel(&still), "the first deadline stays");
        assert!(progress.same_channel(&ticking));
    }

    #[test]
    fn a_drain_asked_for_during_start_up_survives_the_start() {
        let mut p = Phase::Starting;
        assert!(p.drain(LONG));
        p.started();
        assert!(p.is_draining());
    }

    #[test]
    fn exit_keeps_whether_a_drain_had_started() {
        let mut p = Phase::Running;
        p.exit(1);
        assert_eq!(p.exit_code(), Some(1));
        assert!(!p.is_draining());

        let mut p = Phase::Running;
        p.drain(LONG);
        p.exit(0);
        assert_eq!(p.exit_code(), Some(0));
        assert!(p.is_draining());
        p.exit(1);
        assert_eq!(p.exit_code(), Some(1), "the later code wins");
        assert!(p.is_draining());
        p.started();
        assert_eq!(p.exit_code(), Some(1), "exiting stays exiting");
    }

    #[test]
    fn a_drain_asked_for_while_exiting_still_counts() {
        let mut p = Phase::Starting;
        p.exit(1);
        assert!(p.drain(LONG), "the shards are still told to drain");
        assert!(p.is_draining());
        assert!(!p.drain(LONG));
        assert_eq!(p.exit_code(), Some(1));
    }

    #[test]
    fn timers_fire_only_in_a_drain() {
        let mut p = Phase::Running;
        let (give_up, progress) = p.timers();
        assert!(give_up.try_recv().is_err() && progress.try_recv().is_err());
        p.drain(Duration::ZERO);
        let (give_up, _) = p.timers();
        assert!(give_up.recv_timeout(LONG).is_ok(), "a zero deadline fires");
        p.exit(1);
        let (give_up, progress) = p.timers();
        assert!(give_up.try_recv().is_err() && progress.try_recv().is_err());
    }
}
