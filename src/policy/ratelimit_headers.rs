//! The RateLimit header fields of a route's rate limit, as draft-ietf-httpapi-ratelimit-headers-06
//! defines them (the last revision with separate `RateLimit-Limit`, `-Remaining` and `-Reset`
//! fields, the ones clients and this contract already use; -07 and later merge them into one
//! structured `RateLimit` field): `RateLimit-Limit` is the policy's quota, `RateLimit-Policy` names
//! the quota, its window and the burst (`20;w=1;burst=5` for `rate = "20/s", burst = 5`),
//! `RateLimit-Remaining` the requests this client may send right now and `RateLimit-Reset` the
//! seconds until its bucket is full again.
//!
//! The fixed part is rendered once per routing table; per request only two numbers are written,
//! into the connection's reused header buffer (no allocation). Runs on a shard thread.
//!
//! Limits are per shard unless clients are steered (`--steer client-ip`): each shard holds
//! 1/shards of the rate and burst, so `Remaining` and `Reset` are those of the shard's bucket while
//! `Limit` and `Policy` state the process-wide policy.

use std::io::Write;
use std::time::Duration;

use crate::config::RateLimit;

/// The window lengths a quota is expressed over, shortest first: 1 s, 1 min, 1 h.
const WINDOWS: [u32; 3] = [1, 60, 3600];

/// One route's RateLimit fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `RateLimit-Limit: Q\r\nRateLimit-Policy: Q;w=W;burst=B\r\n`.
    fixed: Vec<u8>,
}

impl RateLimitHeaders {
    /// The fields of `limit` whose bucket holds `burst` requests (the configured burst, or one
    /// second's worth of the rate when none is set).
    pub fn new(limit: &RateLimit, burst: u32) -> RateLimitHeaders {
        let (quota, window) = quota_and_window(limit.rate.per_second);
        let mut fixed = Vec::with_capacity(80);
        let _ = write!(
            fixed,
            "RateLimit-Limit: {quota}\r\nRateLimit-Policy: {quota};w={window};burst={burst}\r\n"
        );
        RateLimitHeaders { fixed }
    }

    /// The fields of an allowed request: `remaining` more may pass now, full after `reset`.
    #[inline]
    pub fn allowed(&self, out: &mut Vec<u8>, remaining: u32, reset: Duration) {
        out.extend_from_slice(&self.fixed);
        out.extend_from_slice(b"RateLimit-Remaining: ");
        push_u64(out, u64::from(remaining));
        out.extend_from_slice(b"\r\nRateLimit-Reset: ");
        push_u64(out, ceil_secs(reset));
        out.extend_from_slice(b"\r\n");
    }

    /// The fields of a 429, with `Retry-After`: a token is back after `retry_after`.
    pub fn limited(&self, out: &mut Vec<u8>, retry_after: Duration, reset: Duration) {
        out.extend_from_slice(b"Retry-After: ");
        push_u64(out, ceil_secs(retry_after));
        out.extend_from_slice(b"\r\n");
        self.allowed(out, 0, reset);
    }
}

/// The rate as a whole quota over the shortest of 1 s, 1 min, 1 h that makes it whole
/// (`20/s` → 20 per 1 s, `5/m` → 5 per 60 s; `6000/m` is the same policy as `100/s`). A rate
/// slower than one an hour is one request per its interval.
fn quota_and_window(per_second: f64) -> (u64, u64) {
    for w in WINDOWS {
        let q = per_second * f64::from(w);
        if q >= 1.0 && (q - q.round()).abs() <= 1e-9 * q {
            return (q.round() as u64, u64::from(w));
        }
    }
    let hour = per_second * 3600.0;
    if hour >= 1.0 {
        return ((hour.round() as u64).max(1), 3600);
    }
    (
        1,
        (1.0 / per_second).round().clamp(1.0, u64::MAX as f64) as u64,
    )
}

/// Decimal digits without the formatting machinery (per-request headers).
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Whole seconds, rounded up (the unit of Retry-After and RateLimit-Reset).
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateKey;

    fn headers(rate: &str, burst: u32) -> String {
        let l = RateLimit {
            rate: rate.parse().unwrap(),
            burst,
            key: RateKey::ClientIp,
            global: None,
        };
        let mut out = Vec::new();
        RateLimitHeaders::new(&l, burst).allowed(&mut out, 3, Duration::from_millis(1200));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn limit_is_the_quota_and_policy_names_rate_window_and_burst() {
        let cases = [
            ("20/s", 5, "20", "20;w=1;burst=5"),
            ("5/m", 2, "5", "5;w=60;burst=2"),
            ("90/m", 3, "90", "90;w=60;burst=3"),
            ("6000/m", 100, "100", "100;w=1;burst=100"),
            ("36000/h", 10, "10", "10;w=1;burst=10"),
            ("7/h", 1, "7", "7;w=3600;burst=1"),
            ("0.5/h", 1, "1", "1;w=7200;burst=1"),
            ("2.5/s", 3, "150", "150;w=60;burst=3"),
        ];
        for (rate, burst, limit, policy) in cases {
            let want = format!(
                "RateLimit-Limit: {limit}\r\nRateLimit-Policy: {policy}\r\n\
                 RateLimit-Remaining: 3\r\nRateLimit-Reset: 2\r\n"
            );
            assert_eq!(headers(rate, burst), want, "{rate} burst {burst}");
        }
    }

    #[test]
    fn a_429_adds_retry_after_and_no_remaining() {
        let l = RateLimit {
            rate: "20/s".parse().unwrap(),
            burst: 5,
            key: RateKey::ClientIp,
            global: None,
        };
        let mut out = b"X: 1\r\n".to_vec();
        RateLimitHeaders::new(&l, 5).limited(
            &mut out,
            Duration::from_millis(50),
            Duration::from_millis(250),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X: 1\r\nRetry-After: 1\r\nRateLimit-Limit: 20\r\nRateLimit-Policy: 20;w=1;burst=5\r\n\
             RateLimit-Remaining: 0\r\nRateLimit-Reset: 1\r\n"
        );
    }

    #[test]
    fn digits_and_seconds() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 12345, u64::MAX] {
            out.clear();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
    }
}
