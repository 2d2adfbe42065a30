//! Raw spanned tables → a validated `Config`: each top-level key and section checked in turn, the
//! entries through `listeners`/`clusters`/`routes`, and where each field was written recorded in
//! `Origins` (so errors found after flags are merged still name file:line:col). Main thread.

use std::ops::Range;

use super::entry::{EntryError, S};
use super::error::{line_col, ConfigError};
use super::raw::RawFile;
use super::{clusters, listeners, routes};
use crate::config::{
    self, parse_duration, parse_endpoint, parse_listen, Cluster, Config, Listener, Origin, Origins,
    Pool, Route, Shards, Timeouts,
};

/// Turns raw spanned values into a `Config`, remembering where each field was written.
pub(super) struct Builder<'a> {
    file: &'a str,
    text: &'a str,
    origins: Origins,
}

impl<'a> Builder<'a> {
    /// A builder for the text of file `file` (the name is only used in errors and origins).
    pub fn new(file: &'a str, text: &'a str) -> Builder<'a> {
        Builder {
            file,
            text,
            origins: Origins::default(),
        }
    }

    pub fn error(&self, span: Range<usize>, field: &str, message: String) -> ConfigError {
        let (line, col) = line_col(self.text, span.start);
        ConfigError {
            file: self.file.to_string(),
            line,
            col,
            field: field.to_string(),
            message,
        }
    }

    /// Records that config field `field` was written at `span` under key path `key`.
    fn written(&mut self, field: &str, span: Range<usize>, key: &str) {
        let (line, col) = line_col(self.text, span.start);
        let origin = Origin::File {
            file: self.file.to_string(),
            line,
            col,
            key: key.to_string(),
        };
        self.origins.set(field, origin);
    }

    fn entry(&self, e: EntryError) -> ConfigError {
        self.error(e.0, &e.1, e.2)
    }

    fn num<T: TryFrom<u64>>(
        &mut self,
        field: &'static str,
        v: S<u64>,
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        self.written(field, v.span(), field);
        let span = v.span();
        T::try_from(*v.get_ref())
            .map_err(|_| self.error(span, field, format!("{} is too large", v.get_ref())))
    }

    fn dur(
        &mut self,
        field: &'static str,
        v: S<String>,
        default: std::time::Duration,
    ) -> Result<std::time::Duration, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        self.written(field, v.span(), field);
        parse_duration(v.get_ref()).map_err(|m| self.error(v.span(), field, m))
    }

    pub fn build(&mut self, raw: RawFile) -> Result<Config, ConfigError> {
        let mut listeners = Vec::new();
        if let Some(list) = raw.listen {
            self.written("listen", list.span(), "listen");
            for (i, item) in list.into_inner().into_iter().enumerate() {
                let key = format!("listen[{i}]");
                let addr =
                    parse_listen(item.get_ref()).map_err(|m| self.error(item.span(), &key, m))?;
                self.written(
                    &format!("listeners[{}]", listeners.len()),
                    item.span(),
                    &key,
                );
                listeners.push(Listener {
                    addr,
                    proxy_protocol: false,
                    tls: None,
                    h2c: false,
                    bound: None,
                });
            }
        }
        for (i, l) in raw.listeners.into_iter().flatten().enumerate() {
            let key = format!("listeners[{i}].addr");
            self.written(
                &format!("listeners[{}]", listeners.len()),
                l.addr_span(),
                &key,
            );
            let (l, files) = listeners::listener(i, l).map_err(|e| self.entry(e))?;
            for (sub, span) in files {
                let field = format!("listeners[{}].{sub}", listeners.len());
                self.written(&field, span, &format!("listeners[{i}].{sub}"));
            }
            listeners.push(l);
        }

        let mut clusters = Vec::new();
        if let Some(list) = raw.upstreams {
            self.written("upstreams", list.span(), "upstreams");
            let mut written = Vec::new();
            for (i, item) in list.into_inner().into_iter().enumerate() {
                written.push(
                    parse_endpoint(item.get_ref())
                        .map_err(|m| self.error(item.span(), &format!("upstreams[{i}]"), m))?,
                );
            }
            let mut c = Cluster::written("default", written);
            if let Some(lb) = raw.lb {
                c.lb = lb
                    .get_ref()
                    .parse()
                    .map_err(|m| self.error(lb.span(), "lb", m))?;
            }
            clusters.push(c);
        } else if let Some(lb) = raw.lb {
            return Err(self.error(
                lb.span(),
                "lb",
                "`lb` sets the `upstreams` cluster's algorithm; use clusters[].lb".into(),
            ));
        }
        for (i, c) in raw.clusters.into_iter().flatten().enumerate() {
            let span = c.span();
            let (c, files) = clusters::cluster(i, c.into_inner()).map_err(|e| self.entry(e))?;
            for (sub, span) in files {
                let field = format!("clusters[{}].{sub}", clusters.len());
                self.written(&field, span, &format!("clusters[{i}].{sub}"));
            }
            if clusters.iter().any(|o: &Cluster| o.name == c.name) {
                return Err(self.error(
                    span,
                    &format!("clusters[{i}].name"),
                    format!("cluster {:?} is defined twice", c.name),
                ));
            }
            clusters.push(c);
        }
        let names: Vec<String> = clusters.iter().map(|c| c.name.clone()).collect();
        let mut routes: Vec<Route> = Vec::new();
        for (i, r) in raw.routes.into_iter().flatten().enumerate() {
            let span = r.span();
            let r = routes::route(i, r.into_inner(), span.clone(), &names)
                .map_err(|e| self.entry(e))?;
            if routes.iter().any(|o| o.name == r.name) {
                return Err(self.error(
                    span,
                    &format!("routes[{i}].name"),
                    format!("route {:?} is defined twice", r.name),
                ));
            }
            routes.push(r);
        }
        if routes.is_empty() && !clusters.is_empty() {
            routes.push(Route::catch_all(0));
        }

        let mut trusted_proxies = Vec::new();
        if let Some(list) = raw.trusted_proxies {
            for (i, item) in list.into_inner().into_iter().enumerate() {
                trusted_proxies.push(item.get_ref().parse().map_err(
                    |m: crate::policy::trusted::CidrError| {
                        let key = format!("trusted_proxies[{i}]");
                        self.error(item.span(), &key, m.to_string())
                    },
                )?);
            }
        }
        let steer_client_ip = match raw.steer {
            None => false,
            Some(s) => match s.get_ref().as_str() {
                "client-ip" => true,
                "none" => false,
                _ => return Err(self.error(s.span(), "steer", "use client-ip or none".into())),
            },
        };
        let admin = match raw.admin {
            None => Some(config::DEFAULT_ADMIN),
            Some(a) => {
                self.written("admin", a.span(), "admin");
                config::parse_admin(a.get_ref()).map_err(|m| self.error(a.span(), "admin", m))?
            }
        };
        if let Some(t) = raw.admin_token {
            let msg = config::admin::INLINE_TOKEN_REFUSED.to_string();
            return Err(self.error(t.span(), "admin_token", msg));
        }
        let admin_token_file = match raw.admin_token_file {
            None => None,
            Some(p) => {
                self.written("admin_token_file", p.span(), "admin_token_file");
                let path = config::parse_token_file(p.get_ref());
                Some(path.map_err(|m| self.error(p.span(), "admin_token_file", m))?)
            }
        };
        let access_log = match raw.access_log {
            None => config::AccessLogTarget::Off,
            Some(a) => {
                self.written("access_log", a.span(), "access_log");
                a.get_ref()
                    .parse()
                    .map_err(|m| self.error(a.span(), "access_log", m))?
            }
        };
        let upgrade_socket = match raw.upgrade_socket {
            None => Some(config::DEFAULT_UPGRADE_SOCKET.into()),
            Some(u) => {
                self.written("upgrade_socket", u.span(), "upgrade_socket");
                config::parse_upgrade_socket(u.get_ref())
                    .map_err(|m| self.error(u.span(), "upgrade_socket", m))?
            }
        };
        let mut resolvers = Vec::new();
        if let Some(list) = raw.resolvers {
            self.written("resolvers", list.span(), "resolvers");
            for (i, r) in list.into_inner().into_iter().enumerate() {
                resolvers.push(
                    config::parse_resolver(r.get_ref())
                        .map_err(|m| self.error(r.span(), &format!("resolvers[{i}]"), m))?,
                );
            }
        }
        let trace_start = raw.trace.is_some_and(|t| t.into_inner());
        let upgrades = match raw.upgrades {
            None => config::default_upgrades(),
            Some(u) => config::parse_upgrades(u.get_ref())
                .map_err(|m| self.error(u.span(), "upgrades", m))?,
        };
        let expect_continue = match raw.expect_continue {
            None => config::ExpectMode::default(),
            Some(e) => config::ExpectMode::parse(e.get_ref())
                .map_err(|m| self.error(e.span(), "expect_continue", m))?,
        };
        let mut head_rules = crate::http::HeadRules {
            strict: raw.strict_http.is_some_and(|t| t.into_inner()),
            ..Default::default()
        };
        if let Some(u) = raw.underscores_in_headers {
            head_rules.underscores =
                crate::http::Underscores::parse(u.get_ref()).ok_or_else(|| {
                    let msg = format!("{:?}: use {}", u.get_ref(), crate::http::Underscores::HELP);
                    self.error(u.span(), "underscores_in_headers", msg)
                })?;
        }

        let tls_watch_interval = self.dur(
            "tls_watch_interval",
            raw.tls_watch_interval,
            config::DEFAULT_TLS_WATCH_INTERVAL,
        )?;
        let tls_ticket_rotation = self.dur(
            "tls_ticket_rotation",
            raw.tls_ticket_rotation,
            config::DEFAULT_TLS_TICKET_ROTATION,
        )?;

        let mut shards = Shards::for_this_process();
        if let Some(s) = raw.shards {
            shards.count = self.num("shards.count", s.count, shards.count)?;
            if let Some(cpus) = s.cpus {
                self.written("shards.cpus", cpus.span(), "shards.cpus");
                shards.cpus = cpus.into_inner().into_iter().map(|c| c as usize).collect();
            }
            if let Some(pin) = s.pin {
                shards.pin = pin.into_inner();
            }
            shards.uring_entries = self.num(
                "shards.uring_entries",
                s.uring_entries,
                shards.uring_entries,
            )?;
            if let Some(u) = s.uring_setup {
                shards.uring_setup = config::UringSetup::parse(u.get_ref()).ok_or_else(|| {
                    let msg = format!("{:?}: use {}", u.get_ref(), config::UringSetup::HELP);
                    self.error(u.span(), "shards.uring_setup", msg)
                })?;
            }
            shards.backlog = self.num("shards.backlog", s.backlog, shards.backlog)?;
            shards.max_connections = self.num(
                "shards.max_connections",
                s.max_connections,
                shards.max_connections,
            )?;
            shards.buffer_size =
                self.num("shards.buffer_size", s.buffer_size, shards.buffer_size)?;
            shards.upstream_buffer_size = self.num(
                "shards.upstream_buffer_size",
                s.upstream_buffer_size,
                shards.upstream_buffer_size,
            )?;
            shards.splice_threshold = self.num(
                "shards.splice_threshold",
                s.splice_threshold,
                shards.splice_threshold,
            )?;
            shards.max_request_line = self.num(
                "shards.max_request_line",
                s.max_request_line,
                shards.max_request_line,
            )?;
            shards.idle_buffer_time = self.dur(
                "shards.idle_buffer_time",
                s.idle_buffer_time,
                shards.idle_buffer_time,
            )?;
            shards.lean_above = self.num("shards.lean_above", s.lean_above, shards.lean_above)?;
        }

        let mut timeouts = Timeouts::default();
        if let Some(t) = raw.timeouts {
            timeouts.connect = self.dur("timeouts.connect", t.connect, timeouts.connect)?;
            timeouts.header = self.dur("timeouts.header", t.header, timeouts.header)?;
            timeouts.upstream = self.dur("timeouts.upstream", t.upstream, timeouts.upstream)?;
            timeouts.idle = self.dur("timeouts.idle", t.idle, timeouts.idle)?;
            timeouts.body = self.dur("timeouts.body", t.body, timeouts.body)?;
            timeouts.drain = self.dur("timeouts.drain", t.drain, timeouts.drain)?;
            timeouts.tunnel_idle =
                self.dur("timeouts.tunnel_idle", t.tunnel_idle, timeouts.tunnel_idle)?;
            timeouts.tunnel_drain_grace = self.dur(
                "timeouts.tunnel_drain_grace",
                t.tunnel_drain_grace,
                timeouts.tunnel_drain_grace,
            )?;
            timeouts.drain_idle_grace = self.dur(
                "timeouts.drain_idle_grace",
                t.drain_idle_grace,
                timeouts.drain_idle_grace,
            )?;
            timeouts.tls_handshake = self.dur(
                "timeouts.tls_handshake",
                t.tls_handshake,
                timeouts.tls_handshake,
            )?;
        }

        let mut pool = Pool::default();
        if let Some(p) = raw.pool {
            pool.max_idle = self.num("pool.max_idle", p.max_idle, pool.max_idle)?;
            pool.idle_timeout = self.dur("pool.idle_timeout", p.idle_timeout, pool.idle_timeout)?;
            pool.max_connections = self.num(
                "pool.max_connections",
                p.max_connections,
                pool.max_connections,
            )?;
            pool.queue = self.num("pool.queue", p.queue, pool.queue)?;
            pool.queue_timeout =
                self.dur("pool.queue_timeout", p.queue_timeout, pool.queue_timeout)?;
        }

        let mut http2 = config::Http2::default();
        if let Some(h) = raw.http2 {
            let d = http2;
            http2.max_concurrent_streams = self.num(
                "http2.max_concurrent_streams",
                h.max_concurrent_streams,
                d.max_concurrent_streams,
            )?;
            http2.initial_stream_window = self.num(
                "http2.initial_stream_window",
                h.initial_stream_window,
                d.initial_stream_window,
            )?;
            http2.initial_connection_window = self.num(
                "http2.initial_connection_window",
                h.initial_connection_window,
                d.initial_connection_window,
            )?;
            http2.max_frame_size =
                self.num("http2.max_frame_size", h.max_frame_size, d.max_frame_size)?;
            http2.max_requests = self.num("http2.max_requests", h.max_requests, d.max_requests)?;
            http2.max_age = self.dur("http2.max_age", h.max_age, d.max_age)?;
            http2.max_pending_accept_reset_streams = self.num(
                "http2.max_pending_accept_reset_streams",
                h.max_pending_accept_reset_streams,
                d.max_pending_accept_reset_streams,
            )?;
            http2.max_local_error_reset_streams = self.num(
                "http2.max_local_error_reset_streams",
                h.max_local_error_reset_streams,
                d.max_local_error_reset_streams,
            )?;
        }

        Ok(Config {
            listeners,
            clusters,
            routes,
            shards,
            timeouts,
            pool,
            http2,
            trusted_proxies,
            steer_client_ip,
            admin,
            admin_token: None, // read from admin_token_file by config::check
            admin_token_file,
            access_log,
            trace_start,
            upgrades,
            expect_continue,
            head_rules,
            tls_watch_interval,
            tls_ticket_rotation,
            upgrade_socket,
            resolvers,
            source: Some(self.file.to_string()),
            origins: std::mem::take(&mut self.origins),
        })
    }
}
