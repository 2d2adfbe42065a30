//! The cluster-wide half of a route's rate limit (`scope = "global"`, `redis`, `sync`,
//! `on_error`): the checked settings and the parsing of each value. Main thread, when a config
//! file or the command line is read (startup, `--check`, reload). The limits thread
//! (`external::limits`) enforces them.

use std::time::Duration;

/// How often shards report by default (`sync`).
pub const DEFAULT_SYNC: Duration = Duration::from_millis(100);

/// Where and how a route's rate limit is shared across hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalLimit {
    /// The Redis server, as written (`redis://HOST[:PORT][/DB]`).
    pub redis: RedisUrl,
    /// How often each shard sends what it admitted.
    pub sync: Duration,
    pub on_error: OnError,
}

/// What a shard does for a key it cannot check because Redis is down, slow or refusing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Fall back to the local limit (fail open).
    Allow,
    /// Answer 429.
    Deny,
}

impl OnError {
    pub fn parse(s: &str) -> Result<OnError, String> {
        match s {
            "allow" => Ok(OnError::Allow),
            "deny" => Ok(OnError::Deny),
            _ => Err(format!("{s:?}: use allow or deny")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OnError::Allow => "allow",
            OnError::Deny => "deny",
        }
    }
}

/// Whether a limit is this process's own or shared through Redis (`scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Local,
    Global,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, String> {
        match s {
            "local" => Ok(Scope::Local),
            "global" => Ok(Scope::Global),
            _ => Err(format!("{s:?}: use local or global")),
        }
    }
}

/// A checked `redis://` URL: host, port (default 6379) and database number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub text: String,
    pub host: String,
    pub port: u16,
    pub db: u32,
}

impl RedisUrl {
    pub fn parse(s: &str) -> Result<RedisUrl, String> {
        let bad = |why: &str| Err(format!("{s:?}: {why} (use redis://HOST[:PORT][/DB])"));
        let Some(rest) = s.strip_prefix("redis://") else {
            return bad("not a redis:// URL");
        };
        let (authority, db) = match rest.split_once('/') {
            None => (rest, 0),
            Some((a, "")) => (a, 0),
            Some((a, d)) => match d.parse() {
                Ok(n) => (a, n),
                Err(_) => return bad("the database must be a number"),
            },
        };
        if authority.contains('@') {
            return bad("credentials in the URL are not supported");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) if p > 0 => (h, p),
                _ => return bad("bad port"),
            },
            _ => (authority, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("no host");
        }
        Ok(RedisUrl {
            text: s.to_string(),
            host: host.to_string(),
            port,
            db,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        let u = RedisUrl::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("127.0.0.1", 6380, 2));
        let u = RedisUrl::parse("redis://cache").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("cache", 6379, 0));
        let u = RedisUrl::parse("redis://[::1]:7000/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 7000));
        for bad in [
            "http://x",
            "redis://",
            "redis://h:0",
            "redis://h:99999",
            "redis://h/x",
            "redis://u:p@h",
        ] {
            assert!(RedisUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_and_on_error() {
        assert_eq!(Scope::parse("global"), Ok(Scope::Global));
        assert!(Scope::parse("cluster").is_err());
        assert_eq!(OnError::parse("deny"), Ok(OnError::Deny));
        assert_eq!(OnError::Allow.name(), "allow");
        assert!(OnError::parse("open").is_err());
    }
}
