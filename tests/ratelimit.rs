//! Rate limits: 429 with `Retry-After` and `RateLimit-*` once a client's burst is spent (allowed
//! answers carry `RateLimit-*` too), keep-alive kept on a 429, one bucket per client address or per
//! API-key header, thousands of clients in bounded memory, X-Forwarded-For believed only from
//! trusted proxies, and the limit's accuracy across shards with and without `--steer client-ip`.
//!
//! The steering tests print what they measured (run with `--nocapture`).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use support::policy::*;
use support::*;

/// The timing-sensitive tests run one at a time (two shared cores).
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

fn header_num(r: &Response, name: &str) -> u64 {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.head.headers))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}: {:?}", r.header(name)))
}

/// Sends GETs on `c` until the first 429; returns the allowed answers and the 429.
fn until_limited(c: &mut Conn, extra: &[&str], max: usize) -> (Vec<Response>, Response) {
    let mut allowed = Vec::new();
    for i in 0..max {
        let r = c.exchange(&request("GET", &format!("/{i}"), extra, b""));
        match r.status {
            200 => allowed.push(r),
            429 => return (allowed, r),
            s => panic!("request {i}: status {s}: {}", r.text()),
        }
    }
    panic!("no 429 within {max} requests");
}

#[test]
fn burst_then_429_with_retry_after_and_ratelimit_headers() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--rate-limit",
            "20/s",
            "--rate-burst",
            "20",
        ],
    );
    let mut c = proxy.connect();
    let started = Instant::now();
    let (allowed, limited) = until_limited(&mut c, &[], 100);
    let took = started.elapsed();
    let most = 20 + (20.0 * took.as_secs_f64()).ceil() as usize;
    assert!(
        allowed.len() >= 20 && allowed.len() <= most,
        "{} allowed in {took:?} (burst 20 at 20/s)",
        allowed.len()
    );
    // Allowed answers: the limit and what is left, counting down.
    for (i, r) in allowed.iter().enumerate().take(20) {
        assert_eq!(header_num(r, "ratelimit-limit"), 20);
        let left = header_num(r, "ratelimit-remaining");
        assert!(left <= 19 - i as u64 + 1, "answer {i}: remaining {left}");
        assert!(header_num(r, "ratelimit-reset") <= 1);
    }
    assert_eq!(header_num(&allowed[0], "ratelimit-remaining"), 19);
    // The 429.
    assert_eq!(limited.text(), "too many requests\n");
    assert_eq!(header_num(&limited, "ratelimit-limit"), 20);
    assert_eq!(header_num(&limited, "ratelimit-remaining"), 0);
    assert!((1..=2).contains(&header_num(&limited, "retry-after")));
    assert!((1..=2).contains(&header_num(&limited, "ratelimit-reset")));
    assert!(
        !limited.head.has_token("connection", "close"),
        "a 429 keeps the connection: {:?}",
        limited.head.headers
    );
    let upstream_saw = up.request_count();
    assert_eq!(upstream_saw, allowed.len(), "429s never reach the upstream");
    // Same connection: refilled at 20/s, a request passes again soon.
    let r = poll(Duration::from_secs(2), "a token back", || {
        let r = c.exchange(&get("/again"));
        (r.status == 200).then_some(r)
    });
    assert_eq!(r.text(), "ok");
}

