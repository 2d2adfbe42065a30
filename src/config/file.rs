//! The TOML config file: read, deserialized into raw spanned types, then checked field by field
//! into a `Config`. The only place that says "invalid config"; every error names file, line and field.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::policy_file::{self, EntryError, RawCluster, RawListener, RawRoute};
use super::{
    key_path, parse_duration, parse_endpoint, parse_listen, Cluster, Config, Listener, Origin,
    Origins, Pool, Route, Shards, Timeouts,
};

/// A config file that cannot be used, pointing at the offending place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column; 0 when the file could not be read at all.
    pub line: usize,
    pub col: usize,
    /// Key path, e.g. `timeouts.connect`, `routes[1].name`, `listen[0]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.col, self.field, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

type S<T> = Option<Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: S<Vec<Spanned<String>>>,
    upstreams: S<Vec<Spanned<String>>>,
    lb: S<String>,
    trusted_proxies: S<Vec<Spanned<String>>>,
    steer: S<String>,
    admin: S<String>,
    access_log: S<String>,
    trace: S<bool>,
    upgrades: S<Vec<String>>,
    expect_continue: S<String>,
    strict_http: S<bool>,
    underscores_in_headers: S<String>,
    listeners: Option<Vec<RawListener>>,
    clusters: Option<Vec<Spanned<RawCluster>>>,
    routes: Option<Vec<Spanned<RawRoute>>>,
    shards: Option<RawShards>,
    timeouts: Option<RawTimeouts>,
    pool: Option<RawPool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShards {
    count: S<u64>,
    cpus: S<Vec<u64>>,
    pin: S<bool>,
    uring_entries: S<u64>,
    uring_setup: S<String>,
    backlog: S<u64>,
    max_connections: S<u64>,
    buffer_size: S<u64>,
    upstream_buffer_size: S<u64>,
    splice_threshold: S<u64>,
    max_request_line: S<u64>,
    idle_buffer_time: S<String>,
    lean_above: S<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect: S<String>,
    header: S<String>,
    upstream: S<String>,
    idle: S<String>,
    body: S<String>,
    drain: S<String>,
    tunnel_idle: S<String>,
    tunnel_drain_grace: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    max_idle: S<u64>,
    idle_timeout: S<String>,
    max_connections: S<u64>,
    queue: S<u64>,
    queue_timeout: S<String>,
}

/// Reads and parses `path`; `config::check` the result once flags are applied.
pub fn load(path: &str) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_string(),
        line: 0,
        col: 0,
        field: String::new(),
        message: format!("cannot read config file: {e}"),
    })?;
    parse(path, &text)
}

/// Validates the text of a config file named `file` (the name is only used in errors).
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let mut b = Builder {
        file,
        text,
        origins: Origins::default(),
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let field = key_path::at(text, span.start);
        b.error(span, &field, e.message().trim().to_string())
    })?;
    b.build(raw)
}

/// Turns raw spanned values into a `Config`, remembering where each field was written.
struct Builder<'a> {
    file: &'a str,
    text: &'a str,
    origins: Origins,
}

