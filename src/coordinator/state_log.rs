//! Endpoint state changes as stderr lines: health verdicts (unhealthy, healthy) and breaker
//! transitions on each shard (open, half-open, closed), one line each as the shards report them
//! over the bus. Rate-limited per endpoint and kind (health, breaker): one line a second, with a
//! burst of two so that an upstream that goes down and comes back within a second shows both
//! lines at once; what goes past the limit is counted, and one `N more ... suppressed` line says so
//! when the next line is allowed. Coordinator thread only: shards send an event on a transition
//! and never write these lines themselves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{at, never, Receiver};

use crate::bus::{HealthEvent, HealthNews};

/// One line per endpoint and kind in this long, on average.
const WINDOW: Duration = Duration::from_secs(1);
/// Lines an endpoint and kind may write at once after a quiet spell.
const BURST: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Health,
    Breaker,
}

impl Kind {
    fn of(e: HealthEvent) -> Kind {
        match e {
            HealthEvent::ProbeUp | HealthEvent::ProbeDown => Kind::Health,
            HealthEvent::Ejected | HealthEvent::HalfOpened | HealthEvent::Readmitted => {
                Kind::Breaker
            }
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Health => "health",
            Kind::Breaker => "breaker",
        }
    }
}

/// One endpoint and kind: a token bucket of lines (GCRA) and what it held back.
struct Window {
    /// When the bucket is full again; a line is allowed while `tat` is at most `(BURST - 1)`
    /// windows ahead of now.
    tat: Instant,
    suppressed: u32,
    /// The latest suppressed change, for the summary line.
    last: String,
}

impl Window {
    /// When the next line is allowed.
    fn next_line(&self) -> Instant {
        self.tat
            .checked_sub(WINDOW * (BURST - 1))
            .unwrap_or(self.tat)
    }

    /// Takes a line's token if one is left.
    fn take(&mut self, now: Instant) -> bool {
        if now < self.next_line() {
            return false;
        }
        self.tat = self.tat.max(now) + WINDOW;
        true
    }
}

type Key = (Arc<str>, Arc<str>, Kind);

#[derive(Default)]
pub struct StateLog {
    windows: HashMap<Key, Window>,
}

impl StateLog {
    /// Takes one event; returns the lines to write now (none when it is suppressed).
    pub fn note(&mut self, news: &HealthNews, now: Instant) -> Vec<String> {
        let kind = Kind::of(news.event);
        let (state, change) = describe(news);
        let key = (news.cluster.clone(), news.endpoint.clone(), kind);
        let w = self.windows.entry(key.clone()).or_insert(Window {
            tat: now,
            suppressed: 0,
            last: String::new(),
        });
        let mut out = Vec::new();
        // A summary the timer has not written yet comes first (and takes its own token).
        if w.suppressed > 0 && w.take(now) {
            out.extend(summary(&key, w));
        }
        if w.suppressed == 0 && w.take(now) {
            out.push(line(&key, &change));
        } else {
            w.suppressed += 1;
            w.last = state;
        }
        out
    }

    /// Fires when a window with suppressed lines may write its summary (`never` when none has).
    pub fn timer(&self) -> Receiver<Instant> {
        self.windows
            .values()
            .filter(|w| w.suppressed > 0)
            .map(Window::next_line)
            .min()
            .map_or_else(never, at)
    }

    /// The summary lines that may be written now (all of them with `all`), and forgets windows
    /// whose bucket is full again with nothing held back.
    pub fn flush(&mut self, now: Instant, all: bool) -> Vec<String> {
        let mut out = Vec::new();
        for (key, w) in &mut self.windows {
            if w.suppressed > 0 && (w.take(now) || all) {
                out.extend(summary(key, w));
            }
        }
        self.windows.retain(|_, w| w.suppressed > 0 || now < w.tat);
        out.sort();
        out
    }
}

/// `upstream CLUSTER ENDPOINT: CHANGE`.
fn line(key: &Key, change: &str) -> String {
    format!("upstream {} {}: {change}", key.0, key.1)
}

/// The `N more ... suppressed` line of a window, once; `None` when nothing was suppressed.
fn summary(key: &Key, w: &mut Window) -> Option<String> {
    if w.suppressed == 0 {
        return None;
    }
    let n = std::mem::take(&mut w.suppressed);
    let what = format!(
        "{n} more {} changes suppressed (last: {})",
        key.2.noun(),
        w.last
    );
    Some(line(key, &what))
}

