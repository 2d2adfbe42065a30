//! What `/stats.json` says about the process beyond the shards' statistics: when it started, which
//! config version it serves (1 at start, +1 per successful reload) and how the last reload went.
//! Coordinator thread only; reloads from `SIGHUP` and `POST /reload` both go through
//! `Coordinator::reload_noted` (reload.rs), so the record sees every attempt.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The process record shown on the status page.
#[derive(Debug, Clone)]
pub(in crate::coordinator) struct ProcessStatus {
    pub(in crate::coordinator) started: Instant,
    /// 1 for the config the process started with, +1 per successful reload.
    pub(in crate::coordinator) config_version: u64,
    /// The last reload attempt: when (seconds since the Unix epoch) and its error, if it failed.
    pub(in crate::coordinator) last_reload: Option<ReloadOutcome>,
}

#[derive(Debug, Clone, PartialEq)]
pub(in crate::coordinator) struct ReloadOutcome {
    pub(in crate::coordinator) at_unix: f64,
    pub(in crate::coordinator) error: Option<String>,
}

impl Default for ProcessStatus {
    fn default() -> ProcessStatus {
        ProcessStatus {
            started: Instant::now(),
            config_version: 1,
            last_reload: None,
        }
    }
}

impl ProcessStatus {
    /// Notes one reload attempt's result.
    pub(in crate::coordinator) fn note_reload(&mut self, result: &Result<(), String>) {
        let at_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if result.is_ok() {
            self.config_version += 1;
        }
        let error = result.as_ref().err().cloned();
        self.last_reload = Some(ReloadOutcome { at_unix, error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_successful_reloads_and_keep_the_last_error() {
        let mut s = ProcessStatus::default();
        assert_eq!((s.config_version, s.last_reload.is_none()), (1, true));
        s.note_reload(&Ok(()));
        assert_eq!(s.config_version, 2);
        assert_eq!(s.last_reload.as_ref().unwrap().error, None);
        s.note_reload(&Err("bad.toml:3:1: oops".into()));
        assert_eq!(s.config_version, 2);
        let last = s.last_reload.unwrap();
        assert_eq!(last.error.as_deref(), Some("bad.toml:3:1: oops"));
        assert!(last.at_unix > 1_600_000_000.0);
    }
}
