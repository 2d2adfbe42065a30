//! The upstream HTTP/2 metrics with real traffic through an h2c cluster (the scripted upstream,
//! tests/h2_upstream/upstream.py): open connections and streams in flight (gauges), GOAWAYs
//! received and streams refused unprocessed (counters), scraped from /metrics.

#[path = "h2_upstream/harness.rs"]
mod harness;
mod support;

use std::thread;
use std::time::Duration;

use harness::*;
use support::admin::{scrape, scrape_until};
use support::*;

const CONNS: &str = "shardgate_upstream_http2_connections";
const STREAMS: &str = "shardgate_upstream_http2_streams";
const GOAWAYS: &str = "shardgate_upstream_http2_goaways_total";
const REFUSED: &str = "shardgate_upstream_http2_refused_streams_total";

fn post(proxy: &Proxy, path: &str) -> u16 {
    let mut c = proxy.connect();
    let req = format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    c.exchange(req.as_bytes()).status
}

#[test]
fn upstream_http2_connections_streams_goaways_and_refusals_are_counted() {
    let up = PyUp::start(&[]);
    let proxy = proxy_to(up.addr, "h2c", &[]);
    let labels = [("cluster", "default")];
    let m = scrape(&proxy);
    assert_eq!(m.sum(CONNS, &labels), 0.0, "no connection before a request");

    // One stream in flight on one connection, then none.
    let slow = {
        let addr = proxy.addr;
        thread::spawn(move || {
            let mut c = Conn::connect(addr);
            c.set_timeout(Duration::from_secs(10));
            c.exchange(b"GET /sleep/1500 HTTP/1.1\r\nHost: t\r\n\r\n")
                .status
        })
    };
    scrape_until(
        &proxy,
        ms(1500),
        "a stream in flight",
        "shardgate_upstream_http2",
        |m| m.sum(STREAMS, &labels) == 1.0 && m.sum(CONNS, &labels) == 1.0,
    );
    assert_eq!(slow.join().unwrap(), 200);
    scrape_until(
        &proxy,
        ms(2000),
        "the stream ended",
        "shardgate_upstream_http2",
        |m| m.sum(STREAMS, &labels) == 0.0 && m.sum(CONNS, &labels) == 1.0,
    );

    // REFUSED_STREAM: one refused stream, no GOAWAY.
    assert_eq!(post(&proxy, "/refuse-head/m"), 200);
    let m = scrape_until(
        &proxy,
        ms(2000),
        "a refused stream",
        "shardgate_upstream_http2",
        |m| m.sum(REFUSED, &labels) == 1.0,
    );
    assert_eq!(m.sum(GOAWAYS, &labels), 0.0);

    // A graceful GOAWAY: counted once its connection is seen going away.
    let (status, _) = curl(&proxy, "/goaway", false, &[]);
    assert_eq!(status, 200);
    scrape_until(
        &proxy,
        ms(3000),
        "a GOAWAY",
        "shardgate_upstream_http2",
        |m| m.sum(GOAWAYS, &labels) == 1.0,
    );

    // A GOAWAY that leaves the stream out: a refused stream and a GOAWAY more.
    assert_eq!(post(&proxy, "/goaway-above/m"), 200);
    scrape_until(
        &proxy,
        ms(3000),
        "GOAWAY above the stream",
        "shardgate_upstream_http2",
        |m| m.sum(REFUSED, &labels) == 2.0 && m.sum(GOAWAYS, &labels) == 2.0,
    );
    let s = up.stats();
    assert_eq!(s["paths"]["/goaway-above/m"], 2, "{s}");
}
