//! Unit tests of `ratelimit`: rates, keys and the bucket table, with time passed in (no runtime).

use std::net::IpAddr;

use super::*;

const MS: Duration = Duration::from_millis(1);

fn limiter(burst: u32, max_keys: usize) -> Limiter {
    Limiter::new(Rate { per_second: 10.0 }, burst, max_keys) // a token every 100 ms
}

#[test]
fn rates_parse() {
    let cases = [
        ("100/s", 100.0),
        ("6000/m", 100.0),
        ("36000/h", 10.0),
        (" 0.5 / s ", 0.5),
    ];
    for (text, want) in cases {
        assert_eq!(
            text.parse::<Rate>(),
            Ok(Rate { per_second: want }),
            "{text}"
        );
    }
    for bad in [
        "", "100", "100/d", "/s", "-1/s", "0/s", "abc/s", "inf/s", "NaN/s", "1/s/s",
    ] {
        let err = bad.parse::<Rate>().unwrap_err();
        assert!(
            err.contains(r#""100/s", "6000/m" or "36000/h""#),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(Rate { per_second: 100.0 }.per_shard(4).per_second, 25.0);
    assert_eq!(Rate { per_second: 100.0 }.per_shard(0).per_second, 100.0);
}

#[test]
fn burst_then_limited_then_refilled() {
    let (l, t) = (limiter(3, 10), Instant::now());
    let allowed = |remaining, reset_ms| Decision::Allowed {
        remaining,
        reset: reset_ms * MS,
    };
    let limited = |retry_ms, reset_ms| Decision::Limited {
        retry_after: retry_ms * MS,
        reset: reset_ms * MS,
    };
    let steps = [
        (0, allowed(2, 100)),
        (0, allowed(1, 200)),
        (0, allowed(0, 300)),
        (0, limited(100, 300)),
        (40, limited(60, 260)),
        (100, allowed(0, 300)), // one token back after 100 ms
        (100, limited(100, 300)),
        (1000, allowed(2, 100)), // full again long after
    ];
    for (at_ms, want) in steps {
        assert_eq!(l.take(7, t + at_ms * MS), want, "at {at_ms} ms");
    }
    assert_eq!(l.limit(), 3);
}

#[test]
fn remaining_tokens_are_exact() {
    for (interval_ns, burst) in [
        (1, 10),
        (3, 1000),
        (7, 100_000),
        (100_000_000, 50),
        (999_999_937, 3),
    ] {
        let l = Limiter::new(
            Rate {
                per_second: 1e9 / interval_ns as f64,
            },
            burst,
            1,
        );
        assert_eq!(l.interval, interval_ns);
        for ns in (0..=l.window)
            .step_by((l.window / 997).max(1) as usize)
            .chain([l.window])
        {
            let want = (ns / interval_ns).min(u64::from(burst)) as u32;
            for ns in [ns, ns.saturating_sub(1), ns + 1] {
                let want = (ns / interval_ns).min(u64::from(burst)) as u32;
                assert_eq!(l.tokens_in(ns), want, "{ns} / {interval_ns}");
            }
            assert_eq!(l.tokens_in(ns), want);
        }
    }
    let l = Limiter::new(Rate { per_second: 1e9 }, u32::MAX, 1);
    assert_eq!(l.tokens_in(u64::MAX), u32::MAX);
}

#[test]
fn keys_have_their_own_buckets() {
    let (l, t) = (limiter(1, 10), Instant::now());
    assert!(l.take(1, t).allowed());
    assert!(!l.take(1, t).allowed());
    assert!(l.take(2, t).allowed());
    assert_eq!(l.len(), 2);
}

#[test]
fn ip_keys() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(ip_key(ip("10.1.2.3")), ip_key(ip("::ffff:10.1.2.3")));
    assert_ne!(ip_key(ip("10.1.2.3")), ip_key(ip("10.1.2.4")));
    assert_ne!(ip_key(ip("10.1.2.3")), ip_key(ip("::10.1.2.3")));
}

#[test]
fn bytes_keys_are_stable_and_distinct() {
    assert_eq!(bytes_key(b"key-1"), bytes_key(b"key-1"));
    let other = std::thread::spawn(|| bytes_key(b"key-1")).join().unwrap();
    assert_eq!(other, bytes_key(b"key-1"), "one secret per process");
    let mut seen = std::collections::HashSet::new();
    for i in 0..10_000 {
        assert!(seen.insert(bytes_key(format!("api-key-{i}").as_bytes())));
    }
}

#[test]
fn full_buckets_are_swept_away_by_later_takes() {
    let (l, t) = (limiter(2, 1000), Instant::now());
    for k in 0..1000 {
        l.take(k, t);
    }
    assert_eq!(l.len(), 1000);
    // 200 ms later every bucket is full again; a hot key's takes sweep them out.
    let later = t + 200 * MS;
    for _ in 0..l.slots.len() {
        l.take(u128::MAX, later);
    }
    assert_eq!(l.len(), 1);
    for k in 0..10 {
        l.take(k, later);
    }
    assert_eq!(l.sweep(later + 200 * MS, usize::MAX / 2), 11);
    assert!(l.is_empty());
}

#[test]
fn buckets_still_owing_are_not_swept() {
    let (l, t) = (limiter(2, 100), Instant::now());
    for k in 0..100 {
        l.take(k, t);
    }
    assert_eq!(l.sweep(t + 99 * MS, usize::MAX / 2), 0);
    assert_eq!(l.len(), 100);
}

#[test]
fn cap_holds_under_a_flood_and_keeps_limited_clients() {
    let (l, t) = (limiter(5, 1000), Instant::now());
    for _ in 0..6 {
        l.take(u128::MAX, t);
    }
    assert!(!l.take(u128::MAX, t).allowed());
    for k in 0..100_000u128 {
        l.take(k, t + (k as u32) * Duration::from_nanos(10));
        assert!(l.len() <= 1000);
    }
    assert_eq!(l.len(), 1000);
    assert!(
        !l.take(u128::MAX, t + MS).allowed(),
        "the flood evicted the limited client"
    );
    // Every key still in the table is found again (no probe run was broken by eviction).
    let held: Vec<[u64; 2]> = (0..l.slots.len())
        .map(|i| l.slots[i].get())
        .filter(|s| s.tat != 0)
        .map(|s| s.key)
        .collect();
    let before = l.len();
    for k in held {
        l.take(u128::from(k[0]) | u128::from(k[1]) << 64, t + MS);
    }
    assert_eq!(l.len(), before);
}

#[test]
fn odd_inputs_do_not_panic() {
    let t = Instant::now();
    for per_second in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-30, 1e30] {
        for burst in [0, 1, u32::MAX] {
            let l = Limiter::new(Rate { per_second }, burst, 0);
            for k in 0..4 {
                l.take(k, t + Duration::from_secs(k as u64));
                l.take(k, t); // time going backwards
            }
            assert!(l.len() <= 1);
        }
    }
    let l = limiter(1, 1);
    l.take(1, t + Duration::from_secs(1_000_000_000));
    l.take(2, t);
    assert_eq!(l.len(), 1);
}
