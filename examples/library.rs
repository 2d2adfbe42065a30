//! Library mode, end to end: a monoio program sends requests through `shardgate::embed` straight
//! to two upstreams it starts itself on 127.0.0.1 (no proxy in between). `alpha` answers;
//! `beta` accepts each connection and closes it without answering. The client balances
//! round-robin, retries the requests `beta` drops on `alpha`, ejects `beta` after three failures
//! in a row (its breaker opens), and the statistics show it all.
//!
//! ```text
//! cargo run --example library
//! ```

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use shardgate::embed::{Body, Client};

#[monoio::main(timer_enabled = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let alpha = start_upstream("alpha", true)?;
    let beta = start_upstream("beta", false)?;
    println!("upstreams: alpha on {alpha} (answers), beta on {beta} (drops every connection)");

    let client = Client::builder()
        .cluster("demo", &[&alpha, &beta])
        .route_prefix("/", "demo")
        .retries(1, &["connect", "reset"])
        .breaker(3, Duration::from_secs(30))
        .build()?;

    let retries = |c: &Client| c.stats().routes.values().map(|r| r.retries).sum::<u64>();
    for i in 1..=8 {
        let before = retries(&client);
        let req = http::Request::get(format!("http://demo.local/item/{i}")).body(Body::empty())?;
        match client.send(req).await {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.into_body().bytes().await?;
                let note = if retries(&client) > before {
                    " (beta dropped it: retried on alpha)"
                } else {
                    ""
                };
                let text = String::from_utf8_lossy(&body);
                println!("request {i}: {status} {}{note}", text.trim());
            }
            Err(e) => println!("request {i}: failed ({e}, {:?} side)", e.side()),
        }
    }

    let stats = client.stats();
    println!();
    for ((cluster, endpoint), e) in &stats.endpoints {
        let who = if *endpoint == alpha { "alpha" } else { "beta" };
        let breaker = ["closed", "open", "half-open"][usize::from(e.breaker_state().min(2))];
        println!(
            "{cluster}/{who}: {} responses, {} failures, {} connects, {} reuses, breaker {breaker}",
            e.total_requests(),
            e.failures,
            e.connects,
            e.reuses
        );
    }
    for (route, r) in &stats.routes {
        println!("route {route}: {} retries", r.retries);
    }
    Ok(())
}

/// A tiny upstream on 127.0.0.1:0 as a task of this thread: answers each request with
/// "hello from NAME" (keep-alive), or, when `answers` is false, closes each connection unanswered.
fn start_upstream(name: &'static str, answers: bool) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    monoio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            if answers {
                monoio::spawn(serve(conn, name));
            }
            // Not answering: `conn` is dropped here, closing the connection.
        }
    });
    Ok(addr)
}

/// Answers every request head on `conn` (GETs: no body) until the client closes.
async fn serve(mut conn: TcpStream, name: &str) {
    let body = format!("hello from {name}\n");
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let (res, b) = conn.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            let (res, _) = conn.write_all(answer.clone().into_bytes()).await;
            if res.is_err() {
                return;
            }
        }
    }
}
