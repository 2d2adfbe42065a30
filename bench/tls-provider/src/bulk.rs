//! Bulk records after the handshake: the server encrypts a 64 KiB body in 16 KiB records and
//! decrypts one the client sent, through the buffered API (`ServerConnection::writer()` +
//! `write_tls`, `read_tls` + `process_new_packets` + `reader()`) or the unbuffered one
//! (`UnbufferedServerConnection`: `WriteTraffic::encrypt` into a buffer we own,
//! `process_tls_records` over a buffer we own). Only the server's calls are timed and their heap
//! allocations counted (thread CPU time); the buffered client on the other side is not.

use std::hint::black_box;
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::ConnectionState;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use crate::alloc;
use crate::clock::Span;

pub const BODY: usize = 64 << 10;
pub const RECORD: usize = 16 << 10;
const RECORDS: u64 = (BODY / RECORD) as u64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Api {
    Buffered,
    Unbuffered,
}

pub struct Figures {
    pub enc_mb_s: f64,
    pub dec_mb_s: f64,
    /// one encrypt plus one decrypt of the body, per second of server CPU, in MB of body
    pub both_mb_s: f64,
    pub enc_allocs_per_record: f64,
    pub dec_allocs_per_record: f64,
}

#[derive(Default)]
struct Totals {
    rounds: u64,
    enc_ns: u64,
    dec_ns: u64,
    enc_allocs: u64,
    dec_allocs: u64,
}

impl Totals {
    fn figures(&self) -> Figures {
        let bytes = (self.rounds * BODY as u64) as f64;
        Figures {
            enc_mb_s: bytes * 1e3 / self.enc_ns as f64,
            dec_mb_s: bytes * 1e3 / self.dec_ns as f64,
            both_mb_s: bytes * 1e3 / (self.enc_ns + self.dec_ns) as f64,
            enc_allocs_per_record: self.enc_allocs as f64 / (self.rounds * RECORDS) as f64,
            dec_allocs_per_record: self.dec_allocs as f64 / (self.rounds * RECORDS) as f64,
        }
    }
}

/// Feeds TLS bytes to the client and drains its plaintext (rustls refuses to read more TLS
/// while 16 KiB of plaintext wait). Returns the plaintext length; copies it into `check` if given.
fn feed_client(
    wire: &[u8],
    client: &mut ClientConnection,
    scratch: &mut [u8],
    mut check: Option<&mut Vec<u8>>,
) -> usize {
    let mut rd = wire;
    let mut got = 0;
    while !rd.is_empty() {
        client.read_tls(&mut rd).expect("client read_tls");
        client.process_new_packets().expect("client process");
        loop {
            match client.reader().read(scratch) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if let Some(c) = check.as_deref_mut() {
                        c.extend_from_slice(&scratch[..n]);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("client read: {e}"),
            }
        }
    }
    got
}

fn client_send(client: &mut ClientConnection, body: &[u8], wire: &mut Vec<u8>) {
    wire.clear();
    client.writer().write_all(body).expect("client write");
    while client.wants_write() {
        client.write_tls(wire).expect("client write_tls");
    }
}

fn body() -> Vec<u8> {
    (0..BODY).map(|i| (i * 31 % 251) as u8).collect()
}

pub fn run(
    api: Api,
    server_cfg: &Arc<ServerConfig>,
    client_cfg: &Arc<ClientConfig>,
    dur: Duration,
) -> Figures {
    match api {
        Api::Buffered => buffered(server_cfg, client_cfg, dur),
        Api::Unbuffered => unbuffered(server_cfg, client_cfg, dur),
    }
}

fn new_client(cfg: &Arc<ClientConfig>) -> ClientConnection {
    ClientConnection::new(cfg.clone(), "localhost".try_into().unwrap()).expect("client")
}

// === buffered ===

