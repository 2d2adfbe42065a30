//! Unit tests of `balance` (table-driven, no runtime).
use std::time::Duration;

use super::algorithm::CHOICES;
use super::*;

/// Endpoints as a test sees them: usable flags, in-flight counts, costs.
struct Eps {
    up: Vec<bool>,
    in_flight: Vec<u32>,
    cost: Vec<f64>,
}

impl Eps {
    fn up(n: usize) -> Eps {
        Eps {
            up: vec![true; n],
            in_flight: vec![0; n],
            cost: vec![1.0; n],
        }
    }
}

impl Candidates for Eps {
    fn len(&self) -> usize {
        self.up.len()
    }
    fn usable(&self, i: usize) -> bool {
        self.up[i]
    }
    fn in_flight(&self, i: usize) -> u32 {
        self.in_flight[i]
    }
    fn ewma_cost(&self, i: usize, _: Instant) -> f64 {
        self.cost[i]
    }
}

fn picks(b: &Balancer, c: &Eps, k: usize) -> Vec<usize> {
    let now = Instant::now();
    (0..k).map(|_| b.pick(c, None, now).unwrap()).collect()
}

fn ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:80", i / 256, i % 256))
        .collect()
}

fn balancer(alg: Algorithm, n: usize, weights: &[u32]) -> Balancer {
    let ids = ids(n);
    let ids: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    Balancer::new(&alg, &ids, weights, 7)
}

#[test]
fn rotates_and_skips_unusable() {
    let rr = RoundRobin::default();
    let picks: Vec<_> = (0..4).map(|_| rr.pick(3, |_| true).unwrap()).collect();
    assert_eq!(picks, [0, 1, 2, 0]);
    assert_eq!(rr.pick(3, |i| i != 1), Some(2));
    assert_eq!(rr.pick(3, |_| false), None);
    assert_eq!(rr.pick(0, |_| true), None);
}

#[test]
fn algorithm_names_round_trip() {
    let cases = [
        ("round-robin", Algorithm::RoundRobin),
        ("weighted", Algorithm::Weighted),
        ("least-request", Algorithm::LeastRequest),
        ("ewma", Algorithm::PeakEwma),
        ("random", Algorithm::Random),
        ("hash:client-ip", Algorithm::Hash(HashOn::ClientIp)),
        (
            "hash:header:x-user",
            Algorithm::Hash(HashOn::Header("x-user".into())),
        ),
        (
            "hash:cookie:Sess",
            Algorithm::Hash(HashOn::Cookie("Sess".into())),
        ),
    ];
    for (text, alg) in cases {
        assert_eq!(text.parse::<Algorithm>().as_ref(), Ok(&alg), "{text}");
        assert_eq!(alg.name(), text);
    }
    let upper: Algorithm = "hash:header:X-User".parse().unwrap();
    assert_eq!(upper, Algorithm::Hash(HashOn::Header("x-user".into())));
}

#[test]
fn algorithm_errors_list_the_choices() {
    for bad in [
        "",
        "rr",
        "hash",
        "hash:header:",
        "hash:cookie:a b",
        "hash:ip",
    ] {
        let err = bad.parse::<Algorithm>().unwrap_err();
        assert!(err.contains(CHOICES), "{bad:?}: {err}");
    }
}

#[test]
fn round_robin_balancer_rotates_over_usable() {
    let b = balancer(Algorithm::RoundRobin, 3, &[]);
    let mut c = Eps::up(3);
    assert_eq!(picks(&b, &c, 4), [0, 1, 2, 0]);
    c.up[2] = false;
    assert_eq!(picks(&b, &c, 3), [1, 0, 1]);
}

#[test]
fn weighted_is_nginx_smooth() {
    let b = balancer(Algorithm::Weighted, 3, &[5, 1, 1]);
    let c = Eps::up(3);
    assert_eq!(
        picks(&b, &c, 14),
        [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]
    );
}

#[test]
fn weighted_skips_unusable_and_keeps_ratio() {
    let b = balancer(Algorithm::Weighted, 3, &[3, 0, 1]);
    let mut c = Eps::up(3);
    c.up[0] = false;
    let got = picks(&b, &c, 4);
    assert_eq!(got.iter().filter(|&&i| i == 1).count(), 2, "{got:?}");
    assert!(!got.contains(&0));
    c.up = vec![false; 3];
    assert_eq!(b.pick(&c, None, Instant::now()), None);
}

#[test]
fn least_request_prefers_fewer_in_flight() {
    let b = balancer(Algorithm::LeastRequest, 2, &[]);
    let mut c = Eps::up(2);
    c.in_flight = vec![9, 1];
    assert!(picks(&b, &c, 50).iter().all(|&i| i == 1));
    // Over many endpoints the busiest is never picked: it loses every comparison.
    let b = balancer(Algorithm::LeastRequest, 5, &[]);
    let mut c = Eps::up(5);
    c.in_flight = vec![0, 0, 100, 0, 0];
    assert!(!picks(&b, &c, 500).contains(&2));
}

#[test]
fn ewma_prefers_lower_cost() {
    let b = balancer(Algorithm::PeakEwma, 2, &[]);
    let mut c = Eps::up(2);
    c.cost = vec![0.5, 7.0];
    assert!(picks(&b, &c, 50).iter().all(|&i| i == 0));
}

#[test]
fn random_choices_find_a_lone_usable_endpoint() {
    for alg in [
        Algorithm::Random,
        Algorithm::LeastRequest,
        Algorithm::PeakEwma,
    ] {
        let b = balancer(alg.clone(), 1000, &[]);
        let mut c = Eps::up(1000);
        c.up = vec![false; 1000];
        assert_eq!(b.pick(&c, None, Instant::now()), None, "{alg:?}");
        c.up[637] = true;
        assert!(picks(&b, &c, 20).iter().all(|&i| i == 637), "{alg:?}");
    }
}

