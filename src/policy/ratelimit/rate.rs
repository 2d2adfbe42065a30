//! [`Rate`], a sustained request rate as the config spells it (`100/s`, `6000/m`, `36000/h`), and a
//! shard's share of it. Pure data, parsed with the config (main thread at start, coordinator on
//! reload) and divided per shard when a shard thread builds its routing table.

use std::str::FromStr;

/// A sustained request rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
}

const RATE_FORMS: &str =
    "expected a positive rate as N/s, N/m or N/h, like \"100/s\", \"6000/m\" or \"36000/h\"";

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let bad = || format!("invalid rate {s:?}: {RATE_FORMS}");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        let n: f64 = n.trim().parse().map_err(|_| bad())?;
        if !(n.is_finite() && n > 0.0) {
            return Err(bad());
        }
        Ok(Rate {
            per_second: n / seconds,
        })
    }
}

impl Rate {
    /// This shard's share when every shard limits on its own.
    pub fn per_shard(self, shards: usize) -> Rate {
        Rate {
            per_second: self.per_second / shards.max(1) as f64,
        }
    }
}