fn buffered(
    server_cfg: &Arc<ServerConfig>,
    client_cfg: &Arc<ClientConfig>,
    dur: Duration,
) -> Figures {
    let mut client = new_client(client_cfg);
    let mut server = ServerConnection::new(server_cfg.clone()).expect("server");
    let mut wire = Vec::with_capacity(BODY + 4096);
    let mut back = Vec::with_capacity(BODY + 4096);
    while client.is_handshaking()
        || server.is_handshaking()
        || client.wants_write()
        || server.wants_write()
    {
        wire.clear();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let mut rd = &wire[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            server.process_new_packets().unwrap();
        }
        back.clear();
        while server.wants_write() {
            server.write_tls(&mut back).unwrap();
        }
        let mut rd = &back[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
    }
    let body = body();
    let mut scratch = vec![0u8; BODY];
    let mut plain = vec![0u8; BODY];
    let mut t = Totals::default();
    let warm_until = dur / 10;
    let start = Instant::now();
    loop {
        let warm = start.elapsed() < warm_until;
        if !warm && start.elapsed() >= dur + warm_until {
            break;
        }
        // server encrypts the body
        let (a, s) = (alloc::snapshot(), Span::start());
        server.writer().write_all(&body).expect("server write");
        back.clear();
        while server.wants_write() {
            server.write_tls(&mut back).expect("server write_tls");
        }
        let (enc_ns, enc_allocs) = (s.ns(), alloc::snapshot() - a);
        let mut check = (t.rounds == 0).then(Vec::new);
        assert_eq!(
            feed_client(&back, &mut client, &mut scratch, check.as_mut()),
            BODY
        );
        assert!(check.is_none_or(|c| c == body), "client got another body");

        // server decrypts the client's body
        client_send(&mut client, &body, &mut wire);
        let (a, s) = (alloc::snapshot(), Span::start());
        let mut rd = &wire[..];
        let mut got = 0;
        while !rd.is_empty() {
            server.read_tls(&mut rd).expect("server read_tls");
            server.process_new_packets().expect("server process");
            loop {
                match server.reader().read(&mut plain[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("server read: {e}"),
                }
            }
        }
        let (dec_ns, dec_allocs) = (s.ns(), alloc::snapshot() - a);
        assert_eq!(got, BODY);
        assert!(t.rounds > 0 || plain == body, "server got another body");
        if !warm {
            t.rounds += 1;
            t.enc_ns += enc_ns;
            t.dec_ns += dec_ns;
            t.enc_allocs += enc_allocs;
            t.dec_allocs += dec_allocs;
        }
    }
    t.figures()
}

// === unbuffered ===

enum Step {
    More,
    Blocked,
    Traffic,
}

fn unbuffered(
    server_cfg: &Arc<ServerConfig>,
    client_cfg: &Arc<ClientConfig>,
    dur: Duration,
) -> Figures {
    let mut client = new_client(client_cfg);
    let mut server = UnbufferedServerConnection::new(server_cfg.clone()).expect("server");
    let mut incoming: Vec<u8> = Vec::with_capacity(BODY + 4096);
    let mut outgoing = vec![0u8; BODY + 4096];
    let mut out_used = 0;
    let mut scratch = vec![0u8; BODY];
    // Handshake: the server runs until it may send application data and the client is done.
    loop {
        while client.wants_write() {
            client.write_tls(&mut incoming).unwrap();
        }
        let traffic = loop {
            let status = server.process_tls_records(&mut incoming);
            let discard = status.discard;
            let step = match status.state.expect("server handshake") {
                ConnectionState::EncodeTlsData(mut e) => {
                    out_used += e.encode(&mut outgoing[out_used..]).expect("encode");
                    Step::More
                }
                ConnectionState::TransmitTlsData(tx) => {
                    feed_client(&outgoing[..out_used], &mut client, &mut scratch, None);
                    out_used = 0;
                    tx.done();
                    Step::More
                }
                ConnectionState::BlockedHandshake => Step::Blocked,
                ConnectionState::WriteTraffic(_) => Step::Traffic,
                other => panic!("unexpected state in handshake: {other:?}"),
            };
            incoming.drain(..discard);
            match step {
                Step::More => continue,
                Step::Blocked => break false,
                Step::Traffic => break true,
            }
        };
        if traffic && !client.is_handshaking() && !client.wants_write() && incoming.is_empty() {
            break;
        }
    }

    let body = body();
    let mut t = Totals::default();
    let warm_until = dur / 10;
    let start = Instant::now();
    loop {
        let warm = start.elapsed() < warm_until;
        if !warm && start.elapsed() >= dur + warm_until {
            break;
        }
        // server encrypts the body, one 16 KiB record per call, into `outgoing`
        let (a, s) = (alloc::snapshot(), Span::start());
        let mut n = 0;
        match server
            .process_tls_records(&mut [])
            .state
            .expect("server state")
        {
            ConnectionState::WriteTraffic(mut w) => {
                for chunk in body.chunks(RECORD) {
                    n += w.encrypt(chunk, &mut outgoing[n..]).expect("encrypt");
                }
            }
            other => panic!("expected WriteTraffic, got {other:?}"),
        }
        let (enc_ns, enc_allocs) = (s.ns(), alloc::snapshot() - a);
        let mut check = (t.rounds == 0).then(Vec::new);
        assert_eq!(
            feed_client(&outgoing[..n], &mut client, &mut scratch, check.as_mut()),
            BODY
        );
        assert!(check.is_none_or(|c| c == body), "client got another body");

        // server decrypts the client's body from `incoming`
        client_send(&mut client, &body, &mut incoming);
        let (a, s) = (alloc::snapshot(), Span::start());
        let (mut pos, mut got, mut sum) = (0, 0, 0u8);
        while pos < incoming.len() {
            let status = server.process_tls_records(&mut incoming[pos..]);
            let mut discard = status.discard;
            match status.state.expect("server state") {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(rec) = r.next_record() {
                        let rec = rec.expect("record");
                        got += rec.payload.len();
                        sum = sum.wrapping_add(rec.payload[rec.payload.len() - 1]);
                        discard += rec.discard;
                    }
                }
                ConnectionState::WriteTraffic(_) => {}
                other => panic!("expected ReadTraffic, got {other:?}"),
            }
            assert!(discard > 0, "server made no progress");
            pos += discard;
        }
        black_box(sum);
        let (dec_ns, dec_allocs) = (s.ns(), alloc::snapshot() - a);
        assert_eq!(got, BODY);
        if !warm {
            t.rounds += 1;
            t.enc_ns += enc_ns;
            t.dec_ns += dec_ns;
            t.enc_allocs += enc_allocs;
            t.dec_allocs += dec_allocs;
        }
    }
    t.figures()
}
