//! Active health checks: each endpoint of a cluster with a `health_check` is probed by exactly
//! one shard (chosen by hashing cluster and endpoint names), by TCP connect, HTTP GET or the gRPC
//! health service (health_grpc.rs) with a timeout (over TLS, verified like the pool's connections,
//! for a TLS cluster; an HTTP check is an HTTP/2 GET on a connection of its own for an
//! `h2`/`h2c` cluster); after `fall` failures or `rise` successes in a row the verdict is applied
//! here and published, and the coordinator relays it to every other shard. Shard thread. The same
//! loop runs for a library `Client` (shard::embed), which probes every endpoint itself and applies
//! each verdict to its own table (`Prober`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::time::{timeout, Instant};

use super::health_grpc;
use super::table::Table;
use super::upstream::stream::{Origination, UpStream};
use super::Shard;
use crate::bus::{HealthEvent, HealthNews};
use crate::config::{HealthCheck, ProbeKind};

/// The longest the task sleeps, so config changes are picked up promptly.
const MAX_NAP: Duration = Duration::from_millis(250);

/// One probed endpoint's run of results.
struct Probe {
    next: Instant,
    up: bool,
    successes: u32,
    failures: u32,
    running: bool,
}

type Key = (Arc<str>, Arc<str>);

/// Who runs the probes: the table whose endpoints are probed, which of them are this prober's,
/// and what a verdict does.
pub trait Prober {
    /// The current table; `None` ends the probing (the library client was dropped).
    fn table(&self) -> Option<Rc<Table>>;
    /// Whether this prober probes `endpoint` of `cluster` (a shard: the ones it owns).
    fn probes(&self, cluster: &str, endpoint: &str) -> bool;
    /// `fall` failures or `rise` successes in a row changed the endpoint's verdict.
    fn verdict(&self, cluster: &Arc<str>, endpoint: &Arc<str>, event: HealthEvent);
}

impl Prober for Shard {
    fn table(&self) -> Option<Rc<Table>> {
        Some(Shard::table(self))
    }

    fn probes(&self, cluster: &str, endpoint: &str) -> bool {
        owner(cluster, endpoint, self.shards) == self.id
    }

    fn verdict(&self, cluster: &Arc<str>, endpoint: &Arc<str>, event: HealthEvent) {
        let news = HealthNews {
            from: self.id,
            cluster: cluster.clone(),
            endpoint: endpoint.clone(),
            event,
        };
        // Published first: the coordinator hears the verdict before the breaker closings it
        // causes here (`apply_health`), and logs them in that order.
        self.publish_health(cluster, endpoint, event);
        self.apply_health(&news);
    }
}

/// Runs for the shard's lifetime (or the library client's).
pub async fn run<P: Prober + 'static>(shard: Rc<P>) {
    let probes: Rc<RefCell<HashMap<Key, Probe>>> = Rc::default();
    loop {
        let Some(table) = shard.table() else { return };
        let now = Instant::now();
        let mut nap = MAX_NAP;
        let mut live = Vec::new();
        for (ci, cluster) in table.clusters.iter().enumerate() {
            let Some(check) = table.config.clusters[ci].health.clone() else {
                continue;
            };
            for ep in &cluster.endpoints {
                if !shard.probes(&cluster.name, &ep.name) {
                    continue;
                }
                let key = (cluster.name.clone(), ep.name.clone());
                live.push(key.clone());
                let mut map = probes.borrow_mut();
                let p = map.entry(key.clone()).or_insert(Probe {
                    next: now,
                    up: true,
                    successes: 0,
                    failures: 0,
                    running: false,
                });
                if p.running {
                    continue;
                }
                if p.next <= now {
                    p.running = true;
                    p.next = now + check.interval;
                    let target = Target {
                        addr: ep.addr,
                        // A discovered endpoint (`HOST:PORT@IP`) is asked for HOST:PORT.
                        host: Arc::from(crate::config::discovery::host_port(&ep.name)),
                        tls: ep.pool.tls().cloned(),
                        h2: ep.h2.is_some(),
                    };
                    monoio::spawn(probe_and_report(
                        shard.clone(),
                        probes.clone(),
                        key,
                        target,
                        check.clone(),
                    ));
                }
                nap = nap.min(p.next.saturating_duration_since(now));
            }
        }
        probes.borrow_mut().retain(|k, _| live.contains(k));
        // Not held while napping: a reload's old table (and its statistics) can go at once.
        drop(table);
        monoio::time::sleep(nap.max(Duration::from_millis(5))).await;
    }
}

/// What one probe connects to.
struct Target {
    addr: std::net::SocketAddr,
    /// The endpoint as written (`Host` of an HTTP check).
    host: Arc<str>,
    /// The endpoint's TLS, as its pool speaks it (same verification, same name).
    tls: Option<Origination>,
    /// The cluster speaks HTTP/2 (`h2` over `tls`, else `h2c`).
    h2: bool,
}