impl Builder<'_> {
    fn error(&self, span: Range<usize>, field: &str, message: String) -> ConfigError {
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

    fn build(&mut self, raw: RawFile) -> Result<Config, ConfigError> {
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
            listeners.push(policy_file::listener(i, l).map_err(|e| self.entry(e))?);
        }

        let mut clusters = Vec::new();
        if let Some(list) = raw.upstreams {
            self.written("upstreams", list.span(), "upstreams");
            let mut endpoints = Vec::new();
            for (i, item) in list.into_inner().into_iter().enumerate() {
                endpoints.push(
                    parse_endpoint(item.get_ref())
                        .map_err(|m| self.error(item.span(), &format!("upstreams[{i}]"), m))?,
                );
            }
            let mut c = Cluster::new("default", endpoints);
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
            let c = policy_file::cluster(i, c.into_inner()).map_err(|e| self.entry(e))?;
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
            let r = policy_file::route(i, r.into_inner(), span.clone(), &names)
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
                    |m: crate::trusted::CidrError| {
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
            None => Some(super::DEFAULT_ADMIN),
            Some(a) => {
                self.written("admin", a.span(), "admin");
                super::parse_admin(a.get_ref()).map_err(|m| self.error(a.span(), "admin", m))?
            }
        };
        let access_log = match raw.access_log {
            None => super::AccessLogTarget::Off,
            Some(a) => {
                self.written("access_log", a.span(), "access_log");
                a.get_ref()
                    .parse()
                    .map_err(|m| self.error(a.span(), "access_log", m))?
            }
        };
        let trace_start = raw.trace.is_some_and(|t| t.into_inner());
        let upgrades = match raw.upgrades {
            None => super::default_upgrades(),
            Some(u) => super::parse_upgrades(u.get_ref())
                .map_err(|m| self.error(u.span(), "upgrades", m))?,
        };
        let expect_continue = match raw.expect_continue {
            None => super::ExpectMode::default(),
            Some(e) => super::ExpectMode::parse(e.get_ref())
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
                shards.uring_setup = super::UringSetup::parse(u.get_ref()).ok_or_else(|| {
                    let msg = format!("{:?}: use {}", u.get_ref(), super::UringSetup::HELP);
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

        Ok(Config {
            listeners,
            clusters,
            routes,
            shards,
            timeouts,
            pool,
            trusted_proxies,
            steer_client_ip,
            admin,
            access_log,
            trace_start,
            upgrades,
            expect_continue,
            head_rules,
            source: Some(self.file.to_string()),
            origins: std::mem::take(&mut self.origins),
        })
    }
}

/// 1-based line and column of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parsed and checked; a check error is turned back into a located `ConfigError`.
    fn full(text: &str) -> Result<Config, ConfigError> {
        let c = parse("t.toml", text)?;
        match super::super::check(&c) {
            Ok(()) => Ok(c),
            Err(e) => Err(match e.origin.map(|o| *o) {
                Some(Origin::File {
                    file,
                    line,
                    col,
                    key,
                }) => ConfigError {
                    file,
                    line,
                    col,
                    field: key,
                    message: e.message,
                },
                _ => ConfigError {
                    file: "t.toml".into(),
                    line: 0,
                    col: 0,
                    field: e.field,
                    message: e.message,
                },
            }),
        }
    }

    fn err(text: &str) -> ConfigError {
        full(text).expect_err("should be rejected")
    }

    #[test]
    fn minimal_file() {
        let c = full("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n").unwrap();
        assert_eq!(c.clusters[0].endpoints[0].addr.port(), 9);
        assert_eq!(c.timeouts, Timeouts::default());
    }

    #[test]
    fn bad_duration_names_line_and_field() {
        let e = err("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[timeouts]\nconnect = \"3x\"\n");
        assert_eq!((e.line, e.field.as_str()), (4, "timeouts.connect"));
        assert!(e.message.contains("invalid duration"), "{e}");
    }

    #[test]
    fn uring_setup_modes_and_a_bad_one() {
        let base = "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[shards]\n";
        for (text, want) in [
            ("plain", super::super::UringSetup::Plain),
            ("coop-taskrun", super::super::UringSetup::CoopTaskrun),
            ("defer-taskrun", super::super::UringSetup::DeferTaskrun),
            ("sqpoll:20", super::super::UringSetup::Sqpoll(20)),
        ] {
            let c = full(&format!("{base}uring_setup = \"{text}\"\n")).unwrap();
            assert_eq!(c.shards.uring_setup, want);
            assert_eq!(want.to_string(), text);
        }
        let e = err(&format!("{base}uring_setup = \"sqpoll\"\n"));
        assert_eq!((e.line, e.field.as_str()), (4, "shards.uring_setup"));
        assert!(e.message.contains("defer-taskrun, coop-taskrun"), "{e}");
    }

    #[test]
    fn idle_buffer_time_and_lean_above() {
        let base = "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[shards]\n";
        let c = full(&format!(
            "{base}idle_buffer_time = \"0\"\nlean_above = 10\n"
        ))
        .unwrap();
        assert_eq!(c.shards.idle_buffer_time, std::time::Duration::ZERO);
        assert_eq!(c.shards.lean_above, 10);
        let c = full(base).unwrap();
        assert_eq!(c.shards.idle_buffer_time, std::time::Duration::from_secs(1));
        assert_eq!(c.shards.lean_above, 256);
        let e = err(&format!("{base}idle_buffer_time = \"soon\"\n"));
        assert_eq!((e.line, e.field.as_str()), (4, "shards.idle_buffer_time"));
    }

    #[test]
    fn unknown_field() {
        let e = err("listen = [\"127.0.0.1:0\"]\n[pool]\nmax_idel = 3\n");
        assert_eq!((e.line, e.field.as_str()), (3, "pool.max_idel"));
        assert!(e.message.contains("unknown field"), "{e}");
    }

    /// Unknown keys and invalid values name a key the same way: `routes[1].x`, `listen[1]`.
    #[test]
    fn one_key_path_style() {
        let cases: &[(&str, &str, usize)] = &[
            ("[[routes]]\ncluster = \"a\"\n[[routes]]\ncluster = \"b\"\nnmae = \"x\"\n", "routes[1].nmae", 16),
            ("[[routes]]\ncluster = \"a\"\nrate_limit = { rate = \"1/s\", burt = 2 }\n", "routes[0].rate_limit.burt", 14),
            ("[[routes]]\ncluster = \"a\"\nmax_body = \"big\"\n", "routes[0].max_body", 14),
            ("[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:5\"]\n[clusters.breaker]\nfailurs = 1\n", "clusters[2].breaker.failurs", 16),
        ];
        for (tail, field, line) in cases {
            let e = err(&format!("{TWO_CLUSTERS}{tail}"));
            assert_eq!((e.field.as_str(), e.line), (*field, *line), "{tail}: {e}");
        }
        let e = err("listen = [\"127.0.0.1:0\",\n  \"nope\"]\nupstreams = [\"127.0.0.1:9\"]\n");
        assert_eq!((e.field.as_str(), e.line), ("listen[1]", 2), "{e}");
        let e = err("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\", 7]\n");
        assert_eq!((e.field.as_str(), e.line), ("upstreams[1]", 2), "{e}");
    }

    /// Start-up checks on file values point at the value that cannot be had.
    #[test]
    fn duplicate_listen_and_admin_clash_name_the_second_entry() {
        let e = err("listen = [\"127.0.0.1:7001\"]\nupstreams = [\"127.0.0.1:9\"]\n[[listeners]]\naddr = \"0.0.0.0:7001\"\n");
        assert_eq!((e.field.as_str(), e.line), ("listeners[0].addr", 4), "{e}");
        assert!(
            e.message
                .contains("overlaps 127.0.0.1:7001 (also listen[0] at t.toml:1:11)"),
            "{e}"
        );
        let e = err("listen = [\"127.0.0.1:7001\"]\nupstreams = [\"127.0.0.1:9\"]\nadmin = \"127.0.0.1:7001\"\n");
        assert_eq!((e.field.as_str(), e.line), ("admin", 3), "{e}");
        let e = err("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\naccess_log = \"/nonexistent-dir/a.log\"\n");
        assert_eq!((e.field.as_str(), e.line), ("access_log", 3), "{e}");
        assert!(e.message.contains("/nonexistent-dir does not exist"), "{e}");
    }

    #[test]
    fn wrong_type() {
        let e = err("[shards]\ncount = \"two\"\n");
        assert_eq!((e.line, e.field.as_str()), (2, "shards.count"));
    }

    #[test]
    fn bad_listen_and_limits() {
        let e = err("listen = [\"nope\"]\nupstreams = [\"127.0.0.1:9\"]\n");
        assert_eq!((e.line, e.field.as_str()), (1, "listen[0]"));
        let e = err("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[shards]\nbuffer_size = 10\n");
        assert_eq!((e.line, e.field.as_str()), (4, "shards.buffer_size"));
    }

    #[test]
    fn syntax_error_has_position() {
        let e = err("listen = [\n");
        assert!(e.line >= 1, "{e}");
    }

    const TWO_CLUSTERS: &str = "listen = [\"127.0.0.1:0\"]\n\
[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\", \"127.0.0.1:2 weight=3\"]\nlb = \"weighted\"\n\
[[clusters]]\nname = \"b\"\nendpoints = [\"127.0.0.1:3\"]\n[clusters.health_check]\ncheck = \"http:/hc\"\nexpect = \"2xx\"\n";

    #[test]
    fn clusters_and_routes() {
        let text = format!("{TWO_CLUSTERS}[[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\ncluster = \"b\"\nrewrite_prefix = \"/\"\nrate_limit = {{ rate = \"10/s\", burst = 5 }}\n[[routes]]\npath = \"/hz\"\ndirect = {{ status = 200, body = \"ok\" }}\n[[routes]]\ncluster = \"a\"\n");
        let c = full(&text).unwrap();
        assert_eq!(c.clusters.len(), 2);
        assert_eq!(c.clusters[0].endpoints[1].weight, 3);
        assert!(matches!(
            c.clusters[1].health.as_ref().map(|h| &h.kind),
            Some(super::super::ProbeKind::Http {
                expect: (200, 299),
                ..
            })
        ));
        assert_eq!(c.routes.len(), 3);
        assert_eq!(c.routes[0].cluster, Some(1));
        assert_eq!(c.routes[1].cluster, None);
        assert!(c.routes[1].direct.is_some());
        assert_eq!(c.routes[2].name, "route2");
    }

    #[test]
    fn route_errors_name_entry_and_line() {
        let cases: &[(&str, &str, usize)] = &[
            ("[[routes]]\ncluster = \"nope\"\n", "routes[0].cluster", 13),
            ("[[routes]]\ncluster = \"a\"\npath = \"x\"\n", "routes[0].path", 14),
            ("[[routes]]\ncluster = \"a\"\npath = \"/x\"\npath_prefix = \"/y\"\n", "routes[0].path_prefix", 15),
            ("[[routes]]\ncluster = \"a\"\nrate_limit = { rate = \"fast\" }\n", "routes[0].rate_limit.rate", 14),
            ("[[routes]]\ncluster = \"a\"\nretry = { on = [\"500\"] }\n", "routes[0].retry.on", 14),
            ("[[routes]]\ncluster = \"a\"\nrequest_headers_add = { \"content-length\" = \"1\" }\n", "routes[0].request_headers_add", 14),
            ("[[routes]]\npath = \"/x\"\n", "routes[0].cluster", 12),
        ];
        for (tail, field, line) in cases {
            let e = err(&format!("{TWO_CLUSTERS}{tail}"));
            assert_eq!((e.field.as_str(), e.line), (*field, *line), "{tail}: {e}");
        }
    }

    #[test]
    fn cluster_errors_name_entry() {
        let e = err("listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\nlb = \"fastest\"\n");
        assert_eq!((e.field.as_str(), e.line), ("clusters[0].lb", 5), "{e}");
        let e = err("listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1 weight=0\"]\n");
        assert_eq!(e.field, "clusters[0].endpoints", "{e}");
        let e = err(&format!(
            "{TWO_CLUSTERS}[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n"
        ));
        assert_eq!(e.field, "clusters[2].name", "{e}");
    }

    #[test]
    fn operations_settings() {
        let c = full("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\nadmin = \"off\"\naccess_log = \"stdout\"\nsteer = \"client-ip\"\ntrusted_proxies = [\"10.0.0.0/8\"]\ntrace = true\n").unwrap();
        assert_eq!(c.admin, None);
        assert_eq!(c.access_log, super::super::AccessLogTarget::Stdout);
        assert!(c.steer_client_ip && c.trace_start);
        assert_eq!(c.trusted_proxies.len(), 1);
        let e = err("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\ntrusted_proxies = [\"10.0.0.1/8\"]\n");
        assert_eq!((e.field.as_str(), e.line), ("trusted_proxies[0]", 3), "{e}");
    }

    #[test]
    fn head_rules_settings() {
        let base = "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n";
        let c = full(base).unwrap();
        assert_eq!(c.head_rules, crate::http::HeadRules::default());
        let c = full(&format!(
            "{base}strict_http = true\nunderscores_in_headers = \"reject\"\n"
        ))
        .unwrap();
        assert!(c.head_rules.strict);
        assert_eq!(c.head_rules.underscores, crate::http::Underscores::Reject);
        let e = err(&format!("{base}underscores_in_headers = \"allow\"\n"));
        assert_eq!((e.line, e.field.as_str()), (3, "underscores_in_headers"));
        assert!(e.message.contains("drop, pass or reject"), "{e}");
        let e = err(&format!("{base}strict_http = \"yes\"\n"));
        assert_eq!((e.line, e.field.as_str()), (3, "strict_http"), "{e}");
    }

    #[test]
    fn zero_or_huge_values_that_would_break_the_proxy_are_rejected() {
        let cases: &[(&str, &str)] = &[
            ("[[clusters]]\nname = \"z\"\nendpoints = [\"127.0.0.1:4\"]\nmax_pending = 0\n", "clusters[2].max_pending"),
            ("[[clusters]]\nname = \"z\"\nendpoints = [\"127.0.0.1:4\"]\nresolve_interval = \"0\"\n", "clusters[2].resolve_interval"),
            ("[[clusters]]\nname = \"z\"\nendpoints = [\"127.0.0.1:4\"]\n[clusters.health_check]\ncheck = \"tcp\"\ninterval = \"0\"\n", "clusters[2].health_check.interval"),
            ("[[routes]]\ncluster = \"a\"\ntimeouts = { upstream = \"0\" }\n", "routes[0].timeouts.upstream"),
            ("[[routes]]\ncluster = \"a\"\ntimeouts = { body = \"200h\" }\n", "routes[0].timeouts.body"),
        ];
        for (tail, field) in cases {
            let e = err(&format!("{TWO_CLUSTERS}{tail}"));
            assert_eq!(e.field, *field, "{tail}: {e}");
        }
    }
}
