//! Endpoint selection for one cluster, kept apart from health: a [`Balancer`] picks among the
//! endpoints its caller says are usable ([`Candidates`]: health and breaker decide that, the
//! algorithm never does). Runs on a shard thread: cursors, weights, the PRNG and each endpoint's
//! [`PeakEwma`] are plain `Cell`s owned by that shard; a pick never allocates, never reads the clock
//! (time is passed in) and never panics.

use std::cell::Cell;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::hash::{fold_mul, hash_bytes};

// === Algorithm ===

/// What a hash balancer hashes so that one client keeps landing on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// The client's IP address octets; pass those of `IpAddr::to_canonical()` so that a v4
    /// client hashes alike whether it arrived over IPv4 or as a v4-mapped IPv6 address.
    ClientIp,
    /// The value of this request header; the name is kept in lower case.
    Header(String),
    /// The value of this cookie; cookie names are case-sensitive and kept as written.
    Cookie(String),
}

/// A balancing algorithm as named in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    /// Smooth weighted round-robin, as nginx does it.
    Weighted,
    /// Power of two random choices over requests in flight on this shard.
    LeastRequest,
    /// Power of two random choices over [`PeakEwma`] cost.
    PeakEwma,
    Random,
    /// Maglev consistent hashing of a per-request key.
    Hash(HashOn),
}

const CHOICES: &str = "round-robin, weighted, least-request, ewma, random, hash:client-ip, \
                       hash:header:NAME, hash:cookie:NAME";

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "round-robin" => Algorithm::RoundRobin,
            "weighted" => Algorithm::Weighted,
            "least-request" => Algorithm::LeastRequest,
            "ewma" => Algorithm::PeakEwma,
            "random" => Algorithm::Random,
            "hash:client-ip" => Algorithm::Hash(HashOn::ClientIp),
            _ => {
                if let Some(name) = s.strip_prefix("hash:header:") {
                    Algorithm::Hash(HashOn::Header(token(name, "header")?.to_ascii_lowercase()))
                } else if let Some(name) = s.strip_prefix("hash:cookie:") {
                    Algorithm::Hash(HashOn::Cookie(token(name, "cookie")?.to_string()))
                } else {
                    return Err(format!(
                        "unknown balancing algorithm {s:?}; expected one of: {CHOICES}"
                    ));
                }
            }
        })
    }
}

/// `name` when it is a valid HTTP token (RFC 9110 `tchar`), which header and cookie names are.
fn token<'a>(name: &'a str, what: &str) -> Result<&'a str, String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!(
            "invalid {what} name {name:?} (a non-empty HTTP token); expected one of: {CHOICES}"
        ));
    }
    Ok(name)
}

impl Algorithm {
    /// The config-file spelling; `name().parse()` gives back an equal algorithm.
    pub fn name(&self) -> String {
        match self {
            Algorithm::RoundRobin => "round-robin".into(),
            Algorithm::Weighted => "weighted".into(),
            Algorithm::LeastRequest => "least-request".into(),
            Algorithm::PeakEwma => "ewma".into(),
            Algorithm::Random => "random".into(),
            Algorithm::Hash(HashOn::ClientIp) => "hash:client-ip".into(),
            Algorithm::Hash(HashOn::Header(n)) => format!("hash:header:{n}"),
            Algorithm::Hash(HashOn::Cookie(n)) => format!("hash:cookie:{n}"),
        }
    }
}

// === Candidates ===

/// The caller's view of one cluster's endpoints on this shard, indexed `0..len()` in the same
/// order as the `ids` given to [`Balancer::new`].
pub trait Candidates {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Health and breaker both allow a request to endpoint `i` now.
    fn usable(&self, i: usize) -> bool;
    /// Requests outstanding to endpoint `i` from this shard.
    fn in_flight(&self, i: usize) -> u32;
    /// Load of endpoint `i` for [`Algorithm::PeakEwma`], usually [`PeakEwma::cost`]; only that
    /// algorithm calls it.
    fn ewma_cost(&self, i: usize, now: Instant) -> f64;
}

// === Balancer ===

