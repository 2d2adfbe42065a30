//! The running config written back as TOML in the file's own format (for the admin `/config`),
//! with secrets redacted: values of added headers whose names carry credentials, and the admin
//! token (only its file is named).

use std::fmt::Write;

use super::{Config, HeaderEdits, ListenerTls, ProbeKind, RateKey, Route, UpstreamTls};
use crate::policy::route::{HeaderPattern, HostPattern, PathPattern};

/// Header names whose configured values are never shown.
fn secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "secret",
        "key",
        "password",
        "credential",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// A TOML basic string.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
}

fn dur(d: std::time::Duration) -> String {
    q(&format!("{}ms", d.as_millis()))
}

/// The config as TOML.
pub fn render(c: &Config) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# running config{}",
        c.source
            .as_ref()
            .map_or(String::new(), |s| format!(" (from {s})"))
    );
    let tp: Vec<String> = c
        .trusted_proxies
        .iter()
        .map(|t| q(&t.to_string()))
        .collect();
    let _ = writeln!(o, "trusted_proxies = [{}]", tp.join(", "));
    let _ = writeln!(
        o,
        "steer = {}",
        q(if c.steer_client_ip {
            "client-ip"
        } else {
            "none"
        })
    );
    let _ = writeln!(
        o,
        "admin = {}",
        q(&c.admin.map_or("off".to_string(), |a| a.to_string()))
    );
    // The admin token itself is never written: the file it comes from, or a comment.
    match (&c.admin_token_file, &c.admin_token) {
        (Some(p), _) => {
            let _ = writeln!(o, "admin_token_file = {}", q(&p.display().to_string()));
        }
        (None, Some(_)) => o.push_str("# admin token: set by --admin-token (not shown)\n"),
        (None, None) => {}
    }
    let _ = writeln!(o, "access_log = {}", q(&c.access_log.to_string()));
    let _ = writeln!(o, "trace = {}", c.trace_start);
    let _ = writeln!(o, "upgrades = [{}]", list(&c.upgrades));
    let _ = writeln!(o, "expect_continue = {}", q(c.expect_continue.name()));
    let _ = writeln!(o, "strict_http = {}", c.head_rules.strict);
    let _ = writeln!(
        o,
        "underscores_in_headers = {}",
        q(c.head_rules.underscores.name())
    );
    let _ = writeln!(o, "tls_watch_interval = {}", dur(c.tls_watch_interval));
    let _ = writeln!(o, "tls_ticket_rotation = {}", dur(c.tls_ticket_rotation));
    let _ = writeln!(
        o,
        "upgrade_socket = {}",
        q(&c.upgrade_socket
            .as_ref()
            .map_or("off".into(), |p| p.display().to_string()))
    );
    if !c.resolvers.is_empty() {
        let rs: Vec<String> = c.resolvers.iter().map(|r| r.to_string()).collect();
        let _ = writeln!(o, "resolvers = [{}]", list(&rs));
    }
    for l in &c.listeners {
        let _ = writeln!(
            o,
            "\n[[listeners]]\naddr = {}\nproxy_protocol = {}\nh2c = {}",
            q(&l.addr.to_string()),
            l.proxy_protocol,
            l.h2c
        );
        if let Some(t) = &l.tls {
            tls(&mut o, t);
        }
    }
    let s = &c.shards;
    let cpus: Vec<String> = s.cpus.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(o, "\n[shards]\ncount = {}\ncpus = [{}]\npin = {}\nuring_entries = {}\nuring_setup = \"{}\"\nbacklog = {}\nmax_connections = {}\nbuffer_size = {}\nupstream_buffer_size = {}\nsplice_threshold = {}\nmax_request_line = {}\nidle_buffer_time = {}\nlean_above = {}",
        s.count, cpus.join(", "), s.pin, s.uring_entries, s.uring_setup, s.backlog, s.max_connections, s.buffer_size, s.upstream_buffer_size, s.splice_threshold, s.max_request_line, dur(s.idle_buffer_time), s.lean_above);
    let t = &c.timeouts;
    let _ = writeln!(
        o,
        "\n[timeouts]\nconnect = {}\nheader = {}\nupstream = {}\nidle = {}\nbody = {}\ndrain = {}\ntunnel_idle = {}\ntunnel_drain_grace = {}\ndrain_idle_grace = {}\ntls_handshake = {}",
        dur(t.connect),
        dur(t.header),
        dur(t.upstream),
        dur(t.idle),
        dur(t.body),
        dur(t.drain),
        dur(t.tunnel_idle),
        dur(t.tunnel_drain_grace),
        dur(t.drain_idle_grace),
        dur(t.tls_handshake)
    );
    let p = &c.pool;
    let _ = writeln!(o, "\n[pool]\nmax_idle = {}\nidle_timeout = {}\nmax_connections = {}\nqueue = {}\nqueue_timeout = {}",
        p.max_idle, dur(p.idle_timeout), p.max_connections, p.queue, dur(p.queue_timeout));
    let h = &c.http2;
    let _ = writeln!(o, "\n[http2]\nmax_concurrent_streams = {}\ninitial_stream_window = {}\ninitial_connection_window = {}\nmax_frame_size = {}\nmax_requests = {}\nmax_age = {}\nmax_pending_accept_reset_streams = {}\nmax_local_error_reset_streams = {}",
        h.max_concurrent_streams, h.initial_stream_window, h.initial_connection_window, h.max_frame_size, h.max_requests, dur(h.max_age),
        h.max_pending_accept_reset_streams, h.max_local_error_reset_streams);
    for cl in &c.clusters {
        // As written: discovered endpoints show as their `dns:`/`srv:` entries.
        let eps: Vec<String> = (cl.endpoints.iter())
            .filter(|e| !super::discovery::is_discovered(&e.name))
            .map(|e| q(&format!("{} weight={}", e.name, e.weight)))
            .chain(cl.discover.iter().map(|d| q(&d.written())))
            .collect();
        let _ = writeln!(o, "\n[[clusters]]\nname = {}\nendpoints = [{}]\nlb = {}\nmax_connections = {}\nmax_pending = {}\nresolve_interval = {}\nmin_ttl = {}\nfailure_statuses = {:?}\nmax_ejection_percent = {}",
            q(&cl.name), eps.join(", "), q(&cl.lb.name()), cl.max_connections, cl.max_pending, dur(cl.resolve_interval), dur(cl.min_ttl), cl.failure_statuses, cl.max_ejection_percent);
        if let Some(d) = cl.max_stale {
            let _ = writeln!(o, "max_stale = {}", dur(d));
        }
        let _ = writeln!(o, "protocol = {}", q(cl.protocol.name()));
        if let Some(t) = &cl.tls {
            upstream_tls(&mut o, t);
        }
        let b = &cl.breaker;
        let _ = writeln!(o, "[clusters.breaker]\nfailures = {}\nopen_timeout = {}\nmax_open_timeout = {}\nhalf_open_requests = {}\nsuccesses = {}",
            b.failures, dur(b.open_timeout), dur(b.max_open_timeout), b.half_open_requests, b.successes);
        if let Some(h) = &cl.health {
            let (check, expect) = match &h.kind {
                ProbeKind::Tcp => ("tcp".to_string(), None),
                ProbeKind::Http { path, expect } => (format!("http:{path}"), Some(*expect)),
                ProbeKind::Grpc { service } if service.is_empty() => ("grpc".to_string(), None),
                ProbeKind::Grpc { service } => (format!("grpc:{service}"), None),
            };
            let _ = writeln!(o, "[clusters.health_check]\ncheck = {}\ninterval = {}\ntimeout = {}\nrise = {}\nfall = {}",
                q(&check), dur(h.interval), dur(h.timeout), h.rise, h.fall);
            if let Some((a, b)) = expect {
                let _ = writeln!(o, "expect = {}", q(&format!("{a}-{b}")));
            }
        }
    }
    for (i, r) in c.routes.iter().enumerate() {
        route(&mut o, c, i, r);
    }
    o
}

