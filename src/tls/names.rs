//! What a certificate says about itself that the proxy needs: its DNS names (from the SAN
//! extension, lower-case, `*.example.com` wildcards kept as written) and its notAfter. Parsed
//! with x509-parser when the material is loaded; matching a name against a SNI lives here too.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;

use super::TlsError;

/// The names and expiry of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// DNS names from the SANs, lower-case, in the certificate's order.
    pub names: Vec<String>,
    pub not_after: SystemTime,
    /// notAfter as the certificate writes it, for messages.
    pub not_after_text: String,
}

/// Reads the names and expiry of the DER certificate `der`, from file `path` (for errors).
pub fn facts(path: &Path, der: &[u8]) -> Result<Facts, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::file(path, format!("not an X.509 certificate: {e}")))?;
    let mut names = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::file(path, format!("unreadable subjectAltName: {e}")))?;
    for n in san.iter().flat_map(|s| s.value.general_names.iter()) {
        if let GeneralName::DNSName(d) = n {
            let d = d.to_ascii_lowercase();
            if !names.contains(&d) {
                names.push(d);
            }
        }
    }
    let not_after = cert.validity().not_after;
    let secs = not_after.timestamp();
    let not_after_time = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    };
    Ok(Facts {
        names,
        not_after: not_after_time,
        not_after_text: not_after.to_string(),
    })
}

/// Whether certificate name `pattern` (lower-case; `*.suffix` for a wildcard) covers server
/// name `sni`: exact, ignoring ASCII case, or one label in place of the `*` (`*.example.com`
/// covers `a.example.com`, not `a.b.example.com` nor `example.com`).
pub fn name_matches(pattern: &str, sni: &str) -> bool {
    match pattern.strip_prefix("*.") {
        None => pattern.eq_ignore_ascii_case(sni),
        Some(suffix) => sni
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
    }
}
