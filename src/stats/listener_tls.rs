//! TLS handshakes per listener: what one shard counts for each TLS listener it serves
//! (`ListenerTlsStats`: handshakes by result, handshake time and resumptions by version), the
//! owned copy a snapshot carries (`ListenerTlsCounts`), and the families `/metrics` writes from
//! it, labelled `{shard, listener}` and `result` or `version`. A listener's counters are
//! registered by its address as the config writes it, at config time (never per handshake), so
//! a reload that keeps the address keeps its counts; one that removes it drops them from
//! `/metrics`. The shard's TLS front-end records into its connection's `Rc` (plain `Cell` adds
//! and a fixed-size hdrhistogram: no allocation, no lock); the coordinator renders.

use std::cell::Cell;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::families::{counter, histograms, Family, Value};
use super::{bump, counts, Hist};
use crate::tls::HandshakeOutcome;

/// The `version` label of a finished handshake, by `HandshakeOutcome::version()`.
pub const VERSIONS: [&str; 2] = ["tls1.3", "tls1.2"];

/// One TLS listener's counters on one shard.
#[derive(Debug, Default)]
pub struct ListenerTlsStats {
    /// Handshakes by how they ended (`HandshakeOutcome::index`).
    pub handshakes: [Cell<u64>; 8],
    /// How long finished handshakes took from the first byte, by version (`VERSIONS`).
    pub duration: [Hist; 2],
    /// Finished handshakes that resumed a session, by version.
    pub resumed: [Cell<u64>; 2],
}

impl ListenerTlsStats {
    /// Counts one handshake by how it ended.
    pub fn count(&self, outcome: HandshakeOutcome) {
        bump(&self.handshakes[outcome.index()]);
    }

    /// Counts one finished handshake: its version, the time it took, and whether it resumed.
    pub fn finished(&self, outcome: HandshakeOutcome, took: Duration, resumed: bool) {
        self.count(outcome);
        if let Some(v) = outcome.version() {
            self.duration[v].record(took);
            if resumed {
                bump(&self.resumed[v]);
            }
        }
    }
}

/// One listener's counters as one shard's snapshot carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerTlsCounts {
    pub handshakes: [u64; 8],
    pub duration: [Histogram<u64>; 2],
    pub resumed: [u64; 2],
}

impl ListenerTlsCounts {
    pub(super) fn of(s: &ListenerTlsStats) -> ListenerTlsCounts {
        ListenerTlsCounts {
            handshakes: counts(&s.handshakes),
            duration: [s.duration[0].copy(), s.duration[1].copy()],
            resumed: counts(&s.resumed),
        }
    }
}

pub(super) fn tls_families() -> Vec<Family<ListenerTlsCounts>> {
    vec![
        counter(
            "shardgate_tls_handshakes_total",
            "TLS handshakes by shard, listener (its address as configured) and result: tls1.3 \
             or tls1.2 when done, else why not (plain_http, timeout, no_shared_cipher, \
             bad_certificate, invalid, failed).",
            Value::Split("result", &HandshakeOutcome::NAMES, |c, i| c.handshakes[i]),
        ),
        histograms(
            "shardgate_tls_handshake_duration_seconds",
            "Time from a TLS connection's first byte to its finished handshake, by shard, \
             listener and version (full and resumed alike; failed handshakes are not timed).",
            "version",
            &VERSIONS,
            |c, i| &c.duration[i],
        ),
        counter(
            "shardgate_tls_handshakes_resumed_total",
            "TLS handshakes that resumed a session, by shard, listener and version (from a \
             ticket whichever shard sealed it, or from the shard's session-id cache).",
            Value::Split("version", &VERSIONS, |c, i| c.resumed[i]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::alloc_probe;
    use super::*;

    #[test]
    fn finished_handshakes_count_by_version_and_failures_by_reason() {
        let s = ListenerTlsStats::default();
        let ms = Duration::from_millis;
        s.finished(HandshakeOutcome::Tls13, ms(2), false);
        s.finished(HandshakeOutcome::Tls13, ms(1), true);
        s.finished(HandshakeOutcome::Tls12, ms(3), true);
        s.count(HandshakeOutcome::PlainHttp);
        let c = ListenerTlsCounts::of(&s);
        assert_eq!(c.handshakes, [2, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!((c.duration[0].len(), c.duration[1].len()), (2, 1));
        assert_eq!(c.resumed, [1, 1]);
    }

    #[test]
    fn recording_does_not_allocate() {
        let s = ListenerTlsStats::default();
        let n = alloc_probe::allocations_in(|| {
            for i in 0..1_000u64 {
                s.finished(
                    HandshakeOutcome::Tls13,
                    Duration::from_micros(i * 31),
                    i % 2 == 0,
                );
                s.count(HandshakeOutcome::Timeout);
            }
        });
        assert_eq!(n, 0);
    }
}
