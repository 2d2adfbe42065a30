//! `grpc-upstream`: a small, fast gRPC-shaped HTTP/2 origin for the benchmarks (bench/grpc.sh),
//! where a Python gRPC server would be the bottleneck. h2c with prior knowledge; every request's
//! body is read and dropped, and the answer is what a unary gRPC call returns: HEADERS (`:status
//! 200`, `content-type: application/grpc`), one DATA frame holding one uncompressed message of
//! `--message-size` bytes, and the trailers `grpc-status: 0`. It runs `--threads N` OS threads,
//! each a monoio runtime with its own `SO_REUSEPORT` listener; `h2` does the framing.
//!
//! ```text
//! grpc-upstream --listen 127.0.0.1:9002 [--threads N] [--message-size BYTES]
//! ```
//!
//! stdout: `listening on ADDR` once every thread has bound (the real port, also for port 0).

use std::net::SocketAddr;
use std::sync::mpsc;

use bytes::Bytes;
use clap::Parser;
use http::{HeaderMap, HeaderValue, Response};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

#[derive(Parser)]
#[command(
    name = "grpc-upstream",
    about = "A gRPC-shaped HTTP/2 (h2c) origin for benchmarks"
)]
struct Args {
    /// Address to listen on (port 0: a free port, printed)
    #[arg(long, default_value = "127.0.0.1:9002")]
    listen: SocketAddr,
    /// Threads, each with its own listener
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Bytes of the one response message
    #[arg(long, default_value_t = 16)]
    message_size: usize,
}

fn main() {
    let args = Args::parse();
    let mut addr = match std::net::TcpListener::bind(args.listen).and_then(|l| l.local_addr()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("grpc-upstream: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let mut frame = vec![0u8; 5 + args.message_size];
    frame[1..5].copy_from_slice(&(args.message_size as u32).to_be_bytes());
    let frame = Bytes::from(frame);
    let mut handles = Vec::new();
    for id in 0..args.threads.max(1) {
        let (tx, rx) = mpsc::channel();
        let frame = frame.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("grpc-upstream-{id}"))
                .spawn(move || run_thread(addr, frame, tx))
                .expect("spawn thread"),
        );
        match rx.recv() {
            Ok(Ok(local)) => addr = local,
            Ok(Err(e)) => {
                eprintln!("grpc-upstream: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("grpc-upstream: thread {id} failed to start");
                std::process::exit(1);
            }
        }
    }
    println!("listening on {addr}");
    for h in handles {
        let _ = h.join();
    }
}

fn run_thread(addr: SocketAddr, frame: Bytes, ready: mpsc::Sender<std::io::Result<SocketAddr>>) {
    let mut rt = match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let opts = ListenerOpts::new().reuse_port(true).backlog(4096);
        let listener = match TcpListener::bind_with_config(addr, &opts) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(listener.local_addr());
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            monoio::spawn(serve(stream, frame.clone()));
        }
    });
}

/// Serves one connection until the client closes it.
async fn serve(stream: TcpStream, frame: Bytes) {
    let io = monoio_compat::StreamWrapper::new(stream);
    let Ok(mut conn) = h2::server::Builder::new()
        .max_concurrent_streams(1000)
        .handshake::<_, Bytes>(io)
        .await
    else {
        return;
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        let frame = frame.clone();
        let trailers = trailers.clone();
        monoio::spawn(async move {
            let mut body = req.into_body();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let resp = Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .expect("a static response");
            let Ok(mut send) = respond.send_response(resp, false) else {
                return;
            };
            // The message fits the initial windows (65 535 bytes by default) for bench sizes.
            send.reserve_capacity(frame.len());
            if send.send_data(frame, false).is_ok() {
                let _ = send.send_trailers(trailers);
            }
        });
    }
}