/// draft-ietf-httpapi-ratelimit-headers-06: `RateLimit-Limit` is the quota of the policy (20 for
/// `20/s`), not the burst; `RateLimit-Policy` names quota, window and burst; `Remaining` counts the
/// burst down; on the 429 it is 0 and `Reset` says when the bucket is full again.
#[test]
fn ratelimit_fields_state_the_quota_its_window_and_the_burst() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &["--shards", "1", "--rate-limit", "20/s", "--rate-burst", "5"],
    );
    let mut c = proxy.connect();
    let (allowed, limited) = until_limited(&mut c, &[], 100);
    assert!(
        allowed.len() >= 5,
        "the burst of 5 passes: {}",
        allowed.len()
    );
    for (i, r) in allowed.iter().enumerate() {
        assert_eq!(header_num(r, "ratelimit-limit"), 20, "answer {i}");
        assert_eq!(
            r.header("ratelimit-policy"),
            Some("20;w=1;burst=5"),
            "answer {i}"
        );
        assert!(header_num(r, "ratelimit-remaining") <= 4, "answer {i}");
        assert!(header_num(r, "ratelimit-reset") <= 1, "answer {i}");
    }
    assert_eq!(
        header_num(&allowed[0], "ratelimit-remaining"),
        4,
        "one of the full bucket of 5 spent"
    );
    assert_eq!(header_num(&limited, "ratelimit-limit"), 20);
    assert_eq!(limited.header("ratelimit-policy"), Some("20;w=1;burst=5"));
    assert_eq!(header_num(&limited, "ratelimit-remaining"), 0);
    assert_eq!(
        header_num(&limited, "retry-after"),
        1,
        "a token every 50 ms"
    );
    assert_eq!(
        header_num(&limited, "ratelimit-reset"),
        1,
        "full within 250 ms"
    );
    assert_eq!(
        up.request_count(),
        allowed.len(),
        "the 429 never reached the upstream"
    );
}

#[test]
fn each_client_address_has_its_own_bucket() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &["--shards", "1", "--rate-limit", "5/m", "--rate-burst", "5"],
    );
    let mut one = connect_from(lo(1), proxy.addr);
    let (allowed, _) = until_limited(&mut one, &[], 20);
    assert_eq!(allowed.len(), 5);
    let mut two = connect_from(lo(2), proxy.addr);
    let (allowed, _) = until_limited(&mut two, &[], 20);
    assert_eq!(
        allowed.len(),
        5,
        "127.0.0.2 is not limited by 127.0.0.1's spending"
    );
    // A new connection from the first address is still limited.
    let r = fetch_from(lo(1), proxy.addr, &get("/")).unwrap();
    assert_eq!(r.status, 429);
}

#[test]
fn header_key_limits_per_api_key() {
    let up = Upstream::fixed("ok");
    let file = temp_file(
        "ratelimit-key",
        &format!(
            "listen = [\"127.0.0.1:0\"]\nupstreams = [\"{}\"]\n\
             [[routes]]\nrate_limit = {{ rate = \"5/m\", burst = 3, key = \"header:x-api-key\" }}\n",
            up.addr
        ),
    );
    let proxy = Proxy::start(&["--config", file.path(), "--shards", "1"]);
    let mut c = proxy.connect();
    let (allowed, limited) = until_limited(&mut c, &["X-Api-Key: k1"], 20);
    assert_eq!(allowed.len(), 3, "key k1");
    // The policy: 5 a minute (the quota), a bucket of 3.
    assert_eq!(header_num(&limited, "ratelimit-limit"), 5);
    assert_eq!(limited.header("ratelimit-policy"), Some("5;w=60;burst=3"));
    // Same client, another key: its own bucket.
    let (allowed, _) = until_limited(&mut c, &["X-Api-Key: k2"], 20);
    assert_eq!(allowed.len(), 3, "key k2 from the same address");
    // Another address with k1: still spent.
    let r = fetch_from(
        lo(2),
        proxy.addr,
        &request("GET", "/", &["X-Api-Key: k1"], b""),
    )
    .unwrap();
    assert_eq!(r.status, 429, "k1 is limited from any address");
    // No key: the client address is the key.
    let (allowed, _) = until_limited(&mut c, &[], 20);
    assert_eq!(allowed.len(), 3, "no key: by address");
}

