//! Human-written durations (`3s`, `250ms`, `2m`, `1h`) for flags and the config file. Pure; any thread.

use std::time::Duration;

/// Parses `250ms`, `3s`, `2m`, `1h` (a whole number and a unit; `0` alone means zero).
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {text:?}: expected a number and a unit, like 3s or 250ms")
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unit must be ms, s, m or h (like 3s or 250ms)"
            ))
        }
    };
    if d > MAX {
        return Err(format!("duration {text:?} is too long (at most 7 days)"));
    }
    Ok(d)
}

/// The longest duration accepted: far beyond any sensible timeout, and `Instant + MAX` never
/// overflows on the request path.
pub const MAX: Duration = Duration::from_secs(7 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_long_is_rejected() {
        assert!(parse("168h").is_ok());
        assert!(parse("169h").unwrap_err().contains("too long"));
        assert!(parse("99999999999999999h").is_err());
    }

    #[test]
    fn units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects() {
        for bad in ["", "s", "3", "3x", "-1s", "1.5s", "3 s"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
