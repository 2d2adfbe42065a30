//! The "deny until T" table a shard holds for `scope = "global"` limits: per (route, client key),
//! the instant before which the fleet-wide allowance is spent and requests get 429 with
//! `Retry-After`. Replaced whole by each broadcast from the limits thread; read per request on
//! the shard thread (one hash lookup, no allocation).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::CountKey;

/// Keys over their global allowance, until when.
#[derive(Debug, Default)]
pub struct DenyUntil {
    until: HashMap<CountKey, Instant>,
}

impl DenyUntil {
    /// Takes a new table from the limits thread; entries already past are dropped.
    pub fn replace(
        &mut self,
        entries: impl IntoIterator<Item = (CountKey, Instant)>,
        now: Instant,
    ) {
        self.until.clear();
        self.until
            .extend(entries.into_iter().filter(|(_, t)| *t > now));
    }

    /// How long `key` of `route` stays denied (the `Retry-After`), or `None` if it may pass.
    pub fn retry_after(&self, route: u32, key: u128, now: Instant) -> Option<Duration> {
        let t = *self.until.get(&(route, key))?;
        (t > now).then(|| t - now)
    }

    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_until_the_instant_per_route_and_key_and_is_replaced_whole() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut d = DenyUntil::default();
        d.replace(
            [((0, 7), now + s), ((1, 8), now + 2 * s), ((0, 9), now)],
            now,
        );
        assert_eq!(d.len(), 2, "an entry already past is dropped");
        assert_eq!(d.retry_after(0, 7, now), Some(s));
        assert_eq!(d.retry_after(1, 7, now), None, "another route");
        assert_eq!(d.retry_after(0, 7, now + s), None, "until, not after");
        assert_eq!(d.retry_after(1, 8, now + s), Some(s));
        d.replace([((1, 8), now + s)], now);
        assert_eq!(d.retry_after(0, 7, now), None, "replaced whole");
        assert_eq!(d.retry_after(1, 8, now), Some(s));
        d.replace([], now);
        assert!(d.is_empty());
    }
}
