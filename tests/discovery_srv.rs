//! `srv:` discovery against a real authoritative server whose records change while shardgate
//! runs: BIND 9's `named` on 127.0.0.1 and a free port, zone `svc.test.` with 1 s TTLs, changed
//! by `nsupdate` (tests/support/bind.rs). Scripted backends `bN` on 127.0.0.N. An SRV target
//! added and one deleted under a bounded load loop fail no request; changed SRV weights move the
//! split; the next priority class takes over when the lowest is deleted, and a name gone
//! entirely keeps the last-known set; a target's changed A record moves its traffic.

mod support;

use std::time::Duration;

use support::bind::{srv, Bind, ZONE};
use support::discovery::{ask, backend_on, backends_on_one_port, count, Load};
use support::policy::{poll, Backend};
use support::{scrape, temp_file, Proxy, TempFile};

/// The SRV name every test's cluster follows (relative to the zone).
const SERVICE: &str = "_http._tcp.api";

/// Zone-file lines: `SERVICE` → target `name` (priority, weight) on `b`'s port, and `name`'s
/// A record at `b`'s address.
fn target(name: &str, priority: u16, weight: u16, b: &Backend) -> [String; 2] {
    [
        format!(
            "{SERVICE} IN SRV {priority} {weight} {} {name}",
            b.addr.port()
        ),
        format!("{name} IN A {}", b.addr.ip()),
    ]
}

fn zone(targets: &[[String; 2]]) -> Vec<String> {
    targets.iter().flatten().cloned().collect()
}

