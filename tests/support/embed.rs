//! Library-mode test helpers (`shardgate::embed` through its public API): a monoio runtime per
//! test, requests and bodies read to their end, polling with a deadline on the client's runtime,
//! a client from TOML text.

use std::future::Future;
use std::time::{Duration, Instant};

use shardgate::embed::{Body, Client, Error};

use super::{temp_file, TempFile};

/// Runs `f` to its end on a fresh monoio runtime with the timer on.
pub fn block_on<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("a monoio runtime")
        .block_on(f)
}

/// A GET of `path` on host `svc.test`, without a body.
pub fn get_request(path: &str) -> shardgate::Request {
    http::Request::get(format!("http://svc.test{path}"))
        .body(Body::empty())
        .unwrap()
}

/// Polls `cond` every few milliseconds on the client's runtime until it holds (10 s at most).
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Requests of `client` waiting for a connection to `endpoint` of cluster `svc`, so far.
pub fn pool_waits(client: &Client, endpoint: &str) -> u64 {
    let stats = client.stats();
    stats.endpoints[&("svc".to_string(), endpoint.to_string())].pool_waits
}

/// Sends a GET and reads its body to the end.
pub async fn fetch(client: &Client, path: &str) -> Result<(u16, Vec<u8>), Error> {
    let resp = client.send(get_request(path)).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().bytes().await?))
}

/// A client from TOML text (written to a temp file, read by `Client::from_file`).
pub fn client_from_toml(tag: &str, text: &str) -> (Client, TempFile) {
    let file = temp_file(tag, text);
    let client = Client::from_file(file.path()).unwrap();
    (client, file)
}
