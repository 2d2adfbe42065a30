//! Which config fields each command-line flag sets (`--shards` → `shards.count`), recorded in
//! `Config::origins` when flags are applied, so that an error about such a field names the flag.
//! Main thread, at start and at each reload. A new flag adds one `flag!` row to `FLAG_FIELDS`.

use super::Args;
use crate::config::{Config, Invalid, Origin};

impl Args {
    /// Which config fields each flag sets, so that an error about a field a flag set names the
    /// flag (`--shards: …`). Every flag has a row (a test checks it); a flag that sets no checked
    /// field lists the fields it touches anyway.
    pub fn flag_fields() -> &'static [FlagFields] {
        FLAG_FIELDS
    }

    /// Without a config file, an error about a default value names the flag that would set it
    /// (`--max-request-line (default): …` after `--buffer-size 2048`).
    pub fn name_default(&self, mut e: Invalid) -> Invalid {
        if e.origin.is_none() && e.source.is_none() {
            if let Some(row) = FLAG_FIELDS
                .iter()
                .find(|r| r.fields.contains(&e.field.as_str()))
            {
                e.origin = Some(Box::new(Origin::Default(row.flag)));
            }
        }
        e
    }

    /// Marks the fields of every given flag as coming from that flag, in `FLAG_FIELDS` order
    /// (a later row wins a field two flags set, e.g. `--shards` over `--cpus` for the count).
    pub(super) fn record_origins(&self, cfg: &mut Config) {
        for row in FLAG_FIELDS.iter().filter(|r| (r.given)(self)) {
            for field in row.fields {
                cfg.origins.replace(field, Origin::Flag(row.flag));
            }
        }
    }
}

/// One row of `Args::flag_fields`: a flag, whether it was given, the config fields it sets.
pub struct FlagFields {
    pub flag: &'static str,
    pub given: fn(&Args) -> bool,
    pub fields: &'static [&'static str],
}

/// A flag's value was given on the command line (`Some`, non-empty, or `true`).
pub trait Given {
    fn given(&self) -> bool;
}

impl<T> Given for Option<T> {
    fn given(&self) -> bool {
        self.is_some()
    }
}

impl<T> Given for Vec<T> {
    fn given(&self) -> bool {
        !self.is_empty()
    }
}

impl Given for bool {
    fn given(&self) -> bool {
        *self
    }
}

/// `flag!("--shards", shards, "shards.count")`: the row for field `Args::shards`.
macro_rules! flag {
    (@h2 $flag:literal, $arg:ident) => {
        FlagFields {
            flag: $flag,
            given: |a| Given::given(&a.http2.$arg),
            fields: &[concat!("http2.", stringify!($arg))],
        }
    };
    ($flag:literal, $arg:ident, $($field:literal),+) => {
        FlagFields { flag: $flag, given: |a| Given::given(&a.$arg), fields: &[$($field),+] }
    };
}