#[test]
fn trusted_proxy_makes_the_forwarded_client_the_key() {
    let up = Upstream::fixed("ok");
    let args = ["--shards", "1", "--rate-limit", "5/m", "--rate-burst", "2"];
    // Trusted: each X-Forwarded-For client has its own bucket.
    let mut trusted: Vec<&str> = args.to_vec();
    trusted.extend(["--trusted-proxy", "127.0.0.1"]);
    let proxy = Proxy::to(&[up.addr], &trusted);
    let mut c = proxy.connect();
    let (allowed, _) = until_limited(&mut c, &["X-Forwarded-For: 203.0.113.7"], 20);
    assert_eq!(allowed.len(), 2);
    let (allowed, _) = until_limited(&mut c, &["X-Forwarded-For: 203.0.113.8"], 20);
    assert_eq!(allowed.len(), 2, "another forwarded client, another bucket");
    // A peer that is not trusted cannot pick its bucket with the header.
    let mut other = connect_from(lo(9), proxy.addr);
    let (allowed, _) = until_limited(&mut other, &["X-Forwarded-For: 203.0.113.50"], 20);
    assert_eq!(allowed.len(), 2);
    let r = other.exchange(&request(
        "GET",
        "/",
        &["X-Forwarded-For: 203.0.113.51"],
        b"",
    ));
    assert_eq!(r.status, 429, "untrusted peer 127.0.0.9: keyed by the peer");
    drop(proxy);

    // Not trusted: the peer is the key whatever the header says.
    let proxy = Proxy::to(&[up.addr], &args);
    let mut c = proxy.connect();
    let (allowed, _) = until_limited(&mut c, &["X-Forwarded-For: 203.0.113.7"], 20);
    assert_eq!(allowed.len(), 2);
    let r = c.exchange(&request("GET", "/", &["X-Forwarded-For: 203.0.113.8"], b""));
    assert_eq!(
        r.status, 429,
        "without --trusted-proxy the header changes nothing"
    );
}

/// Thousands of distinct client addresses, one request each: every one is answered (each has a
/// fresh burst), the buckets stay in bounded memory, and limiting still works afterwards.
#[test]
fn thousands_of_clients_are_answered_in_bounded_memory() {
    let _g = heavy();
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &["--shards", "2", "--rate-limit", "1/m", "--rate-burst", "1"],
    );
    assert_eq!(fetch(proxy.addr, &get("/warm")).status, 200);
    let before = proxy.peak_rss_kib();
    let addr = proxy.addr;
    let workers: Vec<_> = (0..4u8)
        .map(|w| {
            thread::spawn(move || {
                let mut bad = Vec::new();
                for x in (w * 3)..(w * 3 + 3) {
                    for y in 1..=250u8 {
                        let src = IpAddr::V4(Ipv4Addr::new(127, 1, x, y));
                        match fetch_from(src, addr, &get("/")) {
                            Ok(r) if r.status == 200 => {}
                            Ok(r) => bad.push(format!("{src}: {}", r.status)),
                            Err(e) => bad.push(format!("{src}: {e}")),
                        }
                    }
                }
                bad
            })
        })
        .collect();
    let bad: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        bad.is_empty(),
        "{} of 3000 clients not answered 200: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
    let after = proxy.peak_rss_kib();
    println!("peak RSS: {before} KiB before, {after} KiB after 3000 clients");
    assert!(
        after < before + 16 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB for 3000 one-request clients"
    );
    // The buckets are live: a client that spent its one request is refused.
    let again = fetch_from(IpAddr::V4(Ipv4Addr::new(127, 1, 0, 1)), addr, &get("/"))
        .map(|r| r.status)
        .unwrap_or(0);
    // That connection may land on the other shard (each holds its share): try both.
    let refused = again == 429
        || (0..20).any(|_| {
            fetch_from(IpAddr::V4(Ipv4Addr::new(127, 1, 0, 1)), addr, &get("/"))
                .map(|r| r.status == 429)
                .unwrap_or(false)
        });
    assert!(refused, "127.1.0.1 spent its burst but is never refused");
}

// === accuracy across shards ===

const RATE: f64 = 20.0;
const BURST: f64 = 20.0;
/// How long each client sends, and how often (well above the limit: the limit decides).
const RUN: Duration = Duration::from_millis(1530);
const PACE: Duration = Duration::from_millis(12);

/// What a GCRA token bucket of `rate` per second and `burst` allows of requests arriving at
/// `times` (the bucket full at the first one): the limiter's specification, replayed.
fn ideal(times: &[Instant], rate: f64, burst: f64) -> usize {
    let Some(&t0) = times.first() else { return 0 };
    let interval = 1.0 / rate;
    let window = burst * interval;
    let mut tat = 0.0f64;
    let mut allowed = 0;
    for t in times {
        let t = t.duration_since(t0).as_secs_f64();
        if tat - t <= window - interval + 1e-9 {
            tat = tat.max(t) + interval;
            allowed += 1;
        }
    }
    allowed
}

