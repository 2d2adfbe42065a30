//! One access-log line: a JSON object and a newline, appended to a shard's buffer on the shard's
//! thread. Writes through `io::Write for Vec<u8>` into capacity the buffer already has, so a line
//! costs no allocation; the formatted timestamp's second is cached per shard (`Clock`).
//!
//! Request bytes are hostile: every byte string is escaped so a line stays one valid JSON object
//! (quote, backslash and control characters escaped; each invalid UTF-8 sequence becomes U+FFFD).

use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use super::Entry;

/// `YYYY-MM-DDTHH:MM:SS` of the second last formatted, per shard.
#[derive(Debug, Default)]
pub(super) struct Clock {
    second: Cell<Option<u64>>,
    text: Cell<[u8; 19]>,
}

impl Clock {
    /// `YYYY-MM-DDTHH:MM:SS` for a Unix second, formatted again only when the second changes.
    fn text(&self, secs: u64) -> [u8; 19] {
        if self.second.get() != Some(secs) {
            self.text.set(format_second(secs));
            self.second.set(Some(secs));
        }
        self.text.get()
    }
}

/// An upper bound on the bytes `write` appends for `e` (escaping is at most 6 bytes per byte).
pub(super) fn max_len(e: &Entry<'_>) -> usize {
    let text = e.method.len() + e.path.len() + e.request_id.len() + e.route.len();
    let tls = e.tls.map_or(0, |t| {
        t.sni.as_ref().map_or(0, |s| s.len())
            + t.client_cert.as_ref().map_or(0, |c| c.subject.len())
            + 64
    });
    512 + 6 * (text + tls + e.trace_id.map_or(0, <[u8]>::len))
}

/// Appends one JSON line for `e`.
pub(super) fn write(buf: &mut Vec<u8>, e: &Entry<'_>, clock: &Clock) {
    let since = e.time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    buf.extend_from_slice(b"{\"time\":\"");
    buf.extend_from_slice(&clock.text(since.as_secs()));
    let _ = write!(
        buf,
        ".{:03}Z\",\"client\":\"{}\",\"method\":",
        since.subsec_millis(),
        e.client
    );
    string(buf, e.method);
    buf.extend_from_slice(b",\"path\":");
    string(buf, e.path);
    buf.extend_from_slice(b",\"protocol\":\"");
    buf.extend_from_slice(e.protocol.as_bytes());
    buf.push(b'"');
    let _ = write!(
        buf,
        ",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"upstream\":",
        e.status, e.bytes_in, e.bytes_out
    );
    match e.upstream {
        Some(addr) => drop(write!(buf, "\"{addr}\"")),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"upstream_ms\":");
    match e.upstream_time {
        Some(d) => millis(buf, d),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"total_ms\":");
    millis(buf, e.total_time);
    buf.extend_from_slice(b",\"request_id\":");
    string(buf, e.request_id);
    buf.extend_from_slice(b",\"trace_id\":");
    match e.trace_id {
        Some(t) => string(buf, t),
        None => buf.extend_from_slice(b"null"),
    }
    let _ = write!(buf, ",\"shard\":{},\"route\":", e.shard);
    string(buf, e.route.as_bytes());
    match e.tls {
        None => buf.extend_from_slice(
            b",\"tls_version\":null,\"tls_cipher\":null,\"sni\":null,\"client_cert\":null",
        ),
        Some(t) => {
            buf.extend_from_slice(b",\"tls_version\":");
            string(buf, t.version.as_bytes());
            buf.extend_from_slice(b",\"tls_cipher\":");
            string(buf, t.cipher.as_bytes());
            buf.extend_from_slice(b",\"sni\":");
            match &t.sni {
                Some(s) => string(buf, s.as_bytes()),
                None => buf.extend_from_slice(b"null"),
            }
            buf.extend_from_slice(b",\"client_cert\":");
            match &t.client_cert {
                Some(c) => string(buf, c.subject.as_bytes()),
                None => buf.extend_from_slice(b"null"),
            }
        }
    }
    buf.extend_from_slice(b"}\n");
}

/// Milliseconds with microsecond precision, as a JSON number.
fn millis(buf: &mut Vec<u8>, d: Duration) {
    let us = d.as_micros();
    let _ = write!(buf, "{}.{:03}", us / 1000, us % 1000);
}

/// A JSON string of arbitrary bytes.
fn string(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                b'"' => buf.extend_from_slice(b"\\\""),
                b'\\' => buf.extend_from_slice(b"\\\\"),
                b'\n' => buf.extend_from_slice(b"\\n"),
                b'\r' => buf.extend_from_slice(b"\\r"),
                b'\t' => buf.extend_from_slice(b"\\t"),
                0..=0x1f | 0x7f => {
                    buf.extend_from_slice(b"\\u00");
                    buf.push(HEX[usize::from(b >> 4)]);
                    buf.push(HEX[usize::from(b & 0xf)]);
                }
                _ => buf.push(b),
            }
        }
        if !chunk.invalid().is_empty() {
            buf.extend_from_slice(b"\\ufffd");
        }
    }
    buf.push(b'"');
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix second.
fn format_second(secs: u64) -> [u8; 19] {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_date(days);
    let mut out = [0u8; 19];
    let mut w = &mut out[..];
    let _ = write!(
        w,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    out
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01: shift to
/// 0000-03-01 so leap days end each 400-year era's years, then split era, year, day of year.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..=146_096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(secs: u64) -> String {
        String::from_utf8(format_second(secs).to_vec()).unwrap()
    }

    #[test]
    fn seconds_format_as_rfc3339() {
        assert_eq!(text(0), "1970-01-01T00:00:00");
        assert_eq!(text(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(text(951_868_799), "2000-02-29T23:59:59");
        assert_eq!(text(951_955_199), "2000-03-01T23:59:59");
        assert_eq!(text(1_700_000_000), "2023-11-14T22:13:20");
        assert_eq!(text(4_107_542_399), "2100-02-28T23:59:59");
        assert_eq!(text(4_107_542_400), "2100-03-01T00:00:00");
        assert_eq!(text(253_402_300_799), "9999-12-31T23:59:59");
    }

    #[test]
    fn clock_reformats_only_on_a_new_second() {
        let c = Clock::default();
        assert_eq!(&c.text(0), b"1970-01-01T00:00:00");
        assert_eq!(&c.text(0), b"1970-01-01T00:00:00");
        assert_eq!(&c.text(61), b"1970-01-01T00:01:01");
    }

    #[test]
    fn strings_escape_every_hostile_byte() {
        let cases: [(&[u8], &str); 6] = [
            (b"/plain", r#""/plain""#),
            (b"/q\"b\\", r#""/q\"b\\""#),
            (b"\n\r\t\x00\x1b\x7f", r#""\n\r\t\u0000\u001b\u007f""#),
            (b"/caf\xc3\xa9", "\"/caf\u{e9}\""),
            (b"/\xff\xfe/x", r#""/\ufffd\ufffd/x""#),
            (b"/\xe2\x82", r#""/\ufffd""#),
        ];
        for (input, want) in cases {
            let mut buf = Vec::new();
            string(&mut buf, input);
            assert_eq!(String::from_utf8(buf).unwrap(), want, "{input:?}");
        }
    }

    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        let mut buf = Vec::new();
        millis(&mut buf, Duration::from_micros(1_234_567));
        buf.push(b' ');
        millis(&mut buf, Duration::from_nanos(999));
        assert_eq!(buf, b"1234.567 0.000");
    }
}
