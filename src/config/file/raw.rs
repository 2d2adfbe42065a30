//! The top level of the config file as deserialized, every value with its span: the keys, the
//! `[shards]`, `[timeouts]`, `[pool]` and `[http2]` tables, and the entry arrays (`listeners.rs`,
//! `clusters.rs`, `routes.rs` hold their raw types). Unknown keys are refused here. Main thread.

use serde::Deserialize;
use toml::Spanned;

use super::clusters::RawCluster;
use super::entry::S;
use super::listeners::RawListener;
use super::routes::RawRoute;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub listen: S<Vec<Spanned<String>>>,
    pub upstreams: S<Vec<Spanned<String>>>,
    pub lb: S<String>,
    pub trusted_proxies: S<Vec<Spanned<String>>>,
    pub steer: S<String>,
    pub admin: S<String>,
    pub admin_token_file: S<String>,
    /// Refused with `config::admin::INLINE_TOKEN_REFUSED`, whatever its value.
    pub admin_token: S<toml::Value>,
    pub access_log: S<String>,
    pub trace: S<bool>,
    pub upgrades: S<Vec<String>>,
    pub expect_continue: S<String>,
    pub strict_http: S<bool>,
    pub underscores_in_headers: S<String>,
    pub tls_watch_interval: S<String>,
    pub tls_ticket_rotation: S<String>,
    pub upgrade_socket: S<String>,
    pub resolvers: S<Vec<Spanned<String>>>,
    pub listeners: Option<Vec<RawListener>>,
    pub clusters: Option<Vec<Spanned<RawCluster>>>,
    pub routes: Option<Vec<Spanned<RawRoute>>>,
    pub shards: Option<RawShards>,
    pub timeouts: Option<RawTimeouts>,
    pub pool: Option<RawPool>,
    pub http2: Option<RawHttp2>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShards {
    pub count: S<u64>,
    pub cpus: S<Vec<u64>>,
    pub pin: S<bool>,
    pub uring_entries: S<u64>,
    pub uring_setup: S<String>,
    pub backlog: S<u64>,
    pub max_connections: S<u64>,
    pub buffer_size: S<u64>,
    pub upstream_buffer_size: S<u64>,
    pub splice_threshold: S<u64>,
    pub max_request_line: S<u64>,
    pub idle_buffer_time: S<String>,
    pub lean_above: S<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub connect: S<String>,
    pub header: S<String>,
    pub upstream: S<String>,
    pub idle: S<String>,
    pub body: S<String>,
    pub drain: S<String>,
    pub tunnel_idle: S<String>,
    pub tunnel_drain_grace: S<String>,
    pub drain_idle_grace: S<String>,
    pub tls_handshake: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub max_idle: S<u64>,
    pub idle_timeout: S<String>,
    pub max_connections: S<u64>,
    pub queue: S<u64>,
    pub queue_timeout: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp2 {
    pub max_concurrent_streams: S<u64>,
    pub initial_stream_window: S<u64>,
    pub initial_connection_window: S<u64>,
    pub max_frame_size: S<u64>,
    pub max_requests: S<u64>,
    pub max_age: S<String>,
    pub max_pending_accept_reset_streams: S<u64>,
    pub max_local_error_reset_streams: S<u64>,
}
