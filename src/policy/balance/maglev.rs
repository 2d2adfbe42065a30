//! Maglev consistent hashing of a per-request key onto one cluster's endpoints. The table is built
//! when a shard thread builds its routing table (at start and on reload) and read by that shard
//! per request; every shard builds the same table from the same ids, so a key maps alike on all.

use super::Candidates;
use crate::policy::hash::hash_bytes;

/// Maglev consistent hashing (Eisenbud et al., NSDI 2016): each endpoint walks its own
/// permutation of a prime-sized table, claiming free slots in turn (`weight` slots per turn), so
/// every endpoint owns a near-equal share and removing one reassigns mostly its own slots.
#[derive(Debug)]
pub(super) struct Maglev {
    /// Slot → endpoint index; empty when there are no ids.
    table: Box<[u32]>,
}

/// Table sizes: primes, the smallest one at least 100 × the endpoint count is used.
const MAGLEV_SIZES: [usize; 3] = [65_537, 655_373, 6_553_621];
/// Slots probed after the key's own when that endpoint is unusable, before scanning endpoints.
const MAGLEV_PROBES: usize = 32;
/// Fixed seeds: every shard (and every restart) must map a key to the same endpoint.
const SEED_OFFSET: u64 = 0x6d61_676c_6576_3031;
const SEED_SKIP: u64 = 0x6d61_676c_6576_3032;
const SEED_KEY: u64 = 0x6d61_676c_6576_3033;

impl Maglev {
    pub(super) fn new(ids: &[&str], weights: &[u32]) -> Maglev {
        let n = ids.len();
        if n == 0 {
            return Maglev {
                table: Box::new([]),
            };
        }
        let m = MAGLEV_SIZES
            .into_iter()
            .find(|&m| m >= n.saturating_mul(100))
            .unwrap_or(MAGLEV_SIZES[2]);
        let mut pos: Vec<usize> = Vec::with_capacity(n);
        let mut skip: Vec<usize> = Vec::with_capacity(n);
        for id in ids {
            pos.push((hash_bytes(SEED_OFFSET, id.as_bytes()) % m as u64) as usize);
            skip.push((hash_bytes(SEED_SKIP, id.as_bytes()) % (m as u64 - 1)) as usize + 1);
        }
        let mut table = vec![u32::MAX; m];
        let mut filled = 0;
        'fill: loop {
            for i in 0..n {
                for _ in 0..weights[i] {
                    // A permutation of all m slots (m prime, 0 < skip < m): a free one exists.
                    let mut p = pos[i];
                    while table[p] != u32::MAX {
                        p = (p + skip[i]) % m;
                    }
                    table[p] = i as u32;
                    pos[i] = (p + skip[i]) % m;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        Maglev {
            table: table.into(),
        }
    }

    /// The key's endpoint when usable; else the first usable endpoint in the slots after the
    /// key's, so keys of usable endpoints never move and an unusable one's keys spread out.
    pub(super) fn pick<C: Candidates>(&self, c: &C, key: &[u8]) -> Option<usize> {
        let m = self.table.len();
        if m == 0 {
            return None;
        }
        let n = c.len();
        let home = ((u128::from(hash_bytes(SEED_KEY, key)) * m as u128) >> 64) as usize;
        let ok = |e: usize| e < n && c.usable(e);
        for k in 0..MAGLEV_PROBES {
            let e = self.table[(home + k) % m] as usize;
            if ok(e) {
                return Some(e);
            }
        }
        let start = self.table[home] as usize;
        (0..n).map(|k| (start + k) % n).find(|&e| ok(e))
    }
}
