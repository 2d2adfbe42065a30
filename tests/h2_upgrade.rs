//! A WebSocket (HTTP/1.1 `Upgrade`) request routed to a cluster that speaks HTTP/2 gets a clear
//! answer: 501 saying the cluster speaks HTTP/2 and cannot carry the upgrade, counted in
//! `shardgate_route_upgrades_refused_total`; the upstream never sees it (the scripted h2c
//! upstream, tests/h2_upstream/upstream.py).

#[path = "h2_upstream/harness.rs"]
mod harness;
mod support;

use harness::*;
use support::admin::scrape_until;
use support::*;

const UPGRADE_REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n\
Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn a_websocket_upgrade_to_an_h2c_cluster_gets_a_501_that_says_why() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let mut c = proxy.connect();
    c.send(UPGRADE_REQUEST).unwrap();
    let r = c.read_response().expect("an answer");
    assert_eq!(r.status, 501, "{}", r.text());
    assert!(
        r.text().contains("HTTP/2") && r.text().contains("upgrade"),
        "{}",
        r.text()
    );
    let name = "shardgate_route_upgrades_refused_total";
    scrape_until(&proxy, ms(3000), "the refusal counted", name, |m| {
        m.sum(name, &[]) == 1.0
    });
    // The proxy still serves plain requests to the cluster; the upstream never saw /ws.
    assert_eq!(curl(&proxy, "/info", false, &[]).0, 200);
    let s = up.stats();
    assert!(s["paths"].get("/ws").is_none(), "{s}");
}