#[test]
fn random_spreads_evenly() {
    let b = balancer(Algorithm::Random, 4, &[]);
    let c = Eps::up(4);
    let mut count = [0; 4];
    for i in picks(&b, &c, 40_000) {
        count[i] += 1;
    }
    assert!(
        count.iter().all(|&k| (9_000..11_000).contains(&k)),
        "{count:?}"
    );
}

fn owners(b: &Balancer, c: &Eps, keys: usize) -> Vec<usize> {
    let now = Instant::now();
    (0..keys)
        .map(|k| b.pick(c, Some(&(k as u64).to_le_bytes()), now).unwrap())
        .collect()
}

#[test]
fn maglev_spreads_keys_evenly_and_by_weight() {
    let b = balancer(Algorithm::Hash(HashOn::ClientIp), 4, &[]);
    let mut count = [0; 4];
    for e in owners(&b, &Eps::up(4), 40_000) {
        count[e] += 1;
    }
    assert!(
        count.iter().all(|&k| (9_000..11_000).contains(&k)),
        "{count:?}"
    );
    let b = balancer(Algorithm::Hash(HashOn::ClientIp), 2, &[3, 1]);
    let heavy = owners(&b, &Eps::up(2), 40_000)
        .iter()
        .filter(|&&e| e == 0)
        .count();
    assert!((29_000..31_000).contains(&heavy), "{heavy}");
}

#[test]
fn maglev_removing_an_endpoint_remaps_about_its_share() {
    let all = ids(10);
    let before_ids: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
    let after_ids: Vec<&str> = before_ids
        .iter()
        .copied()
        .filter(|&s| s != all[3])
        .collect();
    let alg = Algorithm::Hash(HashOn::ClientIp);
    let before = Balancer::new(&alg, &before_ids, &[], 1);
    let after = Balancer::new(&alg, &after_ids, &[], 1);
    let (b, a) = (
        owners(&before, &Eps::up(10), 50_000),
        owners(&after, &Eps::up(9), 50_000),
    );
    let moved = b
        .iter()
        .zip(&a)
        .filter(|(&x, &y)| before_ids[x] != after_ids[y])
        .count();
    let share = moved as f64 / 50_000.0;
    assert!((0.09..0.13).contains(&share), "moved {share}");
}

#[test]
fn maglev_unusable_endpoint_moves_only_its_own_keys() {
    let b = balancer(Algorithm::Hash(HashOn::ClientIp), 5, &[]);
    let mut c = Eps::up(5);
    let before = owners(&b, &c, 20_000);
    c.up[2] = false;
    let after = owners(&b, &c, 20_000);
    let mut spread = [0; 5];
    for (x, y) in before.iter().zip(&after) {
        if *x == 2 {
            spread[*y] += 1;
        } else {
            assert_eq!(x, y, "a key on a usable endpoint moved");
        }
    }
    assert_eq!(spread[2], 0);
    assert!(
        spread.iter().enumerate().all(|(i, &k)| i == 2 || k > 500),
        "{spread:?}"
    );
    c.up = vec![false, false, false, false, true];
    assert!(owners(&b, &c, 1000).iter().all(|&e| e == 4));
    c.up = vec![false; 5];
    assert_eq!(b.pick(&c, Some(b"k"), Instant::now()), None);
}

#[test]
fn hash_without_key_falls_back_to_round_robin() {
    let b = balancer(Algorithm::Hash(HashOn::Header("x".into())), 3, &[]);
    assert_eq!(picks(&b, &Eps::up(3), 4), [0, 1, 2, 0]);
    let empty = Balancer::new(&Algorithm::Hash(HashOn::ClientIp), &[], &[], 0);
    assert_eq!(empty.pick(&Eps::up(0), Some(b"k"), Instant::now()), None);
}

#[test]
fn more_candidates_than_ids_never_panics() {
    let now = Instant::now();
    for alg in [
        "round-robin",
        "weighted",
        "least-request",
        "ewma",
        "random",
        "hash:client-ip",
    ] {
        let b = balancer(alg.parse().unwrap(), 2, &[1, 1]);
        for k in 0..20u8 {
            let i = b.pick(&Eps::up(5), Some(&[k]), now).unwrap();
            assert!(i < 5, "{alg}");
        }
        assert_eq!(b.pick(&Eps::up(0), Some(b"k"), now), None, "{alg}");
    }
}

#[test]
fn peak_ewma_jumps_up_and_decays_down() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let e = PeakEwma::new(ms(100), ms(10));
    assert_eq!(e.cost(t0, 0), 10e6);
    e.observe(ms(50), t0);
    assert_eq!(e.cost(t0, 0), 50e6, "a slower sample is taken at once");
    e.observe(ms(10), t0 + ms(100));
    let want = 50e6 * (-1f64).exp() + 10e6 * (1.0 - (-1f64).exp());
    assert!((e.cost(t0 + ms(100), 0) - want).abs() < 1.0);
    assert!(
        (e.cost(t0 + ms(100), 3) - 4.0 * want).abs() < 4.0,
        "times in_flight + 1"
    );
    let idle = e.cost(t0 + ms(300), 0);
    assert!(
        (idle - want * (-2f64).exp()).abs() < 1.0,
        "decays while idle: {idle}"
    );
    e.observe(ms(1), t0); // an older instant must not break anything
    assert!(e.cost(t0, 0).is_finite());
}
