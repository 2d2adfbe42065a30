//! Traffic helpers shared by the DNS discovery tests (`tests/discovery.rs` against dnsmasq,
//! `tests/discovery_srv.rs` against BIND): backends on 127.0.0.x addresses, one client's
//! requests counted by the backend that answered, and a bounded load loop running beside the
//! test while it changes DNS records.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::compose::get;
use super::policy::{fetch_from, lo, who, Backend};
use super::proxy::Proxy;

/// Backends `bN` on 127.0.0.N for each N of `ips`, all on one port; returns them and the port.
pub fn backends_on_one_port(ips: &[u8]) -> (Vec<Backend>, u16) {
    for _ in 0..50 {
        let first = TcpListener::bind(SocketAddr::new(lo(ips[0]), 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let mut ls = vec![first];
        for ip in &ips[1..] {
            match TcpListener::bind(SocketAddr::new(lo(*ip), port)) {
                Ok(l) => ls.push(l),
                Err(_) => break,
            }
        }
        if ls.len() == ips.len() {
            let bs = (ls.into_iter().zip(ips))
                .map(|(l, ip)| Backend::start_on(&format!("b{ip}"), l))
                .collect();
            return (bs, port);
        }
    }
    panic!("no port free on every one of 127.0.0.{ips:?}");
}

/// A backend `bN` on 127.0.0.N and a free port.
pub fn backend_on(ip: u8) -> Backend {
    let l = TcpListener::bind(SocketAddr::new(lo(ip), 0)).unwrap();
    Backend::start_on(&format!("b{ip}"), l)
}

/// `n` requests through `p`, each on a new connection from 127.0.0.1: who answered each.
pub fn ask(p: &Proxy, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| match fetch_from(lo(1), p.addr, &get("/")) {
            Ok(r) => who(&r),
            Err(e) => format!("error {e:?}"),
        })
        .collect()
}

/// How many times each name occurs.
pub fn count(names: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

/// A bounded load loop (one client, new connection per request) until stopped; counts answers
/// by backend and failures.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub done: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<(Vec<String>, Vec<String>)>>,
}

impl Load {
    pub fn start(to: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let (s, d) = (stop.clone(), done.clone());
        let thread = thread::spawn(move || {
            let (mut ok, mut failed) = (Vec::new(), Vec::new());
            // Bounded: at most 20 000 requests or 60 s, whichever comes first.
            let end = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::SeqCst) && ok.len() < 20_000 && Instant::now() < end {
                match fetch_from(lo(1), to, &get("/")) {
                    Ok(r) if r.status == 200 => ok.push(who(&r)),
                    Ok(r) => failed.push(format!("{} from {}", r.status, who(&r))),
                    Err(e) => failed.push(format!("{e:?}")),
                }
                d.fetch_add(1, Ordering::SeqCst);
            }
            (ok, failed)
        });
        Load {
            stop,
            done,
            thread: Some(thread),
        }
    }

    /// Requests answered so far (failed or not).
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until `n` more requests have been answered.
    pub fn wait_more(&self, n: usize, what: &str) {
        let from = self.done();
        super::policy::poll(Duration::from_secs(15), what, || {
            (self.done() >= from + n).then_some(())
        });
    }

    /// Stops the loop: the answering backends of the requests that passed, and the failures.
    pub fn finish(mut self) -> (Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