#[derive(Debug, Clone)]
struct Measured {
    src: IpAddr,
    keep_alive: bool,
    allowed: usize,
    limited: usize,
    /// When each request was sent and its answer read.
    sent: Vec<Instant>,
    answered: Vec<Instant>,
}

impl Measured {
    fn elapsed(&self) -> Duration {
        self.sent[self.sent.len() - 1] - self.sent[0]
    }

    /// burst + rate × elapsed of a process-wide limit, times `share`.
    fn formula(&self, share: f64) -> f64 {
        (BURST + RATE * self.elapsed().as_secs_f64()) * share
    }

    /// What a bucket of `share` of the limit allows of exactly these requests: the limiter
    /// decides each one between its send and its answer, so the truth lies between the replays
    /// on the two timelines (equal to the formula when the client never fell behind).
    fn replayed(&self, share: f64) -> (usize, usize) {
        let burst = (BURST * share).ceil();
        let a = ideal(&self.sent, RATE * share, burst);
        let b = ideal(&self.answered, RATE * share, burst);
        (a.min(b), a.max(b))
    }

    /// Whether `allowed` is within `tolerance` of a bucket holding `share` of the limit.
    fn within(&self, share: f64, tolerance: f64) -> bool {
        let (lo, hi) = self.replayed(share);
        let a = self.allowed as f64;
        a >= lo as f64 * (1.0 - tolerance) - 0.5 && a <= hi as f64 * (1.0 + tolerance) + 0.5
    }

    fn line(&self) -> String {
        let full = self.formula(1.0);
        let (lo, hi) = self.replayed(1.0);
        let (hlo, hhi) = self.replayed(0.5);
        format!(
            "{} {}: allowed {:3} limited {:3} in {:.3}s; full limit burst + rate x elapsed = \
             {full:.1} ({:+.1}%), replayed {lo}..{hi}; half limit replayed {hlo}..{hhi}",
            self.src,
            if self.keep_alive {
                "keep-alive  "
            } else {
                "new conn/req"
            },
            self.allowed,
            self.limited,
            self.elapsed().as_secs_f64(),
            (self.allowed as f64 - full) / full * 100.0,
        )
    }
}

/// One client on `src` sending a GET every `PACE` for `RUN`, on one keep-alive connection or
/// a new connection per request.
fn client(addr: SocketAddr, src: IpAddr, keep_alive: bool) -> Measured {
    let mut m = Measured {
        src,
        keep_alive,
        allowed: 0,
        limited: 0,
        sent: Vec::new(),
        answered: Vec::new(),
    };
    let mut conn: Option<Conn> = None;
    let start = Instant::now();
    for i in 0u32.. {
        let at = start + PACE * i;
        if at > start + RUN {
            break;
        }
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        }
        let c = match conn.as_mut() {
            Some(c) if keep_alive => c,
            _ => conn.insert(connect_from(src, addr)),
        };
        let req = get(&format!("/{i}"));
        m.sent.push(Instant::now());
        let r = c.exchange(&req);
        m.answered.push(Instant::now());
        match r.status {
            200 => m.allowed += 1,
            429 => m.limited += 1,
            s => panic!("{src}: status {s}"),
        }
    }
    m
}

