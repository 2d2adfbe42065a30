//! Prometheus text exposition (format 0.0.4) of merged shard snapshots, for the coordinator's
//! `GET /metrics` (`Content-Type: text/plain; version=0.0.4`). Runs on the coordinator thread.
//!
//! The encoder is written by hand rather than with `prometheus-client`: that crate encodes only
//! OpenMetrics 1.0 text (`# EOF`, a forced `_total` and its own content type), has no summary type,
//! and is built around live atomic metrics in a registry. Here every scrape starts from owned,
//! already-merged snapshots, so a collector would rebuild its metric objects per scrape only to
//! hand back the same numbers; writing the handful of line shapes directly is shorter and exact.
//!
//! What is published is the table in `families.rs`; `emit` writes every row for every subject.
//!
//! Histogram buckets come from the merged hdrhistogram: each recorded value is counted at the
//! upper edge of its hdr bucket (within 0.1% of the true value), and `_sum` is the histogram's
//! mean times its count, so it is exact to the same 0.1%.

use std::fmt::{self, Display, Write};

use hdrhistogram::Histogram;

use super::families::{endpoint_families, route_families, shard_families, Family, Value};
use super::listener_tls::tls_families;
use super::Snapshot;

/// Prometheus bucket upper bounds: microseconds and the `le` label they are written as.
const BUCKETS: [(u64, &str); 14] = [
    (500, "0.0005"),
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1"),
    (2_500_000, "2.5"),
    (5_000_000, "5"),
    (10_000_000, "10"),
];

const QUANTILES: [(f64, &str); 4] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999")];

/// Writes the merged view of `shards` (one snapshot per shard, or already merged) into `out`.
pub fn render(shards: &[Snapshot], out: &mut String) {
    let all = Snapshot::merged(shards);
    let mut w = Exposition(out);

    let routes: Vec<_> = all
        .routes
        .iter()
        .map(|(n, c)| (vec![("route", n.as_str())], c))
        .collect();
    emit(&mut w, &route_families(), &routes);

    let endpoints: Vec<_> = (all.endpoints.iter())
        .map(|((cl, ep), c)| (vec![("cluster", cl.as_str()), ("endpoint", ep.as_str())], c))
        .collect();
    emit(&mut w, &endpoint_families(), &endpoints);

    let ids: Vec<String> = all.shards.iter().map(|s| s.id.to_string()).collect();
    let cores: Vec<String> = (all.shards.iter())
        .map(|s| s.core.map_or_else(|| "none".to_string(), |c| c.to_string()))
        .collect();
    let info = "One per shard: the core it is pinned to (or none) and its I/O driver.";
    w.family("shardgate_shard_info", "gauge", info);
    for ((s, id), core) in all.shards.iter().zip(&ids).zip(&cores) {
        let labels = [("shard", id.as_str()), ("core", core), ("driver", s.driver)];
        w.sample("shardgate_shard_info", &labels, None, 1);
    }
    let shards: Vec<_> = ids
        .iter()
        .zip(&all.shards)
        .map(|(id, s)| (vec![("shard", id.as_str())], s))
        .collect();
    emit(&mut w, &shard_families(), &shards);

    // TLS listeners, each per shard: a listener shows on every shard that serves it.
    let listeners: Vec<_> = (ids.iter().zip(&all.shards))
        .flat_map(|(id, s)| {
            (s.tls_listeners.iter())
                .map(move |(l, c)| (vec![("shard", id.as_str()), ("listener", l.as_str())], c))
        })
        .collect();
    emit(&mut w, &tls_families(), &listeners);
}

/// Every family in turn, each with one sample (or series) per subject.
fn emit<T>(w: &mut Exposition, families: &[Family<T>], subjects: &[(Vec<(&str, &str)>, &T)]) {
    for f in families {
        w.family(f.name, f.kind, f.help);
        for (labels, subject) in subjects {
            match f.value {
                Value::Int(get) => w.sample(f.name, labels, None, get(subject)),
                Value::Float(get) => w.sample(f.name, labels, None, Float(get(subject))),
                Value::Split(label, values, get) => {
                    for (i, v) in values.iter().enumerate() {
                        w.sample(f.name, labels, Some((label, v)), get(subject, i));
                    }
                }
                Value::Sparse(label, values, get) => {
                    for (i, v) in values.iter().enumerate() {
                        let n = get(subject, i);
                        if n > 0 {
                            w.sample(f.name, labels, Some((label, v)), n);
                        }
                    }
                }
                Value::Histogram(get) => w.histogram(f.name, labels, get(subject)),
                Value::Histograms(label, values, get) => {
                    for (i, v) in values.iter().enumerate() {
                        let mut with = labels.clone();
                        with.push((label, v));
                        w.histogram(f.name, &with, get(subject, i));
                    }
                }
                Value::Quantiles(get) => w.quantiles(f.name, labels, get(subject)),
            }
        }
    }
}

// === impl Exposition ===

pub(super) struct Exposition<'a>(pub(super) &'a mut String);

/// A sample value that is not an integer.
struct Float(f64);

impl Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            write!(f, "{v}")
        }
    }
}

impl Exposition<'_> {
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One `name{labels,extra} value` line; label values escaped (backslash, quote, newline).
    pub(super) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        extra: Option<(&str, &str)>,
        value: impl Display,
    ) {
        self.0.push_str(name);
        for (i, (label, v)) in labels.iter().chain(extra.as_ref()).enumerate() {
            self.0.push_str(if i == 0 { "{" } else { "," });
            self.0.push_str(label);
            self.0.push_str("=\"");
            for ch in v.chars() {
                match ch {
                    '\\' => self.0.push_str("\\\\"),
                    '"' => self.0.push_str("\\\""),
                    '\n' => self.0.push_str("\\n"),
                    c => self.0.push(c),
                }
            }
            self.0.push('"');
        }
        if !labels.is_empty() || extra.is_some() {
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// Cumulative `_bucket` lines ending with `+Inf` (= count), then `_sum` and `_count`.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram<u64>) {
        let mut per_bucket = [0u64; BUCKETS.len()];
        for v in h.iter_recorded() {
            if let Some(i) = BUCKETS
                .iter()
                .position(|(us, _)| v.value_iterated_to() <= *us)
            {
                per_bucket[i] += v.count_since_last_iteration();
            }
        }
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for ((_, le), n) in BUCKETS.iter().zip(per_bucket) {
            cumulative += n;
            self.sample(&bucket, labels, Some(("le", le)), cumulative);
        }
        self.sample(&bucket, labels, Some(("le", "+Inf")), h.len());
        let sum = h.mean() * h.len() as f64 / 1e6;
        self.sample(&format!("{name}_sum"), labels, None, Float(sum));
        self.sample(&format!("{name}_count"), labels, None, h.len());
    }

    fn quantiles(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram<u64>) {
        for (q, label) in QUANTILES {
            let v = match h.is_empty() {
                true => f64::NAN,
                false => h.value_at_quantile(q) as f64 / 1e6,
            };
            self.sample(name, labels, Some(("quantile", label)), Float(v));
        }
    }
}

#[cfg(test)]
mod tests;
