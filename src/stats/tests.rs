//! Unit tests of the shard's statistics (`stats.rs`): counters, histograms and snapshots as a
//! shard records and merges them. Test thread only.

use super::*;

fn meta(id: usize) -> ShardMeta {
    ShardMeta {
        id,
        core: Some(id),
        driver: "io_uring",
        draining: false,
        connections: 0,
        requests: 0,
    }
}

#[test]
fn classes() {
    assert_eq!(class_of(100), 0);
    assert_eq!(class_of(204), 1);
    assert_eq!(class_of(399), 2);
    assert_eq!(class_of(429), 3);
    assert_eq!(class_of(503), 4);
    assert_eq!(class_of(42), 0);
    assert_eq!(class_of(999), 4);
}

#[test]
fn registration_returns_the_same_rc() {
    let s = ShardStats::new();
    assert!(Rc::ptr_eq(&s.route("a"), &s.route("a")));
    assert!(!Rc::ptr_eq(&s.route("a"), &s.route("b")));
    assert!(Rc::ptr_eq(&s.endpoint("c", "e"), &s.endpoint("c", "e")));
    assert!(!Rc::ptr_eq(&s.endpoint("c", "e"), &s.endpoint("d", "e")));
}

#[test]
fn snapshot_copies_counters_and_cpu_time() {
    let s = ShardStats::new();
    let r = s.route("api");
    r.record(200, Duration::from_millis(3));
    r.record(502, Duration::from_secs(120)); // past the range: clamped, still counted
    r.retries.set(2);
    let e = s.endpoint("web", "10.0.0.1:80");
    e.record(200, Duration::from_micros(800));
    e.set_breaker(BREAKER_OPEN);
    e.set_breaker(BREAKER_OPEN);
    e.set_breaker(BREAKER_HALF_OPEN);
    // Burn CPU until the thread's CPU time is visibly positive (the kernel may count it in
    // scheduler ticks; a release build does a fixed loop faster than one tick).
    let mut x = 0u64;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while crate::sys::thread_cpu_seconds() == 0.0 && std::time::Instant::now() < until {
        for i in 0..100_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    let snap = s.snapshot(meta(3));
    let rc = &snap.routes["api"];
    assert_eq!(rc.requests, [0, 1, 0, 0, 1]);
    assert_eq!(rc.latency.len(), 2);
    assert!(rc.latency.max() >= HIGHEST_US - HIGHEST_US / 1000);
    assert_eq!(rc.retries, 2);
    let ec = &snap.endpoints[&("web".into(), "10.0.0.1:80".into())];
    assert_eq!(ec.requests[1], 1);
    assert_eq!(ec.breaker_transitions, [1, 1, 0]);
    assert_eq!(ec.breaker_state(), BREAKER_HALF_OPEN);
    assert_eq!(snap.shards.len(), 1);
    assert_eq!(snap.shards[0].id, 3);
    assert!(snap.shards[0].cpu_seconds > 0.0);
}

#[test]
fn recording_does_not_allocate() {
    let s = ShardStats::new();
    let (r, e) = (s.route("api"), s.endpoint("web", "10.0.0.1:80"));
    let n = alloc_probe::allocations_in(|| {
        for i in 0..10_000u64 {
            r.record(200 + (i % 4) as u16 * 100, Duration::from_micros(i * 97));
            e.record(200, Duration::from_micros(i));
            e.connects.set(e.connects.get() + 1);
            e.set_breaker((i % 3) as u8);
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn histogram_size_is_as_documented() {
    let h = new_histogram();
    assert_eq!(h.distinct_values(), 17_408);
}
