//! Access-log tests: real writer threads writing real files in a private temp directory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("shardgate-log-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entry(path: &[u8]) -> Entry<'_> {
    Entry {
        time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        client: "192.0.2.7:51000".parse().unwrap(),
        method: b"GET",
        path,
        protocol: "HTTP/2",
        status: 200,
        bytes_in: 120,
        bytes_out: 5_000,
        upstream: Some("[::1]:8080".parse().unwrap()),
        upstream_time: Some(Duration::from_micros(2_345)),
        total_time: Duration::from_micros(3_001),
        request_id: b"0123abcd",
        trace_id: Some(b"trace-1"),
        shard: 1,
        route: "api",
        tls: None,
    }
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect()
}

#[test]
fn lines_are_json_with_every_field() {
    let dir = TempDir::new();
    let file = dir.0.join("access.log");
    let writer = Writer::start(&AccessLogTarget::File(file.clone())).unwrap();
    let log = writer.shard_log();
    assert!(log.enabled());
    let tls = crate::tls::Negotiated {
        version: "TLSv1.3",
        cipher: "TLS13_AES_128_GCM_SHA256",
        sni: Some("api.example".into()),
        client_cert: Some(crate::tls::ClientCert {
            subject: "CN=client \"a\"".into(),
            xfcc: Box::from(&b"Hash=00"[..]),
        }),
        resumed: false,
    };
    let mut first = entry(b"/a?b=c");
    first.tls = Some(&tls);
    log.log(&first);
    let mut bare = entry(b"/");
    bare.upstream = None;
    bare.upstream_time = None;
    bare.trace_id = None;
    bare.status = 503;
    log.log(&bare);
    log.flush();
    writer.stop();

    let got = lines(&file);
    assert_eq!(got.len(), 2);
    let want = serde_json::json!({
        "time": "2023-11-14T22:13:20.123Z",
        "client": "192.0.2.7:51000",
        "method": "GET",
        "path": "/a?b=c",
        "protocol": "HTTP/2",
        "status": 200,
        "bytes_in": 120,
        "bytes_out": 5000,
        "upstream": "[::1]:8080",
        "upstream_ms": 2.345,
        "total_ms": 3.001,
        "request_id": "0123abcd",
        "trace_id": "trace-1",
        "shard": 1,
        "route": "api",
        "tls_version": "TLSv1.3",
        "tls_cipher": "TLS13_AES_128_GCM_SHA256",
        "sni": "api.example",
        "client_cert": "CN=client \"a\"",
    });
    assert_eq!(got[0], want);
    let absent = [
        "upstream",
        "upstream_ms",
        "trace_id",
        "tls_version",
        "tls_cipher",
        "sni",
        "client_cert",
    ];
    for field in absent {
        assert_eq!(got[1][field], Value::Null, "{field}");
    }
    assert_eq!(got[1]["status"], 503);
    assert_eq!(
        got[1].as_object().unwrap().len(),
        want.as_object().unwrap().len()
    );
}

#[test]
fn hostile_paths_stay_one_json_line() {
    let dir = TempDir::new();
    let file = dir.0.join("access.log");
    let writer = Writer::start(&AccessLogTarget::File(file.clone())).unwrap();
    let log = writer.shard_log();
    let hostile: &[u8] = b"/\"}\n{\"status\":1\r\t\\x\x00\x1b\x7f\xff\xc3\xa9</script>";
    let mut e = entry(hostile);
    e.method = b"G\"ET\n";
    e.request_id = b"\xfe\xfe";
    e.trace_id = Some(b"\\");
    e.route = "r\"\u{2028}";
    log.log(&e);
    drop(log); // a ShardLog flushes when dropped
    writer.stop();

    let got = lines(&file);
    assert_eq!(got.len(), 1);
    let path = "/\"}\n{\"status\":1\r\t\\x\u{0}\u{1b}\u{7f}\u{fffd}\u{e9}</script>";
    assert_eq!(got[0]["path"], path);
    assert_eq!(got[0]["status"], 200);
    assert_eq!(got[0]["method"], "G\"ET\n");
    assert_eq!(got[0]["request_id"], "\u{fffd}\u{fffd}");
    assert_eq!(got[0]["trace_id"], "\\");
    assert_eq!(got[0]["route"], "r\"\u{2028}");
}