/// A listener's `tls = { … }` inline table (paths only; nothing secret is read here).
fn tls(o: &mut String, t: &ListenerTls) {
    let path = |p: &std::path::Path| q(&p.to_string_lossy());
    let certs: Vec<String> = t
        .certificates
        .iter()
        .map(|c| format!("{{ cert = {}, key = {} }}", path(&c.cert), path(&c.key)))
        .collect();
    let mut parts = vec![format!("certificates = [{}]", certs.join(", "))];
    if let Some(ca) = &t.client_ca {
        parts.push(format!("client_ca = {}", path(ca)));
        parts.push(format!("client_auth = {}", q(t.client_auth.name())));
    }
    parts.push(format!("alpn = [{}]", list(&t.alpn)));
    let _ = writeln!(o, "tls = {{ {} }}", parts.join(", "));
}

/// A cluster's `tls = { … }` inline table (paths only).
fn upstream_tls(o: &mut String, t: &UpstreamTls) {
    let path = |p: &std::path::Path| q(&p.to_string_lossy());
    let mut parts = Vec::new();
    if let Some(ca) = &t.ca {
        parts.push(format!("ca = {}", path(ca)));
    }
    if let Some(sni) = &t.sni {
        parts.push(format!("sni = {}", q(sni)));
    }
    parts.push(format!("verify = {}", t.verify));
    if let Some(c) = &t.client {
        parts.push(format!("cert = {}, key = {}", path(&c.cert), path(&c.key)));
    }
    let _ = writeln!(o, "tls = {{ {} }}", parts.join(", "));
}

