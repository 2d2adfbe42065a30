//! Certificates that reload by themselves: every `tls_watch_interval` (the coordinator's timer,
//! never a shard) the certificate, key and client CA file of every TLS listener is looked at
//! (mtime, size, inode: a `stat` each, symlinks followed as certbot's `live/` needs); a change that
//! held still for one whole interval (so a file written in two steps is never read half-way)
//! reloads the certificates alone (`Coordinator::reload_certificates` in `reload`:
//! `config::check_tls` on the running config, then the usual config broadcast, in which shards
//! rebuild only the acceptors whose material changed). A reload that fails says `FILE: message`
//! once per change and the old certificates keep serving. Also what the expiry gauge shows.
//! Coordinator thread only.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::Config;
use crate::stats::CertificateExpiry;

/// What a watched file looked like; `None` in a list when it could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: SystemTime,
    size: u64,
    ino: u64,
}

/// The watched files, as last loaded, and a change waiting to hold still.
#[derive(Debug, Default)]
pub(super) struct CertWatch {
    files: Vec<PathBuf>,
    /// `files` as they were when last loaded (or last found changed).
    seen: Vec<Option<Stamp>>,
    /// The files as the last tick found them, changed from `seen`: acted on when the next tick
    /// finds them just so again.
    pending: Option<Vec<Option<Stamp>>>,
}

impl CertWatch {
    /// A watch of `c`'s files as they are now.
    pub(super) fn new(c: &Config) -> CertWatch {
        let files = files(c);
        let seen = stamps(&files);
        CertWatch {
            files,
            seen,
            pending: None,
        }
    }

    /// One look at the files: true when they changed since the last load and have not moved
    /// since the previous look (time to reload). A config that names other files (a reload)
    /// starts a new watch of them: they were just read.
    pub(super) fn tick(&mut self, c: &Config) -> bool {
        let files = files(c);
        if files != self.files {
            *self = CertWatch::new(c);
            return false;
        }
        let now = stamps(&self.files);
        if now == self.seen {
            self.pending = None;
            return false;
        }
        if self.pending.as_ref() != Some(&now) {
            self.pending = Some(now);
            return false;
        }
        self.seen = now;
        self.pending = None;
        true
    }
}

/// Every certificate, key and client CA file of `c`'s TLS listeners, each once, in order.
fn files(c: &Config) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for t in c.listeners.iter().filter_map(|l| l.tls.as_ref()) {
        let pairs = t.certificates.iter().flat_map(|p| [&p.cert, &p.key]);
        for f in pairs.chain(t.client_ca.as_ref()) {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
    }
    out
}

fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files.iter().map(|f| stamp(f)).collect()
}

fn stamp(file: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(file).ok()?;
    Some(Stamp {
        mtime: m.modified().ok()?,
        size: m.len(),
        ino: m.ino(),
    })
}

/// What the expiry gauge shows for `c`: every certificate of every TLS listener.
pub(super) fn expiries(c: &Config) -> Vec<CertificateExpiry> {
    let mut out = Vec::new();
    for l in &c.listeners {
        let Some(m) = l.tls.as_ref().and_then(|t| t.material.as_ref()) else {
            continue;
        };
        for (name, not_after) in m.expiries() {
            out.push(CertificateExpiry {
                listener: l.addr.to_string(),
                name,
                not_after,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CertPaths, Listener, ListenerTls};

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn config_with(dir: &Path) -> Config {
        let mut c = crate::cli::Args::base_config();
        let tls = ListenerTls::new(vec![CertPaths {
            cert: dir.join("a.pem"),
            key: dir.join("a.key"),
        }]);
        c.listeners.push(Listener {
            addr: "127.0.0.1:0".parse().unwrap(),
            proxy_protocol: false,
            tls: Some(tls),
            h2c: false,
            bound: None,
        });
        c
    }

    fn setup(tag: &str) -> (Dir, Config) {
        let dir =
            std::env::temp_dir().join(format!("shardgate-cert-watch-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.pem"), "cert 1").unwrap();
        std::fs::write(dir.join("a.key"), "key 1").unwrap();
        let c = config_with(&dir);
        (Dir(dir), c)
    }

    #[test]
    fn a_change_is_acted_on_once_it_held_still_for_one_tick() {
        let (dir, c) = setup("still");
        let mut w = CertWatch::new(&c);
        assert!(!w.tick(&c), "nothing changed");
        std::fs::write(dir.0.join("a.pem"), "cert 2, longer").unwrap();
        assert!(!w.tick(&c), "a change is first seen, not acted on");
        // The second half of a two-step write: still moving, so still not acted on.
        std::fs::write(dir.0.join("a.key"), "key 2, longer").unwrap();
        assert!(!w.tick(&c), "still changing");
        assert!(w.tick(&c), "held still for one tick: reload");
        assert!(!w.tick(&c), "acted on once");
    }

    #[test]
    fn a_file_replaced_by_rename_is_a_change() {
        let (dir, c) = setup("rename");
        let mut w = CertWatch::new(&c);
        let tmp = dir.0.join("a.pem.new");
        std::fs::write(&tmp, "cert 1").unwrap();
        std::fs::rename(&tmp, dir.0.join("a.pem")).unwrap();
        assert!(!w.tick(&c));
        assert!(w.tick(&c), "a new inode with the same size is a change");
    }

    #[test]
    fn a_missing_file_is_a_change_acted_on_once() {
        let (dir, c) = setup("missing");
        let mut w = CertWatch::new(&c);
        std::fs::remove_file(dir.0.join("a.key")).unwrap();
        assert!(!w.tick(&c));
        assert!(w.tick(&c), "the reload will say the file is missing");
        assert!(!w.tick(&c), "said once");
    }

    #[test]
    fn new_files_in_the_config_start_a_new_watch() {
        let (dir, c) = setup("other");
        let mut w = CertWatch::new(&c);
        std::fs::write(dir.0.join("b.pem"), "cert b").unwrap();
        let mut next = c.clone();
        let t = next.listeners[0].tls.as_mut().unwrap();
        t.certificates[0].cert = dir.0.join("b.pem");
        assert!(!w.tick(&next), "a config reload has just read them");
        assert!(!w.tick(&next));
    }

    #[test]
    fn each_file_is_watched_once() {
        let (dir, mut c) = setup("dedup");
        let t = c.listeners[0].tls.as_mut().unwrap();
        t.certificates.push(CertPaths {
            cert: dir.0.join("a.pem"),
            key: dir.0.join("a.key"),
        });
        t.client_ca = Some(dir.0.join("ca.pem"));
        let want = ["a.pem", "a.key", "ca.pem"].map(|f| dir.0.join(f));
        assert_eq!(files(&c), want);
    }
}