fn start(records: &[String]) -> Bind {
    Bind::start(&records.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A proxy whose one cluster `api` is `srv:SERVICE.svc.test`, asking `dns`; `extra` goes into
/// the cluster.
fn proxy(dns: &Bind, extra: &str) -> (Proxy, TempFile) {
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\nresolvers = [\"{}\"]\n\n[[clusters]]\nname = \"api\"\n\
         endpoints = [\"srv:{SERVICE}.{ZONE}\"]\nmin_ttl = \"500ms\"\nresolve_interval = \"2s\"\n{extra}\n",
        dns.addr
    );
    let file = temp_file("discovery-srv", &text);
    let p = Proxy::start(&["--config", file.path()]);
    (p, file)
}

/// The name discovery gives `b`'s endpoint when reached through SRV target `name`.
fn endpoint(name: &str, b: &Backend) -> String {
    format!("{name}.{ZONE}:{}@{}", b.addr.port(), b.addr.ip())
}

fn endpoints(p: &Proxy) -> f64 {
    scrape(p).one("shardgate_discovery_endpoints", &[("cluster", "api")])
}

#[test]
fn an_srv_target_added_and_one_deleted_under_load_fail_no_request() {
    let (a, b, c) = (backend_on(71), backend_on(72), backend_on(73));
    let dns = start(&zone(&[target("a", 0, 10, &a), target("b", 0, 10, &b)]));
    let (p, _f) = proxy(&dns, "");
    let load = Load::start(p.addr);
    poll(
        Duration::from_secs(10),
        "load on both first targets",
        || (a.hits() > 20 && b.hits() > 20).then_some(()),
    );

    // Added: SRV and A record in one update.
    dns.update(&[
        &srv("add", SERVICE, 0, 10, c.addr.port(), "c"),
        &format!("add c.{ZONE} 1 A {}", c.addr.ip()),
    ]);
    poll(
        Duration::from_secs(10),
        "the added target taking load",
        || (c.hits() > 20).then_some(()),
    );

    // Deleted: its SRV record only (the A record stays, as it would for a host leaving a
    // service).
    dns.delete_srv(SERVICE, 0, 10, a.addr.port(), "a");
    let gone = endpoint("a", &a);
    assert!(
        p.stderr
            .wait(Duration::from_secs(10), |l| l
                .contains(&format!("removed [\"{gone}\"]")))
            .is_some(),
        "no removal of {gone} logged: {:?}",
        p.stderr.all()
    );
    load.wait_more(100, "load after the removal");
    let removed_at = a.hits();
    let (b_at, c_at) = (b.hits(), c.hits());
    load.wait_more(200, "more load after the removal");
    let (ok, failed) = load.finish();
    println!(
        "SRV target added and deleted under load (bind9 + nsupdate): {} requests, {} failed, by backend {:?}",
        ok.len() + failed.len(),
        failed.len(),
        count(&ok)
    );
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.len() > 300, "the loop ran: {} requests", ok.len());
    assert_eq!(
        a.hits(),
        removed_at,
        "the deleted target's backend got requests after it left"
    );
    assert!(b.hits() > b_at + 50 && c.hits() > c_at + 50);
    assert_eq!(endpoints(&p), 2.0);
}

#[test]
fn srv_weights_changed_by_nsupdate_move_the_split() {
    let (a, b) = (backend_on(74), backend_on(75));
    let dns = start(&zone(&[target("a", 0, 10, &a), target("b", 0, 30, &b)]));
    let (p, _f) = proxy(&dns, "lb = \"weighted\"");
    let split = |p: &Proxy| {
        let got = count(&ask(p, 400));
        let (na, nb) = (got.get("b74").copied(), got.get("b75").copied());
        let (na, nb) = (na.unwrap_or(0), nb.unwrap_or(0));
        assert_eq!(na + nb, 400, "{got:?}");
        (na, nb)
    };
    let (na, nb) = split(&p);
    let ratio = nb as f64 / na.max(1) as f64;
    assert!((2.5..=3.5).contains(&ratio), "weights 10:30 gave {na}:{nb}");

    // 10:30 → 30:10 in one update: the set keeps its two endpoints, only their weights change.
    dns.update(&[
        &srv("delete", SERVICE, 0, 10, a.addr.port(), "a"),
        &srv("delete", SERVICE, 0, 30, b.addr.port(), "b"),
        &srv("add", SERVICE, 0, 30, a.addr.port(), "a"),
        &srv("add", SERVICE, 0, 10, b.addr.port(), "b"),
    ]);
    // Logged as a changed set (same names: nothing added or removed), then on every shard.
    assert!(
        p.stderr
            .wait(Duration::from_secs(10), |l| l
                .contains("2 endpoints (added [], removed [])"))
            .is_some(),
        "{:?}",
        p.stderr.all()
    );
    poll(Duration::from_secs(10), "the new weights served", || {
        let got = count(&ask(&p, 40));
        (got.get("b74") > got.get("b75")).then_some(())
    });
    let (na, nb) = split(&p);
    let ratio = na as f64 / nb.max(1) as f64;
    println!("SRV weights 10:30 then 30:10: {na}:{nb} of 400");
    assert!((2.5..=3.5).contains(&ratio), "weights 30:10 gave {na}:{nb}");
}

#[test]
fn the_next_priority_class_takes_over_and_a_vanished_name_keeps_the_last_set() {
    let (a, b, c) = (backend_on(76), backend_on(77), backend_on(78));
    // Priority 0 (a, b) is used; priority 1 (c) only when no target of 0 is left (RFC 2782).
    let dns = start(&zone(&[
        target("a", 0, 10, &a),
        target("b", 0, 10, &b),
        target("c", 1, 10, &c),
    ]));
    let (p, _f) = proxy(&dns, "");
    let got = count(&ask(&p, 40));
    assert_eq!(
        got.get("b76").copied().unwrap_or(0) + got.get("b77").copied().unwrap_or(0),
        40,
        "{got:?}"
    );
    assert_eq!(endpoints(&p), 2.0);

    // Every target of priority 0 deleted at once, under load: c takes over, no request fails.
    let load = Load::start(p.addr);
    load.wait_more(50, "load before the change");
    dns.update(&[
        &srv("delete", SERVICE, 0, 10, a.addr.port(), "a"),
        &srv("delete", SERVICE, 0, 10, b.addr.port(), "b"),
    ]);
    poll(Duration::from_secs(10), "priority 1 taking over", || {
        (c.hits() > 50).then_some(())
    });
    let (a_at, b_at) = (a.hits(), b.hits());
    load.wait_more(100, "load on priority 1");
    assert_eq!(
        (a.hits(), b.hits()),
        (a_at, b_at),
        "priority 0 still served"
    );

    // The name loses its last SRV record: NXDOMAIN. The cluster keeps c and never goes empty.
    dns.delete_srv(SERVICE, 1, 10, c.addr.port(), "c");
    assert!(dns.dig(&format!("{SERVICE}.{ZONE}"), "SRV").is_empty());
    poll(Duration::from_secs(10), "failed lookups counted", || {
        let m = scrape(&p);
        let n = m.sum(
            "shardgate_discovery_refreshes_total",
            &[("cluster", "api"), ("result", "nxdomain")],
        );
        (n >= 2.0).then_some(())
    });
    let c_at = c.hits();
    load.wait_more(100, "load on the last-known set");
    let (ok, failed) = load.finish();
    println!(
        "priority 0 deleted, then the name: {} requests, {} failed, by backend {:?}",
        ok.len() + failed.len(),
        failed.len(),
        count(&ok)
    );
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(5)]);
    assert!(c.hits() >= c_at + 100, "the last-known set did not serve");
    assert_eq!(endpoints(&p), 1.0);
    let lines = p.stderr.all();
    let failing: Vec<_> = (lines.iter())
        .filter(|l| l.contains("lookup failed (nxdomain)"))
        .collect();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert!(
        failing[0].contains("keeping the last-known 1 endpoints"),
        "{failing:?}"
    );

    // Back: the name answers again with a target of priority 0.
    dns.add_srv(SERVICE, 0, 10, a.addr.port(), "a");
    poll(Duration::from_secs(10), "the name back", || {
        ask(&p, 10).iter().all(|w| w == "b76").then_some(())
    });
}

