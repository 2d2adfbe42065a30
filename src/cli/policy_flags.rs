//! The policy and operations flags over a `Config`: `--lb`, `--health-*` and `--rate-*` applied
//! to every cluster or route of the file, then `--steer`, `--trusted-proxy`, `--admin*`,
//! `--upgrade-socket`, `--access-log`, `--trace`, `--upgrades`, `--expect-continue` and the head
//! rules; errors name the flag. Main thread, at start and each reload.

use super::Args;
use crate::config::{
    self, Config, GlobalLimit, HealthCheck, OnError, RateKey, RateLimit, RedisUrl, DEFAULT_SYNC,
};

impl Args {
    /// The one-cluster flags, applied to every cluster / route, and the operations flags.
    pub(super) fn apply_policy(&self, cfg: &mut Config) -> Result<(), String> {
        if let Some(lb) = &self.lb {
            let alg: crate::policy::balance::Algorithm =
                lb.parse().map_err(|e| format!("--lb: {e}"))?;
            cfg.clusters.iter_mut().for_each(|c| c.lb = alg.clone());
        }
        if let Some(kind) = &self.health_check {
            let kind = HealthCheck::parse_kind(kind).map_err(|e| format!("--health-check: {e}"))?;
            for c in &mut cfg.clusters {
                let mut hc = HealthCheck::new(kind.clone());
                if let Some(old) = &c.health {
                    hc.interval = old.interval;
                }
                c.health = Some(hc);
            }
        }
        if let Some(every) = self.health_interval {
            if every.is_zero() {
                return Err("--health-interval: must be greater than 0".into());
            }
            if self.health_check.is_none() && cfg.clusters.iter().all(|c| c.health.is_none()) {
                return Err("--health-interval: needs --health-check".into());
            }
            cfg.clusters
                .iter_mut()
                .filter_map(|c| c.health.as_mut())
                .for_each(|h| h.interval = every);
        }
        if let Some(rate) = &self.rate_limit {
            let rate = rate.parse().map_err(|e| format!("--rate-limit: {e}"))?;
            let global = match &self.rate_limit_redis {
                None => None,
                Some(url) => Some(GlobalLimit {
                    redis: RedisUrl::parse(url).map_err(|e| format!("--rate-limit-redis: {e}"))?,
                    sync: DEFAULT_SYNC,
                    on_error: OnError::Allow,
                }),
            };
            for r in &mut cfg.routes {
                r.rate_limit = Some(RateLimit {
                    rate,
                    burst: self.rate_burst.unwrap_or(0),
                    key: RateKey::ClientIp,
                    global: global.clone(),
                });
            }
        } else if let Some(burst) = self.rate_burst {
            let mut any = false;
            for rl in cfg.routes.iter_mut().filter_map(|r| r.rate_limit.as_mut()) {
                rl.burst = burst;
                any = true;
            }
            if !any {
                return Err("--rate-burst: needs --rate-limit".into());
            }
        }
        if self.rate_limit.is_none() && self.rate_limit_redis.is_some() {
            return Err("--rate-limit-redis: needs --rate-limit".into());
        }
        if let Some(steer) = &self.steer {
            cfg.steer_client_ip = match steer.as_str() {
                "client-ip" => true,
                "none" => false,
                other => return Err(format!("--steer: {other:?}: use client-ip or none")),
            };
        }
        for t in &self.trusted_proxy {
            cfg.trusted_proxies.push(
                t.parse().map_err(|e: crate::policy::trusted::CidrError| {
                    format!("--trusted-proxy: {e}")
                })?,
            );
        }
        if let Some(a) = &self.admin {
            cfg.admin = config::parse_admin(a).map_err(|e| format!("--admin: {e}"))?;
        }
        if let Some(t) = &self.admin_token {
            let token = crate::coordinator::admin::Token::parse(t);
            cfg.admin_token = Some(token.map_err(|e| format!("--admin-token: {e}"))?);
            cfg.admin_token_file = None; // over the file's admin_token_file
        }
        if let Some(path) = &self.admin_token_file {
            let path = config::parse_token_file(path);
            cfg.admin_token_file = Some(path.map_err(|e| format!("--admin-token-file: {e}"))?);
            cfg.admin_token = None; // read by config::check, at start and every reload
        }
        if let Some(u) = &self.upgrade_socket {
            cfg.upgrade_socket =
                config::parse_upgrade_socket(u).map_err(|e| format!("--upgrade-socket: {e}"))?;
        }
        if let Some(a) = &self.access_log {
            cfg.access_log = a.parse().map_err(|e| format!("--access-log: {e}"))?;
        }
        if self.trace {
            cfg.trace_start = true;
        }
        if let Some(u) = &self.upgrades {
            cfg.upgrades =
                config::parse_upgrades_flag(u).map_err(|e| format!("--upgrades: {e}"))?;
        }
        if let Some(e) = &self.expect_continue {
            cfg.expect_continue =
                config::ExpectMode::parse(e).map_err(|e| format!("--expect-continue: {e}"))?;
        }
        if self.strict_http {
            cfg.head_rules.strict = true;
        }
        if let Some(u) = &self.underscores_in_headers {
            cfg.head_rules.underscores = crate::http::Underscores::parse(u).ok_or_else(|| {
                format!(
                    "--underscores-in-headers: {u:?}: use {}",
                    crate::http::Underscores::HELP
                )
            })?;
        }
        Ok(())
    }
}