/// One cluster's endpoint picker on one shard.
#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    /// Round-robin cursor, also the fallback of a hash balancer given no key.
    rr: RoundRobin,
    /// wyrand state for `Random` and the two random choices of `LeastRequest` / `PeakEwma`.
    rng: Cell<u64>,
}

#[derive(Debug)]
enum Policy {
    RoundRobin,
    LeastRequest,
    PeakEwma,
    Random,
    /// nginx's smooth weighted round-robin: `weights` fixed, `current` the running scores.
    Weighted {
        weights: Box<[i64]>,
        current: Box<[Cell<i64>]>,
    },
    Hash(Maglev),
}

impl Balancer {
    /// ids: stable endpoint identities ("10.0.0.1:80") used by consistent hashing; weights >= 1
    /// (0 counts as 1, a missing weight as 1). `seed` seeds the shard's PRNG; give each shard its
    /// own so that shards do not pick in lock-step.
    pub fn new(alg: &Algorithm, ids: &[&str], weights: &[u32], seed: u64) -> Balancer {
        let weight = |i: usize| weights.get(i).copied().unwrap_or(1).max(1);
        let policy = match alg {
            Algorithm::RoundRobin => Policy::RoundRobin,
            Algorithm::LeastRequest => Policy::LeastRequest,
            Algorithm::PeakEwma => Policy::PeakEwma,
            Algorithm::Random => Policy::Random,
            Algorithm::Weighted => Policy::Weighted {
                weights: (0..ids.len()).map(|i| i64::from(weight(i))).collect(),
                current: (0..ids.len()).map(|_| Cell::new(0)).collect(),
            },
            Algorithm::Hash(_) => {
                let w: Vec<u32> = (0..ids.len()).map(weight).collect();
                Policy::Hash(Maglev::new(ids, &w))
            }
        };
        Balancer {
            policy,
            rr: RoundRobin::default(),
            rng: Cell::new(seed),
        }
    }

    /// Chooses only among usable endpoints; None when none is usable. `key` is the hash key
    /// (client IP octets, header or cookie value) for Hash; a Hash balancer given None falls
    /// back to round-robin. Weighted and Hash never pick an index beyond the `ids` given to
    /// [`Balancer::new`].
    pub fn pick<C: Candidates>(&self, c: &C, key: Option<&[u8]>, now: Instant) -> Option<usize> {
        match &self.policy {
            Policy::RoundRobin => self.rr.pick(c.len(), |i| c.usable(i)),
            Policy::LeastRequest => self.two_choices(c, |i| f64::from(c.in_flight(i))),
            Policy::PeakEwma => self.two_choices(c, |i| c.ewma_cost(i, now)),
            Policy::Random => self.draw_usable(c, None),
            Policy::Weighted { weights, current } => smooth_weighted(c, weights, current),
            Policy::Hash(maglev) => match key {
                Some(key) => maglev.pick(c, key),
                None => self.rr.pick(c.len(), |i| c.usable(i)),
            },
        }
    }

    /// Power of two choices: two distinct usable endpoints at random, the cheaper one wins.
    fn two_choices<C: Candidates>(&self, c: &C, cost: impl Fn(usize) -> f64) -> Option<usize> {
        let a = self.draw_usable(c, None)?;
        match self.draw_usable(c, Some(a)) {
            Some(b) if cost(b) < cost(a) => Some(b),
            _ => Some(a),
        }
    }

    /// A usable endpoint other than `except`, uniformly at random: a few random draws, then (when
    /// most endpoints are down) a scan from a random start, so a lone usable one is always found.
    fn draw_usable<C: Candidates>(&self, c: &C, except: Option<usize>) -> Option<usize> {
        let n = c.len();
        let pool = n - usize::from(except.is_some_and(|e| e < n));
        if pool == 0 {
            return None;
        }
        let skip = |i: usize| match except {
            Some(e) if i >= e => i + 1,
            _ => i,
        };
        for _ in 0..3 {
            let i = skip(self.below(pool));
            if c.usable(i) {
                return Some(i);
            }
        }
        let start = self.below(pool);
        (0..pool)
            .map(|k| skip((start + k) % pool))
            .find(|&i| c.usable(i))
    }

