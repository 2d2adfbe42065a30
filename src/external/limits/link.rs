//! One Redis server as the limits thread sees it: the connection (opened on first use), and
//! while it fails, when to try again, backing off exponentially from `FIRST_BACKOFF` to
//! `MAX_BACKOFF`. A charge while the server is down and not yet due fails at once, so a dead Redis
//! costs one timeout per retry, not one per batch. The change of state (down, up again) is
//! written to stderr once, not per failure. Limits thread.

use std::time::{Duration, Instant};

use super::gcra::{self, Gcra};

/// How long connecting, writing and reading each wait for Redis.
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// The first wait after a failure, doubled after each failed retry up to `MAX_BACKOFF`.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a charge did not reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// Redis failed a moment ago; the next try is not due yet.
    Backoff,
    /// Connecting, the round trip or the script failed now.
    Redis(String),
}

/// A Redis server by its URL.
pub struct Link {
    url: String,
    conn: Option<redis::Connection>,
    down: Option<Down>,
}

/// A server that failed: since its last failure, when to try again and the next wait.
struct Down {
    retry_at: Instant,
    backoff: Duration,
}

impl Link {
    pub fn new(url: &str) -> Link {
        Link {
            url: url.to_string(),
            conn: None,
            down: None,
        }
    }

    /// Whether the last try failed (until one succeeds).
    pub fn is_down(&self) -> bool {
        self.down.is_some()
    }

    /// When a down server should be tried again, without waiting for counts to send.
    pub fn retry_at(&self) -> Option<Instant> {
        self.down.as_ref().map(|d| d.retry_at)
    }

    /// Charges `batch` under `limit`: how long each key is over its allowance.
    pub fn charge(
        &mut self,
        limit: Gcra,
        batch: &[(&str, u64)],
    ) -> Result<Vec<Duration>, LinkError> {
        let conn = self.usable()?;
        let result = gcra::charge(conn, limit, batch);
        self.settle(result)
    }

    /// A down server whose retry is due: PING it (so a route that refuses while Redis is down
    /// learns it is back without counts to send).
    pub fn probe(&mut self, now: Instant) {
        if self.retry_at().is_none_or(|t| now < t) {
            return;
        }
        let Ok(conn) = self.usable() else { return };
        let result = redis::cmd("PING").query::<String>(conn);
        let _ = self.settle(result);
    }

    /// The open connection, or a new one when none is open and no backoff holds it back.
    fn usable(&mut self) -> Result<&mut redis::Connection, LinkError> {
        if self
            .down
            .as_ref()
            .is_some_and(|d| Instant::now() < d.retry_at)
        {
            return Err(LinkError::Backoff);
        }
        if self.conn.is_none() {
            match gcra::connect(&self.url, TIMEOUT) {
                Ok(c) => self.conn = Some(c),
                Err(e) => return Err(self.failed(e)),
            }
        }
        Ok(self.conn.as_mut().expect("opened above"))
    }

    /// Notes how a try went: a success after failures is logged once.
    fn settle<T>(&mut self, result: redis::RedisResult<T>) -> Result<T, LinkError> {
        match result {
            Ok(v) => {
                if self.down.take().is_some() {
                    eprintln!("global rate limits: {} answers again", self.url);
                }
                Ok(v)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// A failure closes the connection and backs off; logged when the server was up.
    fn failed(&mut self, e: redis::RedisError) -> LinkError {
        self.conn = None;
        let backoff = match &self.down {
            None => {
                eprintln!(
                    "global rate limits: {}: {e}; routes follow their on_error until it \
                     answers (retrying with backoff up to {MAX_BACKOFF:?})",
                    self.url
                );
                FIRST_BACKOFF
            }
            Some(d) => d.backoff,
        };
        self.down = Some(Down {
            retry_at: Instant::now() + backoff,
            backoff: (backoff * 2).min(MAX_BACKOFF),
        });
        LinkError::Redis(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_backs_off_and_doubles_up_to_the_cap() {
        // Nothing listens on port 1 of 127.0.0.1: connecting is refused at once.
        let mut l = Link::new("redis://127.0.0.1:1");
        assert!(!l.is_down());
        let limit = Gcra::new(10.0, 1);
        assert!(matches!(
            l.charge(limit, &[("k", 1)]),
            Err(LinkError::Redis(_))
        ));
        assert!(l.is_down());
        assert_eq!(l.charge(limit, &[("k", 1)]), Err(LinkError::Backoff));
        let first = l.retry_at().unwrap();
        // Due: tried again, refused again, the next wait is twice as long.
        l.down.as_mut().unwrap().retry_at = Instant::now();
        l.probe(Instant::now());
        let wait = l.retry_at().unwrap() - Instant::now();
        assert!(wait > FIRST_BACKOFF, "{wait:?} after {first:?}");
        for _ in 0..10 {
            l.down.as_mut().unwrap().retry_at = Instant::now();
            l.probe(Instant::now());
        }
        assert_eq!(l.down.as_ref().unwrap().backoff, MAX_BACKOFF);
    }
}
