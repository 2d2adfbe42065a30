//! The certificate expiry gauge, `shardgate_tls_certificate_expiry_timestamp_seconds{listener,
//! name}`: one sample per certificate of every TLS listener the running config serves (notAfter as
//! unix seconds), so an alert can fire before one expires. Its values come from the config the
//! coordinator holds (`Material::expiries`), not from shard snapshots; written after the shard
//! families at a scrape, and only when some listener serves TLS. Coordinator thread.

use std::time::{SystemTime, UNIX_EPOCH};

use super::render::Exposition;

/// One certificate as the gauge shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// The listener's address as configured.
    pub listener: String,
    /// The certificate's first SAN DNS name (its file when it has none).
    pub name: String,
    pub not_after: SystemTime,
}

const NAME: &str = "shardgate_tls_certificate_expiry_timestamp_seconds";
const HELP: &str = "When each TLS listener certificate expires (notAfter), as unix seconds.";

/// Appends the gauge for `certs` to `out` (nothing when there is none).
pub fn render_certificates(certs: &[CertificateExpiry], out: &mut String) {
    if certs.is_empty() {
        return;
    }
    let mut w = Exposition(out);
    w.family(NAME, "gauge", HELP);
    for c in certs {
        // A notAfter before 1970 is as expired as can be: written as 0.
        let secs = c
            .not_after
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let labels = [("listener", c.listener.as_str()), ("name", c.name.as_str())];
        w.sample(NAME, &labels, None, secs);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_sample_per_certificate_in_unix_seconds() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        let certs = [
            CertificateExpiry {
                listener: "127.0.0.1:443".into(),
                name: "a.test".into(),
                not_after: at(1_900_000_000),
            },
            CertificateExpiry {
                listener: "127.0.0.1:443".into(),
                name: "*.b.test".into(),
                not_after: at(1_800_000_123),
            },
        ];
        let mut out = String::new();
        render_certificates(&certs, &mut out);
        assert_eq!(
            out,
            format!(
                "# HELP {NAME} {HELP}\n# TYPE {NAME} gauge\n\
                 {NAME}{{listener=\"127.0.0.1:443\",name=\"a.test\"}} 1900000000\n\
                 {NAME}{{listener=\"127.0.0.1:443\",name=\"*.b.test\"}} 1800000123\n"
            )
        );
    }

    #[test]
    fn nothing_without_a_tls_listener() {
        let mut out = String::new();
        render_certificates(&[], &mut out);
        assert!(out.is_empty());
    }
}