#[test]
fn reopen_after_rename_writes_to_the_new_file() {
    let dir = TempDir::new();
    let file = dir.0.join("access.log");
    let rotated = dir.0.join("access.log.1");
    let writer = Writer::start(&AccessLogTarget::File(file.clone())).unwrap();
    let log = writer.shard_log();
    log.log(&entry(b"/before"));
    log.flush();
    std::fs::rename(&file, &rotated).unwrap();
    writer.reopen();
    log.log(&entry(b"/after"));
    log.flush();
    writer.stop();

    let old = lines(&rotated);
    let new = lines(&file);
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["path"], "/before");
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["path"], "/after");
}

#[test]
fn stop_writes_every_handed_over_buffer() {
    let dir = TempDir::new();
    let file = dir.0.join("access.log");
    let writer = Writer::start(&AccessLogTarget::File(file.clone())).unwrap();
    let logs = [writer.shard_log(), writer.shard_log()];
    // About 150 KiB per shard: several hand-offs, well under the 8 buffers that may be queued.
    for i in 0..1_000u32 {
        let path = format!("/item/{i}");
        let mut e = entry(path.as_bytes());
        e.shard = (i % 2) as usize;
        logs[e.shard].log(&e);
    }
    for log in &logs {
        log.flush();
    }
    writer.stop();

    let got = lines(&file);
    assert_eq!(got.len(), 1_000);
    assert_eq!(logs[0].dropped() + logs[1].dropped(), 0);
    let mut paths: Vec<String> = got
        .iter()
        .map(|l| l["path"].as_str().unwrap().into())
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 1_000);
}

/// A `Writer` whose queue the test reads itself, with no writer thread.
fn fake_writer() -> (Writer, Receiver<Msg>) {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let writer = Writer {
        tx: Some(tx),
        thread: None,
        dropped: Arc::default(),
    };
    (writer, rx)
}

/// Plays the writer thread: every queued buffer goes back empty.
fn recycle(rx: &Receiver<Msg>) -> usize {
    let mut n = 0;
    for msg in rx.try_iter() {
        if let Msg::Lines(mut buf, back) = msg {
            buf.clear();
            back.try_send(buf).unwrap();
            n += 1;
        }
    }
    n
}

fn line_len(e: &Entry<'_>) -> usize {
    let mut buf = Vec::new();
    line::write(&mut buf, e, &line::Clock::default());
    buf.len()
}

#[test]
fn a_writer_that_falls_behind_costs_lines_not_waiting() {
    let (writer, rx) = fake_writer();
    let log = writer.shard_log();
    let e = entry(b"/x");
    // A buffer takes a line while one more of max_len would still fit.
    let per_buffer = (BUF_SIZE - line::max_len(&e)) / line_len(&e) + 1;
    for _ in 0..per_buffer * (BUFFERS + 2) {
        log.log(&e);
    }
    assert_eq!(
        rx.len(),
        BUFFERS - 1,
        "all but the buffer in hand are queued"
    );
    assert_eq!(log.dropped(), 2);
    assert_eq!(writer.dropped(), 2);

    // The writer catches up: buffers come back and nothing more is dropped.
    assert_eq!(recycle(&rx), BUFFERS - 1);
    for _ in 0..per_buffer * 3 {
        log.log(&e);
    }
    log.flush();
    assert_eq!(log.dropped(), 2);
    assert_eq!(rx.len(), 4);
    drop(rx);
    // The writer is gone: lines are dropped, the shard goes on.
    log.log(&e);
    log.flush();
    assert_eq!(log.dropped(), 3);
}

#[test]
fn steady_state_logging_does_not_allocate() {
    let (writer, rx) = fake_writer();
    let log = writer.shard_log();
    let e = entry(b"/some/longer/path?with=a&query=string");
    // A writer that keeps up: every buffer comes back before the next hand-off.
    let run = |lines: usize| {
        for _ in 0..lines {
            log.log(&e);
            recycle(&rx);
        }
        log.flush();
        recycle(&rx);
    };
    run(2_000); // warm up: the shard allocates the buffers it needs
    let n = crate::stats::alloc_probe::allocations_in(|| run(5_000));
    assert_eq!(n, 0);
}

#[test]
fn off_logs_nothing() {
    let writer = Writer::start(&AccessLogTarget::Off).unwrap();
    let log = writer.shard_log();
    assert!(!log.enabled());
    log.log(&entry(b"/"));
    log.flush();
    assert_eq!(log.dropped(), 0);
    writer.reopen();
    writer.stop();
}

#[test]
fn shard_log_is_send() {
    fn send<T: Send>(_: &T) {}
    let writer = Writer::start(&AccessLogTarget::Off).unwrap();
    send(&writer.shard_log());
}
