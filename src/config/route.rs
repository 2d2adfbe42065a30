//! Validated route settings: what a request must look like to take a route, and what the route
//! does with it (cluster, rewrite, header edits, limits, rate limit, retries, direct answer).

use std::time::Duration;

use crate::policy::ratelimit::Rate;
use crate::policy::route::MatchSpec;

/// One route; the first whose `matches` accepts a request takes it.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matches: MatchSpec,
    /// Index into `Config::clusters`; `None` only with a direct response.
    pub cluster: Option<usize>,
    /// Replaces the matched path prefix (prefix routes only).
    pub rewrite_prefix: Option<String>,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    /// Overrides of the global connect / upstream / body timeouts.
    pub timeouts: RouteTimeouts,
    /// Largest request body accepted (413 beyond); `None` = unlimited.
    pub max_body: Option<u64>,
    /// Answer without an upstream (health pages, maintenance).
    pub direct: Option<Direct>,
    pub rate_limit: Option<RateLimit>,
    pub retry: RetryPolicy,
    /// `Upgrade` protocols forwarded on this route; `None` = the process-wide list.
    pub upgrades: Option<Vec<String>>,
    /// Who answers `Expect: 100-continue` on this route; `None` = the process-wide setting.
    pub expect: Option<super::ExpectMode>,
    /// Idle time that closes this route's tunnels; `None` = `timeouts.tunnel_idle`.
    pub tunnel_idle_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderEdits {
    /// Set (replacing any header of the same name).
    pub add: Vec<(String, String)>,
    /// Lower-case names removed.
    pub remove: Vec<String>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RouteTimeouts {
    pub connect: Option<Duration>,
    pub upstream: Option<Duration>,
    pub body: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Direct {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub rate: Rate,
    pub burst: u32,
    pub key: RateKey,
    /// `scope = "global"`: shared with other hosts through Redis; `None` is local.
    pub global: Option<super::GlobalLimit>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RateKey {
    ClientIp,
    /// A request header's value (lower-case name), e.g. an API key; absent → the client IP.
    Header(String),
}

impl RateKey {
    pub fn parse(s: &str) -> Result<RateKey, String> {
        if s == "client-ip" {
            return Ok(RateKey::ClientIp);
        }
        match s.strip_prefix("header:") {
            Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b':') => {
                Ok(RateKey::Header(h.to_ascii_lowercase()))
            }
            _ => Err(format!("{s:?}: use client-ip or header:NAME")),
        }
    }
}

/// When a failed request is sent again to another endpoint (idempotent methods, no body).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Extra attempts; 0 disables retries (the stale pooled-connection retry stays).
    pub attempts: u32,
    pub on_connect: bool,
    pub on_reset: bool,
    pub on_timeout: bool,
    /// Upstream statuses retried (from 502, 503, 504).
    pub on_status: Vec<u16>,
    /// Retries may add at most this share of requests, plus `min_per_sec`.
    pub budget_ratio: f64,
    pub budget_min_per_sec: u32,
}

impl Default for RetryPolicy {
    /// As nginx's proxy_next_upstream default: one more try on a connect error or reset.
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            on_connect: true,
            on_reset: true,
            on_timeout: false,
            on_status: Vec::new(),
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
        }
    }
}

impl RetryPolicy {
    /// Sets the conditions from a list like `["connect", "reset", "timeout", "502", "503"]`.
    pub fn set_on(&mut self, list: &[String]) -> Result<(), String> {
        self.on_connect = false;
        self.on_reset = false;
        self.on_timeout = false;
        self.on_status.clear();
        for item in list {
            match item.as_str() {
                "connect" => self.on_connect = true,
                "reset" => self.on_reset = true,
                "timeout" => self.on_timeout = true,
                "502" | "503" | "504" => self.on_status.push(item.parse().unwrap_or(502)),
                other => {
                    return Err(format!(
                        "{other:?}: retry conditions are connect, reset, timeout, 502, 503, 504"
                    ))
                }
            }
        }
        Ok(())
    }
}

impl Route {
    /// The upgrade allow-list in force on this route.
    pub fn upgrades_in<'a>(&'a self, global: &'a super::Config) -> &'a [String] {
        self.upgrades.as_deref().unwrap_or(&global.upgrades)
    }

    /// Whether `Expect: 100-continue` goes upstream on this route.
    pub fn forwards_expect(&self, global: &super::Config) -> bool {
        self.expect.unwrap_or(global.expect_continue) == super::ExpectMode::Forward
    }

    /// The idle time that closes this route's tunnels.
    pub fn tunnel_idle(&self, global: &super::Config) -> Duration {
        self.tunnel_idle_timeout
            .unwrap_or(global.timeouts.tunnel_idle)
    }

    /// The route used when the file has none: everything to cluster 0.
    pub fn catch_all(cluster: usize) -> Route {
        Route {
            name: "default".to_string(),
            matches: MatchSpec {
                host: crate::policy::route::HostPattern::Any,
                path: crate::policy::route::PathPattern::Any,
                methods: Vec::new(),
                headers: Vec::new(),
            },
            cluster: Some(cluster),
            rewrite_prefix: None,
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            timeouts: RouteTimeouts::default(),
            max_body: None,
            direct: None,
            rate_limit: None,
            retry: RetryPolicy::default(),
            upgrades: None,
            expect: None,
            tunnel_idle_timeout: None,
        }
    }
}