#[test]
fn a_targets_changed_a_record_moves_its_traffic() {
    let (bs, port) = backends_on_one_port(&[81, 82]);
    // One SRV target whose address moves from 127.0.0.81 to 127.0.0.82.
    let dns = start(&zone(&[target("a", 0, 10, &bs[0])]));
    let (p, _f) = proxy(&dns, "");
    assert!(ask(&p, 10).iter().all(|w| w == "b81"));
    let load = Load::start(p.addr);
    load.wait_more(50, "load before the change");
    dns.update(&[
        &format!("delete a.{ZONE} A"),
        &format!("add a.{ZONE} 1 A 127.0.0.82"),
    ]);
    assert_eq!(dns.dig(&format!("a.{ZONE}"), "A").trim(), "127.0.0.82");
    poll(
        Duration::from_secs(10),
        "traffic on the new address",
        || (bs[1].hits() > 50).then_some(()),
    );
    let old_at = bs[0].hits();
    load.wait_more(100, "load after the change");
    let (ok, failed) = load.finish();
    println!(
        "SRV target's A record changed under load: {} requests, {} failed, by backend {:?}",
        ok.len() + failed.len(),
        failed.len(),
        count(&ok)
    );
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(5)]);
    assert_eq!(bs[0].hits(), old_at, "the old address still served");
    let m = scrape(&p);
    let new = format!("a.{ZONE}:{port}@127.0.0.82");
    assert_eq!(
        m.select("shardgate_upstream_healthy", &[("endpoint", &new)])
            .len(),
        1,
        "no endpoint {new} in /metrics"
    );
    assert_eq!(endpoints(&p), 1.0);
}

#[test]
fn a_priority_class_whose_targets_lost_their_addresses_gives_way_to_the_next() {
    let (a, c) = (backend_on(79), backend_on(80));
    let dns = start(&zone(&[target("a", 0, 10, &a), target("c", 1, 10, &c)]));
    let (p, _f) = proxy(&dns, "");
    assert!(ask(&p, 10).iter().all(|w| w == "b79"));
    // a's host is gone from DNS (its A record deleted) while its SRV record stays: a target
    // no client can reach, so the next class is the lowest reachable one (RFC 2782).
    dns.update(&[&format!("delete a.{ZONE} A")]);
    poll(Duration::from_secs(10), "priority 1 taking over", || {
        ask(&p, 10).iter().all(|w| w == "b80").then_some(())
    });
    assert_eq!(endpoints(&p), 1.0);
    // Its address back: priority 0 again.
    dns.update(&[&format!("add a.{ZONE} 1 A {}", a.addr.ip())]);
    poll(Duration::from_secs(10), "priority 0 back", || {
        ask(&p, 10).iter().all(|w| w == "b79").then_some(())
    });
}
