//! The library side of bench/library.sh: sends `--requests` keep-alive GETs to `--target` through
//! `shardgate::embed`, `--concurrency` at a time on one thread, and prints the latency
//! percentiles and this process's CPU time per request (getrusage: user + system, then each
//! part). bench/library.sh runs it twice against the same upstream: straight to it (library
//! mode), and to a shardgate proxy in front of it (the proxy hop), so the client's own cost is
//! the same in both.
//!
//! ```text
//! library_bench --target 127.0.0.1:9001 [--requests 100000] [--concurrency 16] [--warmup 5000]
//!               [--protocol h1|h2c]
//! ```
//!
//! `--protocol h2c` speaks HTTP/2 with prior knowledge to the target (the requests multiplexed on
//! the endpoint's HTTP/2 pool).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use shardgate::embed::{Body, Client};

struct Args {
    target: String,
    protocol: String,
    requests: usize,
    concurrency: usize,
    warmup: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        target: String::new(),
        protocol: "h1".into(),
        requests: 100_000,
        concurrency: 16,
        warmup: 5_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag}: missing value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--target" => a.target = value.clone(),
            "--protocol" => a.protocol = value.clone(),
            "--requests" => a.requests = number()?,
            "--concurrency" => a.concurrency = number()?.max(1),
            "--warmup" => a.warmup = number()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.target.is_empty() {
        return Err("--target HOST:PORT is required".into());
    }
    Ok(a)
}

/// This process's user and system CPU time.
fn cpu_time() -> (Duration, Duration) {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(u.ru_utime), tv(u.ru_stime))
}

/// Sends `n` requests, `concurrency` at a time; the latency of each in microseconds.
async fn drive(client: &Client, n: usize, concurrency: usize) -> Vec<u32> {
    let left = Rc::new(RefCell::new(n));
    let lat = Rc::new(RefCell::new(Vec::with_capacity(n)));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, left, lat) = (client.clone(), left.clone(), lat.clone());
        tasks.push(monoio::spawn(async move {
            loop {
                {
                    let mut l = left.borrow_mut();
                    if *l == 0 {
                        return;
                    }
                    *l -= 1;
                }
                let req = http::Request::get("/").body(Body::empty()).unwrap();
                let t = Instant::now();
                let resp = client.send(req).await.expect("request failed");
                let mut body = resp.into_body();
                while body.chunk().await.expect("body failed").is_some() {}
                lat.borrow_mut().push(t.elapsed().as_micros() as u32);
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    Rc::try_unwrap(lat)
        .map(RefCell::into_inner)
        .unwrap_or_default()
}

#[monoio::main(timer_enabled = true)]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("library_bench: {e}");
            std::process::exit(2);
        }
    };
    let client = Client::builder()
        .cluster("bench", &[&a.target])
        .route_prefix("/", "bench")
        .protocol(&a.protocol)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("library_bench: {e}");
            std::process::exit(2)
        });
    drive(&client, a.warmup, a.concurrency).await;
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let mut lat = drive(&client, a.requests, a.concurrency).await;
    let (cpu1, wall) = (cpu_time(), t0.elapsed());
    let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let per_req = |d: Duration| d.as_secs_f64() * 1e6 / lat.len() as f64;
    println!(
        "requests={} p50_us={} p99_us={} client_cpu_us_per_req={:.2} rps={:.0} \
         client_user_us_per_req={:.2} client_sys_us_per_req={:.2}",
        lat.len(),
        pct(0.50),
        pct(0.99),
        per_req(user + sys),
        lat.len() as f64 / wall.as_secs_f64(),
        per_req(user),
        per_req(sys),
    );
}
