//! Micro-benchmarks of the per-shard traffic policy (breaker, rate limiter, router, balancer) on
//! one thread, std only: `cargo bench --bench policy`. Every input goes through `black_box` and
//! varies between calls, every result goes through `black_box`, and the state under test is
//! reached through a `black_box`ed reference, so nothing is hoisted out of the loop. Each line is
//! the best of 41 timed runs of ~10 ms after calibration, with their median.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shardgate::policy::balance::{Algorithm, Balancer, Candidates, PeakEwma};
use shardgate::policy::breaker::{Breaker, BreakerConfig};
use shardgate::policy::ratelimit::{ip_key, Limiter, Rate};
use shardgate::policy::route::{HostPattern, MatchSpec, PathPattern, RouteInput, Router};

/// Timed runs of ~10 ms per benchmark; the machine is shared, so the best run is the one least
/// disturbed by other processes, and the median shows the disturbance.
const RUNS: usize = 41;

/// `cargo test --all-targets` runs this file without `--bench`: one short run each, as a smoke test.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// Times `op(i)` for i = 0, 1, 2, … and prints `name  ops/s  ns/op`; skipped when the command
/// line names benchmarks and none is part of `name`.
fn bench(name: &str, mut op: impl FnMut(usize)) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        return;
    }
    let mut n = 1 << 10;
    loop {
        let t = Instant::now();
        (0..n).for_each(&mut op);
        let enough = if smoke() {
            Duration::from_micros(100)
        } else {
            Duration::from_millis(10)
        };
        if t.elapsed() >= enough {
            break;
        }
        n *= 2;
    }
    let rounds = if smoke() { 1 } else { RUNS };
    let mut runs: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            (0..n).for_each(&mut op);
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    let (best, median) = (runs[0], runs[rounds / 2]);
    println!(
        "{name:<44} {:>13.0} ops/s {best:>7.2} ns/op   (median {median:.2} ns/op)",
        1e9 / best
    );
}

/// 4096 instants 1 µs apart, so that calls see time move (it wraps back every 4 ms).
fn instants() -> Vec<Instant> {
    let t0 = Instant::now();
    (0..4096).map(|k| t0 + Duration::from_micros(k)).collect()
}

fn breaker(nows: &[Instant]) {
    let b = Breaker::new(BreakerConfig::default());
    bench("breaker usable+admit+on_success (closed)", |i| {
        let (b, now) = (black_box(&b), black_box(nows[i & 4095]));
        let ok = b.usable(now) && b.admit(now).0;
        let ticket = b.ticket();
        black_box(ok);
        black_box(b.on_success_for(ticket, now));
    });
}

fn ratelimit(nows: &[Instant]) {
    // Allowed path: the bucket never runs dry, so every take also stores its new state.
    let l = Limiter::new(Rate { per_second: 1e9 }, u32::MAX, 100_000);
    let hot = ip_key("203.0.113.7".parse().unwrap());
    bench("ratelimit take, 1 hot key (allowed)", |i| {
        black_box(black_box(&l).take(black_box(hot), black_box(nows[i & 4095])));
    });
    let l = Limiter::new(Rate { per_second: 100.0 }, 50, 100_000);
    bench("ratelimit take, 1 hot key (100/s, limited)", |i| {
        black_box(black_box(&l).take(black_box(hot), black_box(nows[i & 4095])));
    });
    let keys: Vec<u128> = (0..10_000u32)
        .map(|k| {
            ip_key(
                std::net::Ipv4Addr::from(0x0a00_0000 | k.wrapping_mul(2_654_435_761) >> 8).into(),
            )
        })
        .collect();
    let l = Limiter::new(Rate { per_second: 1e9 }, u32::MAX, 100_000);
    let mut k = 0;
    bench("ratelimit take, 10k keys round-robin", |i| {
        k = if k + 1 == keys.len() { 0 } else { k + 1 };
        black_box(black_box(&l).take(black_box(keys[k]), black_box(nows[i & 4095])));
    });
}