fn route(o: &mut String, c: &Config, _i: usize, r: &Route) {
    let _ = writeln!(o, "\n[[routes]]\nname = {}", q(&r.name));
    match &r.matches.host {
        HostPattern::Any => {}
        HostPattern::Exact(h) => {
            let _ = writeln!(o, "host = {}", q(h));
        }
        HostPattern::Suffix(h) => {
            let _ = writeln!(o, "host = {}", q(&format!("*{h}")));
        }
    }
    match &r.matches.path {
        PathPattern::Any => {}
        PathPattern::Exact(p) => {
            let _ = writeln!(o, "path = {}", q(p));
        }
        PathPattern::Prefix(p) => {
            let _ = writeln!(o, "path_prefix = {}", q(p));
        }
        other => {
            let _ = writeln!(o, "# path_template: {other:?}");
        }
    }
    if !r.matches.methods.is_empty() {
        let m: Vec<String> = r.matches.methods.iter().map(|m| q(m)).collect();
        let _ = writeln!(o, "methods = [{}]", m.join(", "));
    }
    let mut exact = Vec::new();
    let mut present = Vec::new();
    for (n, p) in &r.matches.headers {
        match p {
            HeaderPattern::Present => present.push(q(n)),
            HeaderPattern::Exact(v) => exact.push(format!(
                "{} = {}",
                q(n),
                q(if secret(n) {
                    "<redacted>"
                } else {
                    std::str::from_utf8(v).unwrap_or("<binary>")
                })
            )),
        }
    }
    if !exact.is_empty() {
        let _ = writeln!(o, "headers = {{ {} }}", exact.join(", "));
    }
    if !present.is_empty() {
        let _ = writeln!(o, "headers_present = [{}]", present.join(", "));
    }
    if let Some(ci) = r.cluster {
        let _ = writeln!(o, "cluster = {}", q(&c.clusters[ci].name));
    }
    if let Some(p) = &r.rewrite_prefix {
        let _ = writeln!(o, "rewrite_prefix = {}", q(p));
    }
    edits(o, "request_headers", &r.request_headers);
    edits(o, "response_headers", &r.response_headers);
    if let Some(m) = r.max_body {
        let _ = writeln!(o, "max_body = {m}");
    }
    if let Some(d) = &r.direct {
        let _ = writeln!(
            o,
            "direct = {{ status = {}, body = {}, content_type = {} }}",
            d.status,
            q(&d.body),
            q(&d.content_type)
        );
    }
    let t = &r.timeouts;
    let parts: Vec<String> = [
        ("connect", t.connect),
        ("upstream", t.upstream),
        ("body", t.body),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|d| format!("{k} = {}", dur(d))))
    .collect();
    if !parts.is_empty() {
        let _ = writeln!(o, "timeouts = {{ {} }}", parts.join(", "));
    }
    if let Some(u) = &r.upgrades {
        let _ = writeln!(o, "upgrades = [{}]", list(u));
    }
    if let Some(e) = r.expect {
        let _ = writeln!(o, "expect = {}", q(e.name()));
    }
    if let Some(d) = r.tunnel_idle_timeout {
        let _ = writeln!(o, "tunnel_idle_timeout = {}", dur(d));
    }
    if let Some(rl) = &r.rate_limit {
        let key = match &rl.key {
            RateKey::ClientIp => "client-ip".to_string(),
            RateKey::Header(h) => format!("header:{h}"),
        };
        let global = match &rl.global {
            None => String::new(),
            Some(g) => format!(
                ", scope = \"global\", redis = {}, sync = {}, on_error = {}",
                q(&g.redis.text),
                dur(g.sync),
                q(g.on_error.name())
            ),
        };
        let _ = writeln!(
            o,
            "rate_limit = {{ rate = {}, burst = {}, key = {}{global} }}",
            q(&format!("{}/s", rl.rate.per_second)),
            rl.burst,
            q(&key)
        );
    }
    let p = &r.retry;
    let mut on = Vec::new();
    if p.on_connect {
        on.push(q("connect"));
    }
    if p.on_reset {
        on.push(q("reset"));
    }
    if p.on_timeout {
        on.push(q("timeout"));
    }
    on.extend(p.on_status.iter().map(|s| q(&s.to_string())));
    let _ = writeln!(
        o,
        "retry = {{ attempts = {}, on = [{}], budget_ratio = {}, budget_min_per_sec = {} }}",
        p.attempts,
        on.join(", "),
        p.budget_ratio,
        p.budget_min_per_sec
    );
}

fn edits(o: &mut String, prefix: &str, e: &HeaderEdits) {
    if !e.add.is_empty() {
        let items: Vec<String> = e
            .add
            .iter()
            .map(|(n, v)| format!("{} = {}", q(n), q(if secret(n) { "<redacted>" } else { v })))
            .collect();
        let _ = writeln!(o, "{prefix}_add = {{ {} }}", items.join(", "));
    }
    if !e.remove.is_empty() {
        let items: Vec<String> = e.remove.iter().map(|n| q(n)).collect();
        let _ = writeln!(o, "{prefix}_remove = [{}]", items.join(", "));
    }
}
