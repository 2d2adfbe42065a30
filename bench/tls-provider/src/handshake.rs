//! Handshakes in memory: a buffered rustls client and server exchange flights through two
//! reused `Vec`s until neither has anything to send. The server's calls are timed on their own
//! (`server_ns`, thread CPU time) so its CPU can be told apart from the client's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Span;

use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection};

pub struct Outcome {
    pub server_ns: u64,
    pub total_ns: u64,
    pub resumed: bool,
}

/// Moves everything `from` has queued into `to`, through `wire` (reused).
fn pump_into_server(wire: &[u8], server: &mut ServerConnection) {
    let mut rd = wire;
    while !rd.is_empty() {
        server.read_tls(&mut rd).expect("server read_tls");
        server.process_new_packets().expect("server process");
    }
}

fn pump_into_client(wire: &[u8], client: &mut ClientConnection) {
    let mut rd = wire;
    while !rd.is_empty() {
        client.read_tls(&mut rd).expect("client read_tls");
        client.process_new_packets().expect("client process");
    }
}

pub fn one(
    server_cfg: &Arc<ServerConfig>,
    client_cfg: &Arc<ClientConfig>,
    wire: &mut [Vec<u8>; 2],
) -> Outcome {
    let start = Span::start();
    let mut client =
        ClientConnection::new(client_cfg.clone(), "localhost".try_into().unwrap()).expect("client");
    let t = Span::start();
    let mut server = ServerConnection::new(server_cfg.clone()).expect("server");
    let mut server_ns = t.ns();
    loop {
        let [to_server, to_client] = wire;
        to_server.clear();
        while client.wants_write() {
            client.write_tls(to_server).expect("client write_tls");
        }
        let t = Span::start();
        pump_into_server(to_server, &mut server);
        to_client.clear();
        while server.wants_write() {
            server.write_tls(to_client).expect("server write_tls");
        }
        server_ns += t.ns();
        pump_into_client(to_client, &mut client);
        if to_server.is_empty()
            && to_client.is_empty()
            && !client.is_handshaking()
            && !server.is_handshaking()
        {
            break;
        }
    }
    Outcome {
        server_ns,
        total_ns: start.ns(),
        resumed: server.handshake_kind() == Some(HandshakeKind::Resumed),
    }
}

pub struct Rate {
    pub count: u64,
    /// handshakes per second of server CPU
    pub server_per_s: f64,
    /// handshakes per second, client and server together on one core
    pub both_per_s: f64,
}

/// Runs handshakes for `dur` after a short warm-up. `want_resumed` checks each handshake was
/// (or was not) resumed, so a silent fallback to full handshakes cannot pass for resumption.
pub fn rate(
    server_cfg: &Arc<ServerConfig>,
    client_cfg: &Arc<ClientConfig>,
    dur: Duration,
    want_resumed: bool,
) -> Rate {
    let mut wire = [Vec::with_capacity(16 << 10), Vec::with_capacity(16 << 10)];
    // Warm-up; for resumption it also fills the client's ticket store.
    let warm = Instant::now();
    while warm.elapsed() < dur / 10 {
        one(server_cfg, client_cfg, &mut wire);
    }
    let (mut count, mut server_ns, mut total_ns) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < dur {
        let o = one(server_cfg, client_cfg, &mut wire);
        assert_eq!(o.resumed, want_resumed, "handshake resumed = {}", o.resumed);
        count += 1;
        server_ns += o.server_ns;
        total_ns += o.total_ns;
    }
    Rate {
        count,
        server_per_s: count as f64 * 1e9 / server_ns as f64,
        both_per_s: count as f64 * 1e9 / total_ns as f64,
    }
}
