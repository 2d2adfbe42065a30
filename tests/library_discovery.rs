//! DNS discovery in library mode (`shardgate::embed`, public API only) against a real DNS server
//! the test starts (dnsmasq on 127.0.0.1, a free port): a client whose cluster has a `dns:`
//! endpoint starts its own discovery thread, serves every A record, follows a record change
//! (the new address served, the removed one never asked again, the staying one's pooled
//! connections kept) with no failed request; a killed DNS server leaves the last-known set
//! serving and the failed lookups show in the client's stats; an `srv:` endpoint follows its
//! record's new target; a reload keeps the set found for names it did not change; the discovery thread ends when the last clone of the client is dropped.
//! Each test runs its client on a monoio runtime of its own (io_uring, or epoll with
//! `MONOIO_FORCE_LEGACY_DRIVER=1`).

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shardgate::embed::{Client, Config, Error};
use support::discovery::backends_on_one_port;
use support::dns::Dnsmasq;
use support::embed::*;
use support::policy::Backend;
use support::temp_file;
use support::TempFile;

/// One test at a time: the thread-count test must see only its own client's threads.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn hosts(ips: &[u8]) -> String {
    ips.iter()
        .map(|ip| format!("127.0.0.{ip} api.test\n"))
        .collect()
}

/// A client whose cluster `svc` is `dns:api.test:PORT` asked of `dns`; `extra` goes into the
/// cluster.
fn client(dns: &Dnsmasq, port: u16, extra: &str) -> (Client, TempFile) {
    client_of(dns, &format!("dns:api.test:{port}"), extra)
}

/// A client whose cluster `svc` has the one endpoint `endpoint`, asking `dns`.
fn client_of(dns: &Dnsmasq, endpoint: &str, extra: &str) -> (Client, TempFile) {
    let text = format!(
        "resolvers = [\"{}\"]\n\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{endpoint}\"]\n\
         {extra}\n\n[[routes]]\ncluster = \"svc\"\n",
        dns.addr
    );
    let file = temp_file("library-discovery", &text);
    let client = Client::from_file(file.path()).expect("a client for a dns: cluster");
    (client, file)
}

/// One GET: the backend that answered (its `x-endpoint`), read to the end.
async fn who(client: &Client) -> Result<String, Error> {
    let resp = client.send(get_request("/")).await?;
    let name = resp
        .headers()
        .get("x-endpoint")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_else(|| format!("-{}", resp.status()));
    resp.into_body().bytes().await?;
    Ok(name)
}

/// Requests until `cond` holds of the answers so far (10 s at most); every answer counted, every
/// failure kept.
async fn until_answers(
    client: &Client,
    got: &mut BTreeMap<String, usize>,
    failed: &mut Vec<String>,
    what: &str,
    cond: impl Fn(&BTreeMap<String, usize>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond(got) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {got:?}"
        );
        match who(client).await {
            Ok(name) => *got.entry(name).or_insert(0) += 1,
            Err(e) => failed.push(format!("{e}")),
        }
    }
}

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

#[test]
fn a_record_change_is_followed_with_no_failed_request() {
    let _s = serial();
    let (bs, port) = backends_on_one_port(&[41, 42, 43]);
    let dns = Dnsmasq::start(&hosts(&[41, 42]), 1, &[]);
    let (got, failed, removed_at, stayer_conns) = block_on(async {
        let (client, _f) = client(&dns, port, "min_ttl = \"200ms\"\nresolve_interval = \"1s\"");
        let (mut got, mut failed) = (BTreeMap::new(), Vec::new());
        until_answers(&client, &mut got, &mut failed, "both records served", |g| {
            g.get("b41").is_some_and(|n| *n >= 10) && g.get("b42").is_some_and(|n| *n >= 10)
        })
        .await;
        // The endpoint that stays keeps its pooled connections across the change.
        let stayer_conns = bs[1].upstream().accepted();
        dns.set_hosts(&hosts(&[42, 43]));
        until_answers(
            &client,
            &mut got,
            &mut failed,
            "the new record served",
            |g| g.get("b43").is_some_and(|n| *n >= 10),
        )
        .await;
        // Once the new set serves, the removed address is never asked again.
        let removed_at = bs[0].hits();
        let more = got.values().sum::<usize>() + 100;
        until_answers(&client, &mut got, &mut failed, "100 more", |g| {
            g.values().sum::<usize>() >= more
        })
        .await;
        let stats = client.stats();
        assert_eq!(stats.discovery.clusters.len(), 1, "{:?}", stats.discovery);
        assert_eq!(stats.discovery.clusters[0].1, 2, "two endpoints now");
        let changed = (stats.discovery.refreshes.iter())
            .find(|(c, r, _)| c == "svc" && *r == "changed")
            .map_or(0, |r| r.2);
        assert!(changed >= 2, "{:?}", stats.discovery.refreshes);
        let text = shardgate::embed::render_metrics(&[stats]);
        assert!(
            text.contains("shardgate_discovery_endpoints{cluster=\"svc\"} 2"),
            "{text}"
        );
        (got, failed, removed_at, stayer_conns)
    });
    println!("record change: {got:?}, failed {failed:?}");
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert_eq!(bs[0].hits(), removed_at, "the removed address got requests");
    assert_eq!(
        bs[1].upstream().accepted(),
        stayer_conns,
        "the staying endpoint's pool was rebuilt (new upstream connections)"
    );
}

