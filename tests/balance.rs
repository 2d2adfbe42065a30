//! Round-robin over upstreams: with one shard, consecutive requests alternate between them.

mod support;

use support::*;

#[test]
fn round_robin_alternates_between_upstreams() {
    let a = Upstream::fixed("A");
    let b = Upstream::fixed("B");
    let proxy = Proxy::to(&[a.addr, b.addr], &["--shards", "1"]);
    let mut order = String::new();
    for _ in 0..6 {
        let mut c = proxy.connect();
        order.push_str(&c.exchange(&get("/")).text());
    }
    assert!(
        order == "ABABAB" || order == "BABABA",
        "want alternation, got {order}"
    );
    assert_eq!(a.request_count(), 3);
    assert_eq!(b.request_count(), 3);
}

/// Round-robin is per request, also within one keep-alive client connection.
#[test]
fn round_robin_within_one_client_connection() {
    let a = Upstream::fixed("A");
    let b = Upstream::fixed("B");
    let proxy = Proxy::to(&[a.addr, b.addr], &["--shards", "1"]);
    let mut c = proxy.connect();
    let order: String = (0..4).map(|_| c.exchange(&get("/")).text()).collect();
    assert!(
        order == "ABAB" || order == "BABA",
        "want alternation, got {order}"
    );
}