/// The flags' config fields (see `Args::flag_fields`). A new flag adds one row here.
const FLAG_FIELDS: &[FlagFields] = &[
    flag!("--listen", listen, "listeners"),
    flag!("--listen-tls", listen_tls, "listeners"),
    flag!("--tls-cert", tls_cert, "listeners.tls.certificates"),
    flag!("--tls-key", tls_key, "listeners.tls.certificates"),
    flag!("--upstream", upstream, "upstreams"),
    flag!("--upstream-tls", upstream_tls, "clusters.tls"),
    flag!("--upstream-ca", upstream_ca, "clusters.tls.ca"),
    flag!(
        "--upstream-protocol",
        upstream_protocol,
        "clusters.protocol"
    ),
    flag!(
        "--proxy-protocol",
        proxy_protocol,
        "listeners.proxy_protocol"
    ),
    flag!("--h2c", h2c, "listeners.h2c"),
    flag!(@h2 "--h2-max-concurrent-streams", max_concurrent_streams),
    flag!(@h2 "--h2-initial-stream-window", initial_stream_window),
    flag!(@h2 "--h2-initial-connection-window", initial_connection_window),
    flag!(@h2 "--h2-max-frame-size", max_frame_size),
    flag!(@h2 "--h2-max-requests", max_requests),
    flag!(@h2 "--h2-max-age", max_age),
    flag!(@h2 "--h2-max-pending-accept-reset-streams", max_pending_accept_reset_streams),
    flag!(@h2 "--h2-max-local-error-reset-streams", max_local_error_reset_streams),
    flag!("--lb", lb, "clusters.lb"),
    flag!("--rate-limit", rate_limit, "routes.rate_limit"),
    flag!("--rate-burst", rate_burst, "routes.rate_limit.burst"),
    flag!(
        "--rate-limit-redis",
        rate_limit_redis,
        "routes.rate_limit.redis"
    ),
    flag!("--health-check", health_check, "clusters.health_check"),
    flag!(
        "--health-interval",
        health_interval,
        "clusters.health_check.interval"
    ),
    flag!("--steer", steer, "steer"),
    flag!("--trusted-proxy", trusted_proxy, "trusted_proxies"),
    flag!("--admin", admin, "admin"),
    flag!(
        "--admin-token",
        admin_token,
        "admin_token",
        "admin_token_file"
    ),
    flag!("--admin-token-file", admin_token_file, "admin_token_file"),
    flag!("--access-log", access_log, "access_log"),
    flag!("--trace", trace, "trace"),
    flag!("--strict-http", strict_http, "head_rules.strict"),
    flag!(
        "--underscores-in-headers",
        underscores_in_headers,
        "head_rules.underscores"
    ),
    flag!("--cpus", cpus, "shards.cpus", "shards.count"),
    flag!("--shards", shards, "shards.count"),
    flag!("--no-pin", no_pin, "shards.pin"),
    flag!("--uring-entries", uring_entries, "shards.uring_entries"),
    flag!("--uring-setup", uring_setup, "shards.uring_setup"),
    flag!("--backlog", backlog, "shards.backlog"),
    flag!(
        "--max-connections",
        max_connections,
        "shards.max_connections"
    ),
    flag!("--buffer-size", buffer_size, "shards.buffer_size"),
    flag!(
        "--upstream-buffer-size",
        upstream_buffer_size,
        "shards.upstream_buffer_size"
    ),
    flag!(
        "--splice-threshold",
        splice_threshold,
        "shards.splice_threshold"
    ),
    flag!(
        "--max-request-line",
        max_request_line,
        "shards.max_request_line"
    ),
    flag!(
        "--idle-buffer-time",
        idle_buffer_time,
        "shards.idle_buffer_time"
    ),
    flag!("--lean-above", lean_above, "shards.lean_above"),
    flag!("--pool-max-idle", pool_max_idle, "pool.max_idle"),
    flag!(
        "--pool-idle-timeout",
        pool_idle_timeout,
        "pool.idle_timeout"
    ),
    flag!(
        "--max-upstream-connections",
        max_upstream_connections,
        "pool.max_connections"
    ),
    flag!("--upstream-queue", upstream_queue, "pool.queue"),
    flag!(
        "--upstream-queue-timeout",
        upstream_queue_timeout,
        "pool.queue_timeout"
    ),
    flag!("--connect-timeout", connect_timeout, "timeouts.connect"),
    flag!("--header-timeout", header_timeout, "timeouts.header"),
    flag!("--upstream-timeout", upstream_timeout, "timeouts.upstream"),
    flag!("--idle-timeout", idle_timeout, "timeouts.idle"),
    flag!("--body-timeout", body_timeout, "timeouts.body"),
    flag!("--drain-timeout", drain_timeout, "timeouts.drain"),
    flag!(
        "--tunnel-idle-timeout",
        tunnel_idle_timeout,
        "timeouts.tunnel_idle"
    ),
    flag!(
        "--tunnel-drain-grace",
        tunnel_drain_grace,
        "timeouts.tunnel_drain_grace"
    ),
    flag!(
        "--drain-idle-grace",
        drain_idle_grace,
        "timeouts.drain_idle_grace"
    ),
    flag!(
        "--tls-handshake-timeout",
        tls_handshake_timeout,
        "timeouts.tls_handshake"
    ),
    flag!(
        "--tls-ticket-rotation",
        tls_ticket_rotation,
        "tls_ticket_rotation"
    ),
    flag!(
        "--tls-watch-interval",
        tls_watch_interval,
        "tls_watch_interval"
    ),
    flag!("--upgrades", upgrades, "upgrades"),
    flag!("--upgrade-socket", upgrade_socket, "upgrade_socket"),
    flag!("--expect-continue", expect_continue, "expect_continue"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::Parser;

    /// Flags that set no config value.
    const NOT_CONFIG: &[&str] = &["--config", "--check", "--upgrade", "--help", "--version"];

    /// A flag without a row would leave errors about its value naming a config field.
    #[test]
    fn every_flag_has_a_row() {
        let cmd = Args::command();
        let missing: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .filter(|f| !NOT_CONFIG.contains(&f.as_str()))
            .filter(|f| !FLAG_FIELDS.iter().any(|r| r.flag == f))
            .collect();
        assert!(missing.is_empty(), "add a FLAG_FIELDS row for {missing:?}");
    }

    #[test]
    fn a_flag_over_the_file_owns_the_field() {
        let mut cfg = Args::base_config();
        cfg.origins.set(
            "listeners[0]",
            Origin::File {
                file: "t.toml".into(),
                line: 1,
                col: 11,
                key: "listen[0]".into(),
            },
        );
        let args =
            Args::try_parse_from(["shardgate", "--listen", "127.0.0.1:0", "--cpus", "0"]).unwrap();
        args.apply(&mut cfg).unwrap();
        assert_eq!(
            cfg.origins.of("listeners[0]"),
            Some(&Origin::Flag("--listen"))
        );
        assert_eq!(
            cfg.origins.of("shards.count"),
            Some(&Origin::Flag("--cpus"))
        );
        assert_eq!(cfg.origins.of("timeouts.idle"), None);
    }
}
