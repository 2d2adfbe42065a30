//! Validation of a merged config (file + flags): the limits every source of settings must keep,
//! then the start-up checks (`startup`), the admin token file and the TLS material. Runs on the
//! main thread at start and `--check`, and on the coordinator thread at each reload.

use std::time::Duration;

use super::{admin, startup, Config, Invalid};

/// Everything that can be known about a merged config (file + flags) without binding: the
/// limits, then the start-up checks (addresses, access log, privileged ports). `--check`, start
/// and reload all pass through here; the error names the flag or file:line:col of the value.
pub fn check(c: &mut Config) -> Result<(), Invalid> {
    check_limits(c).map_err(|(field, msg)| c.invalid(field, msg))?;
    startup::check(c).map_err(|(field, msg)| c.invalid(&field, msg))?;
    check_admin_token(c)
}

/// The admin token part of `check` alone: reads `admin_token_file` again (when set) into
/// `admin_token`; on an error `c` is unchanged. The coordinator runs it on SIGHUP or
/// `POST /reload` without a config file.
pub fn check_admin_token(c: &mut Config) -> Result<(), Invalid> {
    admin::read_token(c).map_err(|(field, msg)| c.invalid(&field, msg))
}

/// The TLS part of `check` alone: reads every TLS listener's certificate, key and client CA
/// files again into its `material` (expiry warnings on stderr as at start). The coordinator runs
/// it on the running config when a watched file changed, or on SIGHUP without a config file.
pub fn check_tls(c: &mut Config) -> Result<(), Invalid> {
    startup::tls_material(c).map_err(|(field, msg)| c.invalid(&field, msg))
}

/// What a library client (shard::embed) needs of a config: the limits but the listeners (it
/// has none), and each TLS cluster's certificates loaded.
pub fn check_client(c: &mut Config) -> Result<(), Invalid> {
    check_shared_limits(c).map_err(|(field, msg)| c.invalid(field, msg))?;
    startup::upstream_material(c).map_err(|(field, msg)| c.invalid(&field, msg))
}

/// Limits checked on every source of settings (file and flags); each names the field it checks.
pub fn check_limits(c: &Config) -> Result<(), (&'static str, String)> {
    if c.listeners.is_empty() {
        return Err((
            "listen",
            "at least one listen address is required (--listen, or `listen` in the file)".into(),
        ));
    }
    check_shared_limits(c)
}

/// The limits a proxy and a library client share (all but the listeners being required).
fn check_shared_limits(c: &Config) -> Result<(), (&'static str, String)> {
    let s = &c.shards;
    if c.clusters.is_empty()
        || (c.clusters.iter()).any(|cl| cl.endpoints.is_empty() && cl.discover.is_empty())
    {
        return Err((
            "upstreams",
            "at least one upstream is required (--upstream, `upstreams`, or `[[clusters]]` endpoints in the file)".into(),
        ));
    }
    if !(1..=1024).contains(&s.count) {
        return Err((
            "shards.count",
            format!("{} is out of range 1..=1024", s.count),
        ));
    }
    let allowed = crate::sys::allowed_cpus();
    if let Some(bad) = s.cpus.iter().find(|c| !allowed.contains(c)) {
        return Err((
            "shards.cpus",
            format!("cpu {bad} is not one this process may run on (allowed: {allowed:?})"),
        ));
    }
    if s.pin && s.cpus.is_empty() {
        return Err(("shards.cpus", "no cpu to pin to".into()));
    }
    if !(2..=32768).contains(&s.uring_entries) {
        return Err((
            "shards.uring_entries",
            format!("{} is out of range 2..=32768", s.uring_entries),
        ));
    }
    if !(1..=65535).contains(&s.backlog) {
        return Err((
            "shards.backlog",
            format!("{} is out of range 1..=65535", s.backlog),
        ));
    }
    let rotation = c.tls_ticket_rotation;
    if rotation < Duration::from_secs(1) || rotation > crate::tls::MAX_TICKET_LIFETIME {
        return Err((
            "tls_ticket_rotation",
            format!(
                "{} is out of range 1s..=168h (7 days: the longest ticket lifetime TLS 1.3 allows)",
                format_args!("{}ms", rotation.as_millis())
            ),
        ));
    }
    if c.timeouts.tunnel_idle.is_zero() {
        return Err(("timeouts.tunnel_idle", "must be greater than 0".into()));
    }
    if s.max_connections == 0 {
        return Err(("shards.max_connections", "must be at least 1".into()));
    }
    if c.listeners.iter().any(|l| l.h2c && l.tls.is_some()) {
        return Err((
            "listeners.h2c",
            "h2c is HTTP/2 over plain TCP: a TLS listener cannot take it (HTTP/2 over TLS is \
             negotiated by ALPN)"
                .into(),
        ));
    }
    c.http2.check()?;
    if !(1024..=1 << 20).contains(&s.buffer_size) {
        return Err((
            "shards.buffer_size",
            format!("{} is out of range 1024..=1048576", s.buffer_size),
        ));
    }
    if !(1024..=1 << 20).contains(&s.upstream_buffer_size) {
        return Err((
            "shards.upstream_buffer_size",
            format!("{} is out of range 1024..=1048576", s.upstream_buffer_size),
        ));
    }
    if s.max_request_line < 64 || s.max_request_line > s.buffer_size {
        return Err((
            "shards.max_request_line",
            format!(
                "{} must be between 64 and buffer_size ({})",
                s.max_request_line, s.buffer_size
            ),
        ));
    }
    let t = &c.timeouts;
    for (field, d) in [
        ("timeouts.connect", t.connect),
        ("timeouts.header", t.header),
        ("timeouts.upstream", t.upstream),
        ("timeouts.idle", t.idle),
        ("timeouts.body", t.body),
        ("timeouts.tls_handshake", t.tls_handshake),
        ("pool.queue_timeout", c.pool.queue_timeout),
    ] {
        if d.is_zero() {
            return Err((field, "must be greater than 0".into()));
        }
    }
    Ok(())
}