async fn probe_and_report<P: Prober>(
    shard: Rc<P>,
    probes: Rc<RefCell<HashMap<Key, Probe>>>,
    key: Key,
    target: Target,
    check: HealthCheck,
) {
    let ok = probe(&target, &check).await;
    let event = {
        let mut map = probes.borrow_mut();
        let Some(p) = map.get_mut(&key) else { return };
        p.running = false;
        if ok {
            p.successes += 1;
            p.failures = 0;
        } else {
            p.failures += 1;
            p.successes = 0;
        }
        if p.up && p.failures >= check.fall {
            p.up = false;
            Some(HealthEvent::ProbeDown)
        } else if !p.up && p.successes >= check.rise {
            p.up = true;
            Some(HealthEvent::ProbeUp)
        } else {
            None
        }
    };
    if let Some(event) = event {
        shard.verdict(&key.0, &key.1, event);
    }
}

/// One probe: true when the endpoint passed. A TLS endpoint passes a `tcp` check when the
/// handshake (with certificate verification) succeeds; an `http` check runs over that TLS.
async fn probe(target: &Target, check: &HealthCheck) -> bool {
    let deadline = Instant::now() + check.timeout;
    let work = async {
        let tcp = TcpStream::connect_addr(target.addr).await.ok()?;
        let s = match &target.tls {
            None => UpStream::Plain(tcp),
            Some(tls) => tls.handshake(tcp).await.ok()?,
        };
        match &check.kind {
            ProbeKind::Grpc { service } => health_grpc::check(s, &target.host, service).await,
            _ if target.h2 => http2(s, target.tls.is_some(), &target.host, check).await,
            _ => http(s, &target.host, check).await,
        }
    };
    matches!(
        timeout(deadline.saturating_duration_since(Instant::now()), work).await,
        Ok(Some(true))
    )
}

/// The HTTP part of a check on a connected stream (`Some(true)` at once for a `tcp` check).
async fn http(mut s: UpStream, host: &str, check: &HealthCheck) -> Option<bool> {
    let ProbeKind::Http { path, expect } = &check.kind else {
        return Some(true);
    };
    let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: shardgate-health\r\nConnection: close\r\n\r\n"
        );
    let (res, _) = s.write_all(req.into_bytes()).await;
    res.ok()?;
    let mut got = Vec::with_capacity(512);
    loop {
        let buf = Vec::with_capacity(512);
        let (res, buf) = s.read(buf).await;
        let n = res.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(status) = status_of(&got) {
            return Some((expect.0..=expect.1).contains(&status));
        }
        if got.len() > 4096 {
            return None;
        }
    }
}

/// The HTTP part of a check as an HTTP/2 GET on a connection of its own (prior knowledge, or
/// over the TLS that negotiated `h2`); the connection closes when the probe ends.
async fn http2(s: UpStream, tls: bool, host: &str, check: &HealthCheck) -> Option<bool> {
    let ProbeKind::Http { path, expect } = &check.kind else {
        return Some(true);
    };
    let io = monoio_compat::StreamWrapper::new_with_buffer_size(s, 16 * 1024, 16 * 1024);
    let (send, conn) = h2::client::handshake(io).await.ok()?;
    // Driven while the probe waits; it ends once the probe's handles are gone.
    monoio::spawn(async move {
        let _ = conn.await;
    });
    let scheme = if tls { "https" } else { "http" };
    let req = http::Request::get(format!("{scheme}://{host}{path}"))
        .header("user-agent", "shardgate-health")
        .body(())
        .ok()?;
    let mut send = send.ready().await.ok()?;
    let (resp, _) = send.send_request(req, true).ok()?;
    let status = resp.await.ok()?.status().as_u16();
    Some((expect.0..=expect.1).contains(&status))
}

/// The status code once the status line is complete.
fn status_of(b: &[u8]) -> Option<u16> {
    let line_end = b.iter().position(|&c| c == b'\n')?;
    let line = std::str::from_utf8(&b[..line_end]).ok()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.trim().parse().ok()
}

/// The shard that probes an endpoint: a stable hash of its names over the shard count.
pub fn owner(cluster: &str, endpoint: &str, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cluster.hash(&mut h);
    endpoint.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_line() {
        assert_eq!(super::status_of(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(super::status_of(b"HTTP/1.1 20"), None);
        assert_eq!(super::status_of(b"SSH-2.0\r\n"), None);
    }

    #[test]
    fn owner_is_stable_and_in_range() {
        for n in 1..5 {
            let o = super::owner("api", "10.0.0.1:80", n);
            assert!(o < n);
            assert_eq!(o, super::owner("api", "10.0.0.1:80", n));
        }
    }
}
