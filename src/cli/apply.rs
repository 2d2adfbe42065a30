//! How the flags map onto a `Config`: the defaults when no file is given (`base_config`), and
//! `apply`, which lays every given flag over the file's settings, the `--upstream*` flags of the
//! `default` cluster and the per-shard, pool and timeout flags; errors name the flag. Main thread,
//! at start and each reload.

use super::Args;
use crate::config::{self, Cluster, Config, Pool, Route, Shards, Timeouts};

impl Args {
    /// Starting point when no config file is given: defaults for this machine, nothing to proxy.
    pub fn base_config() -> Config {
        Config {
            listeners: Vec::new(),
            clusters: Vec::new(),
            routes: Vec::new(),
            shards: Shards::for_this_process(),
            timeouts: Timeouts::default(),
            pool: Pool::default(),
            http2: config::Http2::default(),
            trusted_proxies: Vec::new(),
            steer_client_ip: false,
            admin: Some(config::DEFAULT_ADMIN),
            admin_token: None,
            admin_token_file: None,
            access_log: config::AccessLogTarget::Off,
            trace_start: false,
            upgrades: config::default_upgrades(),
            expect_continue: config::ExpectMode::Forward,
            head_rules: crate::http::HeadRules::default(),
            tls_watch_interval: config::DEFAULT_TLS_WATCH_INTERVAL,
            tls_ticket_rotation: config::DEFAULT_TLS_TICKET_ROTATION,
            upgrade_socket: Some(config::DEFAULT_UPGRADE_SOCKET.into()),
            resolvers: Vec::new(),
            source: None,
            origins: config::Origins::default(),
        }
    }

    /// Applies every flag that was given on top of `cfg` and records it in `cfg.origins`.
    /// Errors name the flag.
    pub fn apply(&self, cfg: &mut Config) -> Result<(), String> {
        self.record_origins(cfg);
        self.apply_listeners(cfg)?;
        if !self.upstream.is_empty() {
            let written = self
                .upstream
                .iter()
                .map(|u| config::parse_endpoint(u).map_err(|e| format!("--upstream: {e}")))
                .collect::<Result<_, _>>()?;
            match cfg.clusters.iter_mut().find(|c| c.name == "default") {
                Some(c) => c.set_written(written),
                None => cfg.clusters.insert(0, Cluster::written("default", written)),
            }
            if cfg.routes.is_empty() {
                cfg.routes.push(Route::catch_all(0));
            }
        }
        self.apply_upstream_tls(cfg)?;
        self.apply_upstream_protocol(cfg)?;
        self.apply_policy(cfg)?;
        let s = &mut cfg.shards;
        if let Some(cpus) = &self.cpus {
            s.cpus = cpus.clone();
            if self.shards.is_none() {
                s.count = cpus.len();
            }
        }
        set(&mut s.count, self.shards);
        if self.no_pin {
            s.pin = false;
        }
        set(&mut s.uring_entries, self.uring_entries);
        if let Some(u) = &self.uring_setup {
            s.uring_setup = crate::config::UringSetup::parse(u).ok_or_else(|| {
                format!(
                    "--uring-setup: {u:?}: use {}",
                    crate::config::UringSetup::HELP
                )
            })?;
        }
        set(&mut s.backlog, self.backlog);
        set(&mut s.max_connections, self.max_connections);
        set(&mut s.buffer_size, self.buffer_size);
        set(&mut s.upstream_buffer_size, self.upstream_buffer_size);
        set(&mut s.splice_threshold, self.splice_threshold);
        set(&mut s.max_request_line, self.max_request_line);
        set(&mut s.idle_buffer_time, self.idle_buffer_time);
        set(&mut s.lean_above, self.lean_above);
        let p = &mut cfg.pool;
        set(&mut p.max_idle, self.pool_max_idle);
        set(&mut p.idle_timeout, self.pool_idle_timeout);
        set(&mut p.max_connections, self.max_upstream_connections);
        set(&mut p.queue, self.upstream_queue);
        set(&mut p.queue_timeout, self.upstream_queue_timeout);
        let t = &mut cfg.timeouts;
        set(&mut t.connect, self.connect_timeout);
        set(&mut t.header, self.header_timeout);
        set(&mut t.upstream, self.upstream_timeout);
        set(&mut t.idle, self.idle_timeout);
        set(&mut t.body, self.body_timeout);
        set(&mut t.drain, self.drain_timeout);
        if self.tunnel_idle_timeout.is_some_and(|d| d.is_zero()) {
            return Err("--tunnel-idle-timeout: must be greater than 0".into());
        }
        set(&mut t.tunnel_idle, self.tunnel_idle_timeout);
        set(&mut t.tunnel_drain_grace, self.tunnel_drain_grace);
        set(&mut t.drain_idle_grace, self.drain_idle_grace);
        if self.tls_handshake_timeout.is_some_and(|d| d.is_zero()) {
            return Err("--tls-handshake-timeout: must be greater than 0".into());
        }
        set(&mut t.tls_handshake, self.tls_handshake_timeout);
        set(&mut cfg.tls_ticket_rotation, self.tls_ticket_rotation);
        set(&mut cfg.tls_watch_interval, self.tls_watch_interval);
        self.http2.apply(&mut cfg.http2);
        Ok(())
    }

    /// `--upstream-tls` / `--upstream-ca`: the `default` cluster (the --upstream endpoints, or the
    /// file's `upstreams`) speaks TLS; the CA file's errors name the flag.
    fn apply_upstream_tls(&self, cfg: &mut Config) -> Result<(), String> {
        if !self.upstream_tls && self.upstream_ca.is_none() {
            return Ok(());
        }
        let flag = if self.upstream_ca.is_some() {
            "--upstream-ca"
        } else {
            "--upstream-tls"
        };
        let Some(i) = cfg.clusters.iter().position(|c| c.name == "default") else {
            return Err(format!(
                "{flag}: needs --upstream (or `upstreams` in the file): it applies to those \
                 endpoints; use [[clusters]] tls for the others"
            ));
        };
        if self.upstream_ca.as_deref() == Some("") {
            return Err("--upstream-ca: empty path".into());
        }
        let ca = self.upstream_ca.as_ref().map(std::path::PathBuf::from);
        cfg.clusters[i].tls = Some(config::UpstreamTls::new(ca));
        cfg.origins
            .replace(&format!("clusters[{i}].tls"), config::Origin::Flag(flag));
        Ok(())
    }

    /// `--upstream-protocol`: the `default` cluster's HTTP version, checked against its TLS.
    fn apply_upstream_protocol(&self, cfg: &mut Config) -> Result<(), String> {
        let Some(p) = &self.upstream_protocol else {
            return Ok(());
        };
        let flag = "--upstream-protocol";
        let p: config::UpstreamProtocol = p.parse().map_err(|e| format!("{flag}: {e}"))?;
        let Some(i) = cfg.clusters.iter().position(|c| c.name == "default") else {
            return Err(format!(
                "{flag}: needs --upstream (or `upstreams` in the file); use [[clusters]] protocol \
                 for the others"
            ));
        };
        p.check(cfg.clusters[i].tls.is_some())
            .map_err(|e| format!("{flag}: {e}"))?;
        cfg.clusters[i].protocol = p;
        cfg.origins.replace(
            &format!("clusters[{i}].protocol"),
            config::Origin::Flag(flag),
        );
        Ok(())
    }
}

fn set<T>(slot: &mut T, flag: Option<T>) {
    if let Some(v) = flag {
        *slot = v;
    }
}
