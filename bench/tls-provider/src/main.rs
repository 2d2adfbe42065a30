//! In-memory rustls benchmark, one thread (bench/tls-provider.sh pins it): full and resumed
//! handshakes per second, and bulk encrypt/decrypt MB/s with allocations per record, for the
//! crypto provider this binary was built with (`--features ring` or `--features aws_lc_rs`).
//!
//! Prints one `RESULT <provider> <case> <metric> <value>` line per figure; the script takes
//! medians over rounds and prints the table. Usage: `tls-provider-bench [SECONDS_PER_CASE]`.

mod alloc;
mod bulk;
mod certs;
mod clock;
mod handshake;
mod provider;

use std::time::Duration;

use provider::{suite, NAME};
use rustls::SupportedCipherSuite;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn report(case: &str, metric: &str, value: f64) {
    println!("RESULT {NAME} {case} {metric} {value:.3}");
}

/// Nanoseconds this thread spent waiting for a CPU while runnable (`/proc/thread-self/schedstat`,
/// 2nd field): other work on a shared machine shows up here, and the script reports it per case.
fn runqueue_wait_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Runs one case and reports the share of its wall time spent waiting for the CPU.
fn measured(case: &str, f: impl FnOnce()) {
    let (w, t) = (runqueue_wait_ns(), std::time::Instant::now());
    f();
    let waited = (runqueue_wait_ns() - w) as f64 / t.elapsed().as_nanos() as f64;
    report(case, "wait_pct", waited * 100.0);
}

fn handshakes(pki: &certs::Pki, dur: Duration) {
    let cases: [(&str, SupportedCipherSuite, &certs::ServerCert, bool); 4] = [
        (
            "hs-tls13-ecdsa",
            suite::TLS13_AES_128_GCM_SHA256,
            &pki.ecdsa,
            false,
        ),
        (
            "hs-tls12-ecdsa",
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            &pki.ecdsa,
            false,
        ),
        (
            "hs-tls13-rsa2048",
            suite::TLS13_AES_128_GCM_SHA256,
            &pki.rsa,
            false,
        ),
        (
            "hs-tls13-ecdsa-resumed",
            suite::TLS13_AES_128_GCM_SHA256,
            &pki.ecdsa,
            true,
        ),
    ];
    for (case, s, cert, resume) in cases {
        let server = provider::server(s, cert, resume);
        let client = provider::client(s, &pki.roots, resume);
        measured(case, || {
            let r = handshake::rate(&server, &client, dur, resume);
            report(case, "server_per_s", r.server_per_s);
            report(case, "both_per_s", r.both_per_s);
            report(case, "count", r.count as f64);
        });
    }
}

fn bulk(pki: &certs::Pki, dur: Duration) {
    let suites = [
        ("aes128gcm", suite::TLS13_AES_128_GCM_SHA256),
        ("aes256gcm", suite::TLS13_AES_256_GCM_SHA384),
        ("chacha20", suite::TLS13_CHACHA20_POLY1305_SHA256),
    ];
    for (name, s) in suites {
        let server = provider::server(s, &pki.ecdsa, false);
        let client = provider::client(s, &pki.roots, false);
        for (api, tag) in [
            (bulk::Api::Buffered, "buffered"),
            (bulk::Api::Unbuffered, "unbuffered"),
        ] {
            let case = format!("bulk-{name}-{tag}");
            measured(&case, || {
                let f = bulk::run(api, &server, &client, dur);
                report(&case, "enc_mb_s", f.enc_mb_s);
                report(&case, "dec_mb_s", f.dec_mb_s);
                report(&case, "both_mb_s", f.both_mb_s);
                report(&case, "enc_allocs_per_record", f.enc_allocs_per_record);
                report(&case, "dec_allocs_per_record", f.dec_allocs_per_record);
            });
        }
    }
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map_or(2.0, |s| s.parse().expect("SECONDS_PER_CASE"));
    let dur = Duration::from_secs_f64(secs);
    report("clock", "overhead_ns", clock::calibrate() as f64);
    let pki = certs::make();
    handshakes(&pki, dur);
    bulk(&pki, dur);
}