/// Runs keep-alive clients on 127.0.0.10.. and new-connection clients on 127.0.0.20.. at once.
fn measure(proxy: &Proxy, n: u8) -> Vec<Measured> {
    let addr = proxy.addr;
    let threads: Vec<_> = (0..n)
        .flat_map(|i| [(lo(10 + i), true), (lo(20 + i), false)])
        .map(|(src, ka)| thread::spawn(move || client(addr, src, ka)))
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn limited_proxy(up: &Upstream, steer: bool) -> Proxy {
    let mut args = vec![
        "--shards",
        "2",
        "--rate-limit",
        "20/s",
        "--rate-burst",
        "20",
    ];
    if steer {
        args.extend(["--steer", "client-ip"]);
    }
    Proxy::to(&[up.addr], &args)
}

/// With `--steer client-ip` every connection of a client lands on one shard, whose bucket holds
/// the whole limit: each client gets burst + rate × elapsed within 5 %, on one keep-alive
/// connection and with a new connection per request alike.
#[test]
fn steered_clients_get_the_limit_within_5_percent() {
    let _g = heavy();
    let up = Upstream::fixed("ok");
    let proxy = limited_proxy(&up, true);
    let got = measure(&proxy, 3);
    let report: Vec<String> = got.iter().map(Measured::line).collect();
    println!(
        "--steer client-ip, 2 shards, 20/s burst 20:\n  {}",
        report.join("\n  ")
    );
    for m in &got {
        assert!(
            m.within(1.0, 0.05),
            "steered client off the limit by more than 5 %:\n  {}",
            report.join("\n  ")
        );
    }
}

/// Without steering each shard holds half the limit (design: the per-shard share is limit/2). A
/// client on one keep-alive connection stays on one shard and so gets about half; a client with a
/// new connection per request is spread over both shards by the kernel and gets about all of it
/// (less when one shard's bucket has no request waiting as a token comes back).
#[test]
fn unsteered_keep_alive_client_gets_half_the_limit() {
    let _g = heavy();
    let up = Upstream::fixed("ok");
    let proxy = limited_proxy(&up, false);
    let got = measure(&proxy, 3);
    let report: Vec<String> = got.iter().map(Measured::line).collect();
    println!(
        "no steering, 2 shards, 20/s burst 20:\n  {}",
        report.join("\n  ")
    );
    for m in &got {
        let ok = if m.keep_alive {
            m.within(0.5, 0.05)
        } else {
            let (lo, _) = m.replayed(0.5);
            let (_, hi) = m.replayed(1.0);
            m.allowed as f64 >= lo as f64 * 0.95 && m.allowed as f64 <= hi as f64 * 1.05 + 0.5
        };
        assert!(
            ok,
            "unsteered: a keep-alive client should get half the limit (±5 %), a new connection \
             per request between half and all of it:\n  {}",
            report.join("\n  ")
        );
    }
}

#[test]
fn a_client_cannot_pick_its_bucket_by_sending_many_forwarded_for_lines() {
    let up = Upstream::fixed("ok");
    let proxy = Proxy::to(
        &[up.addr],
        &[
            "--shards",
            "1",
            "--rate-limit",
            "5/m",
            "--rate-burst",
            "2",
            "--trusted-proxy",
            "127.0.0.1",
        ],
    );
    let mut c = proxy.connect();
    // The trusted load balancer appends the real client last, after whatever the client sent.
    let spoofed: Vec<String> = (0..8)
        .map(|i| format!("X-Forwarded-For: 198.51.100.{i}"))
        .chain(["X-Forwarded-For: 203.0.113.9".to_string()])
        .collect();
    let spoofed: Vec<&str> = spoofed.iter().map(String::as_str).collect();
    let (allowed, _) = until_limited(&mut c, &spoofed, 20);
    assert_eq!(allowed.len(), 2);
    let r = c.exchange(&request("GET", "/", &["X-Forwarded-For: 203.0.113.9"], b""));
    assert_eq!(
        r.status, 429,
        "the bucket is the last hop's (203.0.113.9), not one the client wrote in front"
    );
}

#[test]
fn a_direct_route_obeys_its_rate_limit_and_header_edits() {
    let file = temp_file(
        "direct-limit",
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[shards]\ncount = 1\n\
         [[routes]]\nname = \"hc\"\npath_prefix = \"/\"\ndirect = { status = 200, body = \"ok\" }\n\
         rate_limit = { rate = \"5/m\", burst = 2 }\n\
         response_headers_add = { \"x-served-by\" = \"edge\" }\n",
    );
    let proxy = Proxy::start(&["--config", file.path()]);
    let mut c = proxy.connect();
    let (allowed, limited) = until_limited(&mut c, &[], 10);
    assert_eq!(allowed.len(), 2, "the burst of a direct route");
    assert_eq!(allowed[0].header("x-served-by"), Some("edge"));
    assert_eq!(limited.status, 429);
}
