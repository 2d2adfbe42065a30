//! The access log: one JSON line per request, written without ever blocking a shard on disk.
//!
//! Two kinds of thread take part. The process-wide `Writer` (started by the coordinator) owns one
//! std thread, `access-log`, that does every blocking write, to stdout or to a file opened with
//! `O_APPEND`. Each shard owns a `ShardLog`: it formats lines into its current buffer
//! (`line.rs`), and when the next line might not fit, or on `flush` (the shard's timer tick and
//! its drain), hands the buffer to the writer with `try_send` on a bounded, preallocated queue and
//! takes an empty one back from its own return channel. A shard owns at most `BUFFERS` buffers;
//! once they are all queued or being written (or the queue is full) the writer has fallen behind,
//! and the shard drops its current buffer's lines (counted by `dropped`) instead of waiting. In
//! steady state nothing is allocated: buffers, queue slots and return slots are all reused.
//!
//! SIGUSR1 → `Writer::reopen` re-opens the path for log rotation (rename, then signal); the writer
//! keeps the old file if the new one cannot be opened.

mod line;

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use crate::config::AccessLogTarget;

/// Bytes per buffer handed to the writer.
const BUF_SIZE: usize = 64 * 1024;
/// Buffers one shard may own, in hand, queued or being written.
const BUFFERS: usize = 8;
/// Messages the writer's queue holds (preallocated): room for `BUFFERS` from 128 shards.
const QUEUE: usize = 1024;

/// What one request leaves in the log.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub time: SystemTime,
    pub client: SocketAddr,
    pub method: &'a [u8],
    pub path: &'a [u8],
    /// The protocol the request came in: `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`.
    pub protocol: &'static str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub upstream: Option<SocketAddr>,
    pub upstream_time: Option<Duration>,
    pub total_time: Duration,
    pub request_id: &'a [u8],
    pub trace_id: Option<&'a [u8]>,
    pub shard: usize,
    pub route: &'a str,
    /// What the client's TLS connection negotiated; `None` on plain HTTP.
    pub tls: Option<&'a crate::tls::Negotiated>,
}

enum Msg {
    /// A full buffer and where to send it back once written.
    Lines(Vec<u8>, Sender<Vec<u8>>),
    Reopen,
    Stop,
}

// === impl Writer ===

/// The process-wide end: owns the writer thread.
pub struct Writer {
    /// `None` when the log is off.
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    /// Buffers dropped by all shards because the writer fell behind.
    dropped: Arc<AtomicU64>,
}

impl Writer {
    /// Opens the target (so a bad path fails here, at start) and starts the writer thread.
    pub fn start(target: &AccessLogTarget) -> io::Result<Writer> {
        let dropped = Arc::default();
        let sink = match target {
            AccessLogTarget::Off => {
                return Ok(Writer {
                    tx: None,
                    thread: None,
                    dropped,
                })
            }
            AccessLogTarget::Stdout => Sink::Stdout,
            AccessLogTarget::File(path) => Sink::File(open(path)?, path.clone()),
        };
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || run(rx, sink))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
            dropped,
        })
    }

    /// A log for one shard, to be moved into its thread.
    pub fn shard_log(&self) -> ShardLog {
        let inner = self.tx.as_ref().map(|tx| {
            let (back_tx, back_rx) = crossbeam_channel::bounded(BUFFERS);
            Inner {
                tx: tx.clone(),
                back_tx,
                back_rx,
                buf: RefCell::new(Vec::with_capacity(BUF_SIZE)),
                owned: Cell::new(1),
                dropped: Cell::new(0),
                total_dropped: self.dropped.clone(),
                clock: line::Clock::default(),
            }
        });
        ShardLog { inner }
    }

    /// Re-opens the file path (after a rotation renamed it); stdout and off ignore it.
    pub fn reopen(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Reopen);
        }
    }

    /// Buffers dropped so far by all shards because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything handed over so far, flushes, and joins the thread. Shards flush their
    /// own buffers first (on drain), or their lines since the last flush are not included.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Stop);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shut();
    }
}