/// The change as a short state (`unhealthy`, `open on shard 1`) and as its line's text.
fn describe(news: &HealthNews) -> (String, String) {
    let breaker = |state: &str| {
        let state = format!("{state} on shard {}", news.from);
        (state.clone(), format!("breaker {state}"))
    };
    match news.event {
        HealthEvent::ProbeDown => ("unhealthy".into(), "unhealthy (health check failed)".into()),
        HealthEvent::ProbeUp => ("healthy".into(), "healthy (health check passed)".into()),
        HealthEvent::Ejected => breaker("open"),
        HealthEvent::HalfOpened => breaker("half-open"),
        HealthEvent::Readmitted => breaker("closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn news(from: usize, endpoint: &str, event: HealthEvent) -> HealthNews {
        HealthNews {
            from,
            cluster: Arc::from("web"),
            endpoint: Arc::from(endpoint),
            event,
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn two_lines_at_once_then_one_a_second_and_a_summary() {
        let mut log = StateLog::default();
        let t = Instant::now();
        let a = "10.0.0.1:80";
        assert_eq!(
            log.note(&news(0, a, HealthEvent::ProbeDown), t),
            ["upstream web 10.0.0.1:80: unhealthy (health check failed)"]
        );
        // Down and back within a second: both written.
        assert_eq!(
            log.note(&news(0, a, HealthEvent::ProbeUp), t + 100 * MS),
            ["upstream web 10.0.0.1:80: healthy (health check passed)"]
        );
        // Another kind and another endpoint have their own buckets.
        assert_eq!(log.note(&news(1, a, HealthEvent::Ejected), t).len(), 1);
        assert_eq!(
            log.note(&news(0, "b:80", HealthEvent::ProbeDown), t).len(),
            1
        );
        // Flapping: held back until a token is back, one second after the first line.
        assert!(log
            .note(&news(0, a, HealthEvent::ProbeDown), t + 200 * MS)
            .is_empty());
        assert!(log
            .note(&news(0, a, HealthEvent::ProbeUp), t + 300 * MS)
            .is_empty());
        assert!(log
            .note(&news(0, a, HealthEvent::ProbeDown), t + 400 * MS)
            .is_empty());
        assert!(log.flush(t + 999 * MS, false).is_empty());
        assert!(log.timer().recv_deadline(t).is_err(), "due at t + 1s");
        assert_eq!(
            log.flush(t + 1000 * MS, false),
            ["upstream web 10.0.0.1:80: 3 more health changes suppressed (last: unhealthy)"]
        );
        assert!(log.flush(t + 3000 * MS, false).is_empty(), "said once");
        // Quiet again: the next change is written at once.
        assert_eq!(
            log.note(&news(0, a, HealthEvent::ProbeUp), t + 3100 * MS)
                .len(),
            1
        );
    }

    #[test]
    fn a_pending_summary_comes_before_the_next_line() {
        let mut log = StateLog::default();
        let t = Instant::now();
        let a = "10.0.0.1:80";
        log.note(&news(0, a, HealthEvent::Ejected), t);
        log.note(&news(0, a, HealthEvent::HalfOpened), t + 10 * MS);
        log.note(&news(0, a, HealthEvent::Ejected), t + 20 * MS);
        assert_eq!(
            log.note(&news(0, a, HealthEvent::Readmitted), t + 2500 * MS),
            [
                "upstream web 10.0.0.1:80: 1 more breaker changes suppressed (last: open on shard 0)",
                "upstream web 10.0.0.1:80: breaker closed on shard 0",
            ]
        );
        assert_eq!(log.flush(t, true), Vec::<String>::new());
    }

    #[test]
    fn flush_all_writes_what_is_held_back() {
        let mut log = StateLog::default();
        let t = Instant::now();
        for (i, e) in [
            HealthEvent::Ejected,
            HealthEvent::Readmitted,
            HealthEvent::Ejected,
        ]
        .into_iter()
        .enumerate()
        {
            log.note(&news(0, "a:1", e), t + i as u32 * MS);
        }
        assert_eq!(
            log.flush(t, true),
            ["upstream web a:1: 1 more breaker changes suppressed (last: open on shard 0)"]
        );
    }
}