#[test]
fn a_killed_dns_server_leaves_the_last_known_set_serving() {
    let _s = serial();
    let (bs, port) = backends_on_one_port(&[51, 52]);
    let mut dns = Dnsmasq::start(&hosts(&[51, 52]), 1, &[]);
    block_on(async {
        let (client, _f) = client(&dns, port, "min_ttl = \"100ms\"\nresolve_interval = \"1s\"");
        let (mut got, mut failed) = (BTreeMap::new(), Vec::new());
        until_answers(&client, &mut got, &mut failed, "both records served", |g| {
            g.len() == 2
        })
        .await;
        dns.stop();
        // Failed lookups are counted (whatever the failure), and the set is kept.
        let lookups_failed = |c: &Client| -> u64 {
            (c.stats().discovery.refreshes.iter())
                .filter(|(_, r, _)| !matches!(*r, "ok" | "changed"))
                .map(|r| r.2)
                .sum()
        };
        until("two failed lookups", || lookups_failed(&client) >= 2).await;
        let mut after = BTreeMap::new();
        until_answers(&client, &mut after, &mut failed, "40 answers", |g| {
            g.values().sum::<usize>() >= 40
        })
        .await;
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        assert_eq!(after.len(), 2, "both last-known endpoints serve: {after:?}");
        assert_eq!(client.stats().discovery.clusters[0].1, 2);
    });
    assert!(bs.iter().all(|b| b.hits() >= 10));
}

#[test]
fn a_reload_keeps_the_set_found_for_unchanged_names() {
    let _s = serial();
    let (bs, port) = backends_on_one_port(&[71, 72]);
    let dns = Dnsmasq::start(&hosts(&[71, 72]), 30, &[]);
    block_on(async {
        let (client, file) = client(&dns, port, "resolve_interval = \"30s\"");
        let (mut got, mut failed) = (BTreeMap::new(), Vec::new());
        until_answers(&client, &mut got, &mut failed, "both records served", |g| {
            g.len() == 2
        })
        .await;
        let conns: Vec<usize> = bs.iter().map(|b| b.upstream().accepted()).collect();
        // The same file again: no DNS answer is due for 30 s, so what serves at once is the set
        // carried over (with its pools).
        client
            .reload(Config::from_file(file.path()).unwrap())
            .unwrap();
        let mut after = BTreeMap::new();
        for _ in 0..20 {
            match who(&client).await {
                Ok(name) => *after.entry(name).or_insert(0) += 1,
                Err(e) => failed.push(format!("{e}")),
            }
        }
        assert!(failed.is_empty(), "failed after the reload: {failed:?}");
        assert_eq!(after.len(), 2, "{after:?}");
        let now: Vec<usize> = bs.iter().map(|b| b.upstream().accepted()).collect();
        assert_eq!(now, conns, "pools rebuilt by the reload");
    });
}

#[test]
fn an_srv_record_change_is_followed_with_no_failed_request() {
    let _s = serial();
    let a = Backend::start("a");
    let b = Backend::start("b");
    let srv = |to: &Backend, host: &str| {
        format!(
            "--srv-host=_http._tcp.svc.test,{host},{},0,10",
            to.addr.port()
        )
    };
    let records = [
        "--host-record=a.test,127.0.0.1",
        "--host-record=b.test,127.0.0.1",
    ];
    let mut dns = Dnsmasq::start("", 1, &[&srv(&a, "a.test"), records[0], records[1]]);
    let (got, failed, a_at) = block_on(async {
        let (client, _f) = client_of(
            &dns,
            "srv:_http._tcp.svc.test",
            "min_ttl = \"100ms\"\nresolve_interval = \"1s\"",
        );
        let (mut got, mut failed) = (BTreeMap::new(), Vec::new());
        until_answers(&client, &mut got, &mut failed, "the first target", |g| {
            g.get("a").is_some_and(|n| *n >= 10)
        })
        .await;
        // dnsmasq reads --srv-host only at start: restarted on its port with the other target.
        dns.restart(&[&srv(&b, "b.test"), records[0], records[1]]);
        until_answers(&client, &mut got, &mut failed, "the new target", |g| {
            g.get("b").is_some_and(|n| *n >= 10)
        })
        .await;
        let a_at = a.hits();
        let more = got.values().sum::<usize>() + 50;
        until_answers(&client, &mut got, &mut failed, "50 more", |g| {
            g.values().sum::<usize>() >= more
        })
        .await;
        (got, failed, a_at)
    });
    println!("SRV change: {got:?}, failed {failed:?}");
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert_eq!(a.hits(), a_at, "the old target got requests after it left");
}

#[test]
fn the_discovery_thread_ends_with_the_last_clone_of_its_client() {
    let _s = serial();
    // Threads of an earlier test end once their lookup under way is done.
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_named("discovery") > 0 {
        assert!(
            Instant::now() < deadline,
            "a discovery thread of an earlier test lives on"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (_bs, port) = backends_on_one_port(&[61]);
    let dns = Dnsmasq::start(&hosts(&[61]), 1, &[]);
    block_on(async {
        let (client, _f) = client(&dns, port, "min_ttl = \"100ms\"");
        // A new thread names itself once it runs.
        until("the client's discovery thread", || {
            threads_named("discovery") == 1
        })
        .await;
        assert_eq!(who(&client).await.unwrap(), "b61");
        let other = client.clone();
        drop(client);
        monoio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(threads_named("discovery"), 1, "a clone still lives");
        assert_eq!(who(&other).await.unwrap(), "b61");
        drop(other);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_named("discovery") > 0 {
        assert!(
            Instant::now() < deadline,
            "the discovery thread outlived its client"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
