//! Library mode's configuration (`shardgate::embed`, public API only, scripted upstreams on
//! 127.0.0.1): the proxy's TOML (routes with rewrite, header edits and direct answers, rate
//! limits, upstream TLS), a reload keeping pools, the builder's errors, HTTP/2 clusters refused,
//! the background tasks ending with the client (DNS discovery: tests/library_discovery.rs). Both
//! drivers (`MONOIO_FORCE_LEGACY_DRIVER=1`).

mod support;

use std::time::Duration;

use shardgate::embed::{Body, Client, Error};
use support::embed::*;
use support::*;

#[test]
fn a_reload_keeps_the_pools_of_unchanged_endpoints() {
    let up = Upstream::fixed("same");
    let other = Upstream::fixed("other");
    let file = |extra: &str| {
        format!(
            "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{}\"]\n{extra}\
             [[routes]]\nname = \"all\"\npath_prefix = \"/\"\ncluster = \"svc\"\n",
            up.addr
        )
    };
    let first = temp_file("library-reload-1", &file(""));
    let second = temp_file(
        "library-reload-2",
        &file(&format!(
            "[[clusters]]\nname = \"new\"\nendpoints = [\"{}\"]\n",
            other.addr
        )),
    );
    let first_path = first.path().to_string();
    let second_path = second.path().to_string();
    block_on(async move {
        let client = Client::from_file(&first_path).unwrap();
        assert_eq!(fetch(&client, "/a").await.unwrap().1, b"same");
        let next = shardgate::embed::Config::from_file(&second_path).unwrap();
        client.reload(next).unwrap();
        assert_eq!(fetch(&client, "/b").await.unwrap().1, b"same");
        let to_new = client.send_to("new", get_request("/c")).await.unwrap();
        assert_eq!(to_new.into_body().bytes().await.unwrap(), b"other");
    });
    assert_eq!(up.request_count(), 2);
    assert_eq!(
        up.accepted(),
        1,
        "the same connection served both sides of the reload"
    );
}

#[test]
fn a_route_rate_limit_refuses_with_retry_after() {
    let up = Upstream::fixed("ok");
    let file = temp_file(
        "library-ratelimit",
        &format!(
            "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{}\"]\n\
             [[routes]]\nname = \"limited\"\npath_prefix = \"/\"\ncluster = \"svc\"\n\
             rate_limit = {{ rate = \"1/s\", burst = 1 }}\n",
            up.addr
        ),
    );
    let path = file.path().to_string();
    block_on(async move {
        let client = Client::from_file(&path).unwrap();
        assert_eq!(fetch(&client, "/").await.unwrap().0, 200);
        match fetch(&client, "/").await {
            Err(Error::RateLimited { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
    });
    assert_eq!(up.request_count(), 1, "the refused request never left");
}

#[test]
fn an_https_upstream_is_reached_over_one_reused_tls_connection() {
    let certs = support::certs::Certs::new("lib-up");
    let leaf = certs.leaf("upstream", &["localhost"]);
    let up = support::tls_upstream::TlsUpstream::start(&leaf, None);
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"web\"\n\
         endpoints = [\"localhost:{}\"]\ntls = {{ ca = {:?} }}\n",
        up.addr.port(),
        certs.ca()
    );
    block_on(async {
        let (client, _file) = client_from_toml("library-tls", &text);
        for i in 0..4 {
            let (status, body) = fetch(&client, &format!("/r{i}")).await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(
                String::from_utf8(body).unwrap(),
                format!("sni=localhost client_cert=no path=/r{i}")
            );
        }
    });
    let seen = up.seen();
    assert_eq!(
        (seen.accepted, seen.handshakes),
        (1, 1),
        "one connection, one handshake"
    );
}

#[test]
fn routes_rewrite_the_path_edit_headers_and_answer_directly() {
    let up = Upstream::echo_head();
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\nendpoints = [\"{}\"]\n\
         [[routes]]\nname = \"health\"\npath = \"/healthz\"\n\
         direct = {{ status = 200, body = \"ok\\n\" }}\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\ncluster = \"svc\"\n\
         rewrite_prefix = \"/v2/\"\nrequest_headers_add = {{ \"x-route\" = \"api\" }}\n\
         request_headers_remove = [\"cookie\"]\n",
        up.addr
    );
    block_on(async {
        let (client, _file) = client_from_toml("library-routes", &text);
        let (status, body) = fetch(&client, "/healthz").await.unwrap();
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"ok\n"[..]),
            "direct answer"
        );
        let req = http::Request::get("http://svc.test/api/users?id=7")
            .header("cookie", "secret=1")
            .header("x-keep", "yes")
            .body(Body::empty())
            .unwrap();
        let head = client
            .send(req)
            .await
            .unwrap()
            .into_body()
            .bytes()
            .await
            .unwrap();
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /v2/users?id=7 http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nhost: svc.test\r\n"), "{head}");
        assert!(head.contains("\r\nx-route: api\r\n"), "{head}");
        assert!(head.contains("\r\nx-keep: yes\r\n"), "{head}");
        assert!(!head.contains("cookie"), "{head}");
    });
    assert_eq!(
        up.request_count(),
        1,
        "the direct answer never went upstream"
    );
}

#[test]
fn the_health_checks_stop_with_the_client() {
    let up = Upstream::fixed("ok");
    let addr = up.addr.to_string();
    let probes_after_drop = block_on(async {
        let client = Client::builder()
            .cluster("svc", &[&addr])
            .route_prefix("/", "svc")
            .health_check("tcp", Duration::from_millis(10))
            .build()
            .unwrap();
        until("two probes", || up.accepted() >= 2).await;
        drop(client);
        let at_drop = up.accepted();
        // The probing task naps at most 250 ms between looks at the (now gone) client; watch
        // twice that long on the same runtime, which keeps running its tasks.
        monoio::time::sleep(Duration::from_millis(600)).await;
        up.accepted() - at_drop
    });
    assert!(
        probes_after_drop <= 1,
        "{probes_after_drop} probes after the drop"
    );
}

#[test]
fn the_builder_refuses_bad_settings_with_a_message() {
    block_on(async {
        let e = Client::builder()
            .cluster("svc", &["nonsense"])
            .build()
            .unwrap_err();
        assert!(e.contains("cluster svc: endpoint \"nonsense\""), "{e}");
        let e = Client::builder()
            .route_prefix("/", "missing")
            .build()
            .unwrap_err();
        assert!(e.contains("no cluster \"missing\""), "{e}");
        let e = Client::builder()
            .cluster("svc", &["127.0.0.1:1"])
            .retries(1, &["sometimes"])
            .build()
            .unwrap_err();
        assert!(e.starts_with("retries: "), "{e}");
        let e = Client::builder()
            .cluster("svc", &["127.0.0.1:1"])
            .breaker(0, Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(e.starts_with("breaker: "), "{e}");
        let e = Client::builder().build().unwrap_err();
        assert!(e.contains("upstream"), "no cluster at all: {e}");
    });
}

#[test]
fn an_http2_cluster_without_tls_for_h2_is_refused_with_its_location() {
    // HTTP/2 clusters work in library mode (tests/library_h2.rs); a mistaken one is refused as
    // the proxy refuses it.
    let file = temp_file(
        "library-h2",
        "listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"svc\"\n\
         endpoints = [\"127.0.0.1:9\"]\nprotocol = \"h2\"\n",
    );
    let path = file.path().to_string();
    let err = block_on(async move { Client::from_file(&path).unwrap_err() });
    assert!(err.contains("clusters[0].protocol"), "{err}");
    assert!(err.contains("TLS"), "{err}");
}
