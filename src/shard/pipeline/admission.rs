//! Admission of one parsed request, before anything reaches an upstream: the route (404 when none
//! matches), the route's body limit (413), its rate limit (429 with Retry-After and RateLimit-*;
//! a `scope = "global"` limit first asks the fleet-wide "deny until T" table and counts what its
//! local bucket admitted), a direct response, and the rewrite plan for the upstream head.
//! Sans-IO: a front-end calls it once the request's head is parsed (inside `request::process`
//! for HTTP/1.1). Shard thread.

use std::net::IpAddr;
use std::time::Instant;

use crate::config::RateKey;
use crate::http::lookup::{cookie_value, header_value};
use crate::http::name_is;
use crate::http::request::{Parsed, Plan};
use crate::policy::balance::{Algorithm, HashOn};
use crate::policy::ratelimit::Decision;
use crate::policy::route::{strip_prefix_len, RouteInput};
use crate::shard::table::{rate_key, Table};

/// What happens to a request once its head is valid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Forward,
    NotFound,
    /// The route answers itself (`direct`).
    Direct,
    /// Content-Length beyond the route's `max_body`.
    TooLarge,
    /// Over the route's rate limit (429).
    Limited,
}

/// Per-request scratch the admission fills, owned by the connection and reused.
#[derive(Default)]
pub struct Scratch {
    /// The balancer's hash key (client IP octets, a header or cookie value); empty = none.
    pub key: Vec<u8>,
    /// Header lines added to the final response (route edits, RateLimit-*).
    pub extra: Vec<u8>,
    /// Method and path, kept for the access log when it is on.
    pub method: Vec<u8>,
    pub path: Vec<u8>,
}

/// Decides about `p`; returns the upstream head plan, the route index and the verdict.
pub fn admit<'t>(
    table: &'t Table,
    client: IpAddr,
    log: bool,
    ids: (u64, u128),
    p: &Parsed<'_>,
    s: &mut Scratch,
) -> (Plan<'t>, Option<usize>, Verdict) {
    s.key.clear();
    s.extra.clear();
    if log {
        s.method.clear();
        s.method.extend_from_slice(p.method);
        s.path.clear();
        s.path.extend_from_slice(p.target);
    }
    let local = |v| {
        let mut plan = Plan::forward();
        plan.answer_locally = true;
        (plan, v)
    };
    let input = RouteInput {
        method: p.method,
        host: p.host,
        target: p.target,
        headers: p.headers,
    };
    let Some(i) = table.router.find(&input) else {
        let (plan, v) = local(Verdict::NotFound);
        return (plan, None, v);
    };
    let cfg = &table.config.routes[i];
    let view = &table.routes[i];
    if let (Some(max), Some(len)) = (cfg.max_body, p.content_length) {
        if len > max {
            let (plan, v) = local(Verdict::TooLarge);
            return (plan, Some(i), v);
        }
    }
    let client = real_client(table, client, p);
    if let (Some(limiter), Some(rl), Some(fields)) =
        (&view.limiter, &cfg.rate_limit, &view.rate_headers)
    {
        let header = match &rl.key {
            RateKey::Header(name) => header_value(p.headers, name),
            RateKey::ClientIp => None,
        };
        let global = rl.global.is_some();
        let key = rate_key(&rl.key, global, client, header);
        let now = Instant::now();
        // The fleet-wide verdict first: a key over the global allowance spends no local token.
        if global {
            if let Some(retry_after) = table.global.denied(i as u32, key, now) {
                let stats = &view.stats;
                stats.rate_limited.set(stats.rate_limited.get() + 1);
                fields.limited(&mut s.extra, retry_after, retry_after);
                let (plan, v) = local(Verdict::Limited);
                return (plan, Some(i), v);
            }
        }
        match limiter.take(key, now) {
            Decision::Allowed { remaining, reset } => {
                if global {
                    table.global.record(i as u32, key);
                }
                fields.allowed(&mut s.extra, remaining, reset)
            }
            Decision::Limited { retry_after, reset } => {
                let stats = &view.stats;
                stats.rate_limited.set(stats.rate_limited.get() + 1);
                fields.limited(&mut s.extra, retry_after, reset);
                let (plan, v) = local(Verdict::Limited);
                return (plan, Some(i), v);
            }
        }
    }
    s.extra.extend_from_slice(&view.response_add);
    if cfg.direct.is_some() {
        let (plan, v) = local(Verdict::Direct);
        return (plan, Some(i), v);
    }
    if let Some(cluster) = cfg.cluster {
        if let Algorithm::Hash(on) = &table.config.clusters[cluster].lb {
            match on {
                HashOn::ClientIp => match client {
                    IpAddr::V4(a) => s.key.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => s.key.extend_from_slice(&a.octets()),
                },
                HashOn::Header(name) => {
                    if let Some(v) = header_value(p.headers, name) {
                        s.key.extend_from_slice(v);
                    }
                }
                HashOn::Cookie(name) => {
                    if let Some(v) = cookie_value(p.headers, name) {
                        s.key.extend_from_slice(v);
                    }
                }
            }
        }
    }
    let mut plan = Plan::forward();
    if let Some(prefix) = &cfg.rewrite_prefix {
        if let Some(n) = strip_prefix_len(&cfg.matches.path, p.target) {
            plan.strip = n;
            plan.prefix = prefix.as_bytes();
        }
    }
    plan.add = &cfg.request_headers.add;
    plan.remove = &cfg.request_headers.remove;
    plan.upgrades = cfg.upgrades_in(&table.config);
    plan.forward_expect = cfg.forwards_expect(&table.config);
    plan.trace_start = table.config.trace_start;
    plan.span_id = ids.0;
    plan.new_trace = ids.1;
    (plan, Some(i), Verdict::Forward)
}

/// The client address policy sees: the peer, or X-Forwarded-For when the peer is trusted.
fn real_client(table: &Table, peer: IpAddr, p: &Parsed<'_>) -> IpAddr {
    if table.trusted.is_empty() || !table.trusted.contains(peer) {
        return peer;
    }
    // The last hops are the ones a trusted proxy appended: keep the last 8 header lines, in order.
    let mut values: [&[u8]; 8] = [b""; 8];
    let mut n = 0;
    for h in p
        .headers
        .iter()
        .rev()
        .filter(|h| name_is(h.name, "x-forwarded-for"))
        .take(values.len())
    {
        n += 1;
        values[values.len() - n] = h.value;
    }
    crate::policy::trusted::client_ip(peer, &table.trusted, &values[values.len() - n..])
}
