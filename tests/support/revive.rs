//! An upstream that can die and come back on the same address: `kill` closes its listener and
//! every connection (connects are refused), `revive` listens on the same port again. Answers
//! every request `200` with the body `NAME` (health probes too). Included with
//! `#[path = "support/revive.rs"] mod revive;` by the tests that need it (recovery, state_log).
#![allow(dead_code)]

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{response, Conn};

/// One life of the server: its listener thread's stop flag and the connections it accepted.
struct Life {
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

pub struct Revivable {
    pub addr: SocketAddr,
    name: String,
    /// Proxied requests answered (health probes excluded), over every life.
    hits: Arc<AtomicUsize>,
    life: Option<Life>,
}

impl Revivable {
    pub fn start(name: &str) -> Revivable {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut r = Revivable {
            addr: listener.local_addr().unwrap(),
            name: name.to_string(),
            hits: Arc::default(),
            life: None,
        };
        r.serve(listener);
        r
    }

    /// Proxied requests answered so far (probes excluded).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection: the address refuses connections.
    pub fn kill(&mut self) {
        let Some(life) = self.life.take() else { return };
        life.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for s in life.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // The listener is closed once a connect is refused.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
            assert!(Instant::now() < deadline, "{} still listening", self.addr);
            thread::yield_now();
        }
    }

    /// Listens on the same address again.
    pub fn revive(&mut self) {
        assert!(self.life.is_none(), "revive of a live server");
        let listener =
            TcpListener::bind(self.addr).unwrap_or_else(|e| panic!("rebinding {}: {e}", self.addr));
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let life = Life {
            stop: Arc::default(),
            streams: Arc::default(),
        };
        let (stop, streams) = (life.stop.clone(), life.streams.clone());
        let (name, hits) = (self.name.clone(), self.hits.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(s) = stream.try_clone() {
                    streams.lock().unwrap().push(s);
                }
                let (name, hits) = (name.clone(), hits.clone());
                thread::spawn(move || {
                    let mut c = Conn::new(stream);
                    while let Ok(req) = c.read_request() {
                        if req.header("user-agent") != Some("shardgate-health") {
                            hits.fetch_add(1, Ordering::SeqCst);
                        }
                        let reply = response(200, &[("X-Endpoint", &name)], name.as_bytes());
                        if c.send(&reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        self.life = Some(life);
    }
}

impl Drop for Revivable {
    fn drop(&mut self) {
        if let Some(life) = self.life.take() {
            life.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
            for s in life.streams.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}