enum Sink {
    Stdout,
    File(File, PathBuf),
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread: write each buffer, send it back empty; reopen on request.
fn run(rx: Receiver<Msg>, mut sink: Sink) {
    let mut failing = false;
    let mut write = |sink: &mut Sink, mut buf: Vec<u8>, back: Sender<Vec<u8>>| {
        let res = match sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&buf).and_then(|()| out.flush())
            }
            Sink::File(f, _) => f.write_all(&buf),
        };
        // Report the first error of a run of failures, not every buffer.
        if let Err(e) = &res {
            if !failing {
                eprintln!("access log: write failed: {e}");
            }
        }
        failing = res.is_err();
        buf.clear();
        let _ = back.try_send(buf);
    };
    for msg in rx.iter() {
        match msg {
            Msg::Lines(buf, back) => write(&mut sink, buf, back),
            Msg::Reopen => {
                if let Sink::File(file, path) = &mut sink {
                    match open(path) {
                        Ok(f) => *file = f,
                        Err(e) => eprintln!("access log: cannot reopen {}: {e}", path.display()),
                    }
                }
            }
            Msg::Stop => break,
        }
    }
    // Buffers handed over while stopping are written too.
    for msg in rx.try_iter() {
        if let Msg::Lines(buf, back) = msg {
            write(&mut sink, buf, back);
        }
    }
}

// === impl ShardLog ===

/// One shard's end of the log; `Send`, so it can be moved into the shard's thread.
pub struct ShardLog {
    /// `None` when the log is off.
    inner: Option<Inner>,
}

struct Inner {
    tx: Sender<Msg>,
    /// Handed to the writer with each buffer, which sends the buffer back on it empty.
    back_tx: Sender<Vec<u8>>,
    back_rx: Receiver<Vec<u8>>,
    /// The buffer lines are appended to.
    buf: RefCell<Vec<u8>>,
    /// Buffers this shard has allocated (at most `BUFFERS`).
    owned: Cell<usize>,
    dropped: Cell<u64>,
    total_dropped: Arc<AtomicU64>,
    clock: line::Clock,
}

impl ShardLog {
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Appends one line; never blocks (see the module doc for what happens when the writer lags).
    pub fn log(&self, e: &Entry<'_>) {
        let Some(inner) = &self.inner else { return };
        let mut buf = inner.buf.borrow_mut();
        if !buf.is_empty() && buf.len() + line::max_len(e) > buf.capacity() {
            inner.hand_off(&mut buf);
        }
        line::write(&mut buf, e, &inner.clock);
    }

    /// Hands buffered lines to the writer: on the shard's timer tick and on drain.
    pub fn flush(&self) {
        if let Some(inner) = &self.inner {
            let mut buf = inner.buf.borrow_mut();
            if !buf.is_empty() {
                inner.hand_off(&mut buf);
            }
        }
    }

    /// Buffers this shard dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.dropped.get())
    }
}

impl Inner {
    /// Swaps `buf` for an empty buffer and queues the full one, or drops its lines when every
    /// buffer this shard may own is still with the writer, or the writer's queue is full.
    fn hand_off(&self, buf: &mut Vec<u8>) {
        let empty = match self.back_rx.try_recv() {
            Ok(b) => b,
            Err(_) if self.owned.get() < BUFFERS => {
                self.owned.set(self.owned.get() + 1);
                Vec::with_capacity(BUF_SIZE)
            }
            Err(_) => return self.drop_lines(buf),
        };
        let full = std::mem::replace(buf, empty);
        if let Err(e) = self.tx.try_send(Msg::Lines(full, self.back_tx.clone())) {
            // Queue full or writer stopped: take the lines back to drop them, keep the spare.
            if let Msg::Lines(full, _) = e.into_inner() {
                let spare = std::mem::replace(buf, full);
                let _ = self.back_tx.try_send(spare);
                self.drop_lines(buf);
            }
        }
    }

    fn drop_lines(&self, buf: &mut Vec<u8>) {
        buf.clear();
        self.dropped.set(self.dropped.get() + 1);
        self.total_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for ShardLog {
    /// A shard that exits without a last flush still hands over its lines.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests;