fn route() {
    let exact: Vec<MatchSpec> = (0..20)
        .map(|r| MatchSpec {
            path: PathPattern::exact(&format!("/service/route-{r}")).unwrap(),
            ..MatchSpec::default()
        })
        .collect();
    let targets = [
        "/service/route-9",
        "/service/route-9?a=1",
        "/service/route-9?q=x&y=2",
        "/service/route-9?",
    ];
    route_bench("route exact, 20 routes, hit the 10th", &exact, &targets);

    let prefixes: Vec<MatchSpec> = ["/users", "/orders", "/static/", "/api/v2", "/api"]
        .iter()
        .map(|p| MatchSpec {
            host: HostPattern::parse("*.example.com").unwrap(),
            path: PathPattern::prefix(p).unwrap(),
            ..MatchSpec::default()
        })
        .collect();
    let targets = [
        "/api/v1/items",
        "/api/v1/items/7?x=1",
        "/api",
        "/api/search?q=a",
    ];
    route_bench("route prefix, 5 prefixes, hit the 5th", &prefixes, &targets);

    let template = [MatchSpec {
        path: PathPattern::template("/users/{id}/posts/{post}").unwrap(),
        methods: vec!["GET".into(), "HEAD".into()],
        ..MatchSpec::default()
    }];
    let targets = [
        "/users/1/posts/2",
        "/users/4242/posts/77?x",
        "/users/abc/posts/d",
        "/users/9/posts/10",
    ];
    route_bench(
        "route template /users/{id}/posts/{post}",
        &template,
        &targets,
    );
}

fn route_bench(name: &str, specs: &[MatchSpec], targets: &[&str; 4]) {
    let router = Router::new(specs);
    let headers = [
        httparse::Header {
            name: "user-agent",
            value: b"bench/1.0",
        },
        httparse::Header {
            name: "accept",
            value: b"*/*",
        },
    ];
    let inputs: Vec<RouteInput> = targets
        .iter()
        .map(|t| RouteInput {
            method: b"GET",
            host: b"api.example.com:8443",
            target: t.as_bytes(),
            headers: &headers,
        })
        .collect();
    assert!(
        inputs.iter().all(|r| router.find(r).is_some()),
        "{name}: every input must match"
    );
    bench(name, |i| {
        black_box(black_box(&router).find(black_box(&inputs[i & 3])));
    });
}

/// Four endpoints as the shard would see them.
struct Four {
    in_flight: [u32; 4],
    ewma: [PeakEwma; 4],
}

impl Candidates for Four {
    fn len(&self) -> usize {
        4
    }
    fn usable(&self, _: usize) -> bool {
        true
    }
    fn in_flight(&self, i: usize) -> u32 {
        self.in_flight[i]
    }
    fn ewma_cost(&self, i: usize, now: Instant) -> f64 {
        self.ewma[i].cost(now, self.in_flight[i])
    }
}

fn balance(nows: &[Instant]) {
    let ms = Duration::from_millis;
    let four = Four {
        in_flight: [3, 1, 4, 1],
        ewma: std::array::from_fn(|k| PeakEwma::new(ms(10_000), ms(1 + k as u64))),
    };
    for (k, e) in four.ewma.iter().enumerate() {
        e.observe(ms(2 + k as u64), nows[0]);
    }
    let ids = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];
    let keys: Vec<[u8; 4]> = (0..1024u32)
        .map(|k| (0x0a00_0000 | k.wrapping_mul(2_654_435_761) >> 8).to_be_bytes())
        .collect();
    for alg in [
        "round-robin",
        "weighted",
        "least-request",
        "ewma",
        "random",
        "hash:client-ip",
    ] {
        let b = Balancer::new(&alg.parse::<Algorithm>().unwrap(), &ids, &[5, 1, 1, 2], 42);
        bench(&format!("balance pick {alg}, 4 endpoints"), |i| {
            let key = black_box(&keys[i & 1023][..]);
            black_box(black_box(&b).pick(black_box(&four), Some(key), black_box(nows[i & 4095])));
        });
    }
}

fn main() {
    let nows = instants();
    breaker(&nows);
    ratelimit(&nows);
    route();
    balance(&nows);
}