    /// Uniform in `0..n` (n > 0) from wyrand, by multiply-high instead of a division.
    fn below(&self, n: usize) -> usize {
        let s = self.rng.get().wrapping_add(0xa076_1d64_78bd_642f);
        self.rng.set(s);
        let r = fold_mul(s, s ^ 0xe703_7ed1_a0b4_28db);
        ((u128::from(r) * n as u128) >> 64) as usize
    }
}

/// nginx's smooth weighted round-robin: every usable endpoint gains its weight, the highest
/// score wins (the first on a tie) and pays back the total of usable weights.
fn smooth_weighted<C: Candidates>(c: &C, weights: &[i64], current: &[Cell<i64>]) -> Option<usize> {
    let mut total = 0i64;
    let mut best: Option<(usize, i64)> = None;
    for (i, (w, cur)) in weights.iter().zip(current).enumerate().take(c.len()) {
        if !c.usable(i) {
            continue;
        }
        let score = cur.get().saturating_add(*w);
        cur.set(score);
        total = total.saturating_add(*w);
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    let (i, score) = best?;
    current[i].set(score.saturating_sub(total));
    Some(i)
}

/// Plain round-robin over endpoint indices.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl RoundRobin {
    /// The next endpoint of `n` that `usable` accepts, or `None` when none does.
    pub fn pick(&self, n: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let start = self.next.get() % n;
        let i = (start..n).chain(0..start).find(|&i| usable(i))?;
        self.next.set(if i + 1 == n { 0 } else { i + 1 });
        Some(i)
    }
}

// === Maglev ===

/// Maglev consistent hashing (Eisenbud et al., NSDI 2016): each endpoint walks its own
/// permutation of a prime-sized table, claiming free slots in turn (`weight` slots per turn), so
/// every endpoint owns a near-equal share and removing one reassigns mostly its own slots.
#[derive(Debug)]
struct Maglev {
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
    fn new(ids: &[&str], weights: &[u32]) -> Maglev {
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
    fn pick<C: Candidates>(&self, c: &C, key: &[u8]) -> Option<usize> {
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

// === PeakEwma ===

/// Linkerd/Finagle peak-EWMA latency of one endpoint on one shard: jumps up to a slower sample at
/// once, decays towards faster ones with time constant `tau`, and while no sample arrives decays
/// towards zero, so an endpoint that was slow once is tried again rather than starved.
#[derive(Debug)]
pub struct PeakEwma {
    /// 1 / tau, in 1/ns.
    per_tau_ns: f64,
    /// Latency estimate in nanoseconds as of `stamp`.
    estimate_ns: Cell<f64>,
    /// When the estimate was last updated; None before the first sample.
    stamp: Cell<Option<Instant>>,
}

impl PeakEwma {
    /// `initial` stands in for the latency until the first sample.
    pub fn new(tau: Duration, initial: Duration) -> Self {
        PeakEwma {
            per_tau_ns: 1.0 / (tau.as_nanos() as f64).max(1.0),
            estimate_ns: Cell::new(initial.as_nanos() as f64),
            stamp: Cell::new(None),
        }
    }

    /// Records one response time.
    pub fn observe(&self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        let prior = self.estimate_ns.get();
        if rtt > prior {
            self.estimate_ns.set(rtt);
        } else {
            let w = self.decay(now);
            self.estimate_ns.set(prior * w + rtt * (1.0 - w));
        }
        if self.stamp.get().is_none_or(|t| now > t) {
            self.stamp.set(Some(now));
        }
    }

    /// The estimate decayed to `now`, in nanoseconds, times `in_flight + 1`.
    pub fn cost(&self, now: Instant, in_flight: u32) -> f64 {
        self.estimate_ns.get() * self.decay(now) * (f64::from(in_flight) + 1.0)
    }

    /// exp(-elapsed / tau) since the last sample: 1 right after it, towards 0 long after.
    fn decay(&self, now: Instant) -> f64 {
        match self.stamp.get() {
            Some(t) if now > t => {
                (-(now.duration_since(t).as_nanos() as f64) * self.per_tau_ns).exp()
            }
            _ => 1.0,
        }
    }
}

#[cfg(test)]
mod tests;
