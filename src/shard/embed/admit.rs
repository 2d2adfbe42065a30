//! Admission of a library request, as the proxy's admission does it for a downstream one: the
//! route (`[[routes]]`, first match), the route's body limit, its rate limit (a `scope =
//! "global"` one first under the verdict of the client's limits thread, `outside.rs`), a direct
//! answer, the balancer's hash key, then the exchange with the route's cluster (send.rs).
//! Embedding thread.

use bytes::Bytes;

use super::send::{self, Target};
use super::{body, head, Error, Inner, Request, Response, ResponseBody};
use crate::config::RateKey;
use crate::http::lookup::{cookie_value, header_value};
use crate::policy::balance::{Algorithm, HashOn};
use crate::policy::ratelimit::Decision;
use crate::policy::route::RouteInput;
use crate::shard::table::Table;

/// The most request header fields routing looks at (more are sent, not matched on).
const ROUTE_HEADERS: usize = 64;

/// Routes `req` and sends it to its route's cluster (or answers it directly).
pub async fn send(inner: &Inner, req: Request) -> Result<Response, Error> {
    let table = inner.table();
    let (parts, body) = req.into_parts();
    let mut raw = [httparse::EMPTY_HEADER; ROUTE_HEADERS];
    let n = parts.headers.len().min(ROUTE_HEADERS);
    for (slot, (name, value)) in raw.iter_mut().zip(parts.headers.iter()) {
        *slot = httparse::Header {
            name: name.as_str(),
            value: value.as_bytes(),
        };
    }
    let headers = &raw[..n];
    let input = RouteInput {
        method: parts.method.as_str().as_bytes(),
        host: head::host_of(&parts).unwrap_or(b""),
        target: head::target_of(&parts).as_bytes(),
        headers,
    };
    let i = table.router.find(&input).ok_or(Error::NoRoute)?;
    let cfg = &table.config.routes[i];
    let view = &table.routes[i];
    let declared = match body.kind() {
        body::Kind::Empty => Some(0),
        body::Kind::Full(b) => Some(b.len() as u64),
        body::Kind::Stream { length, .. } => *length,
    };
    if let (Some(max), Some(len)) = (cfg.max_body, declared) {
        if len > max {
            return Err(Error::TooLarge);
        }
    }
    if let (Some(limiter), Some(rl)) = (&view.limiter, &cfg.rate_limit) {
        let header = match &rl.key {
            RateKey::Header(name) => header_value(headers, name),
            RateKey::ClientIp => None,
        };
        // The program is the client: `client_ip` keys give one bucket per client.
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let global = rl.global.is_some();
        let key = crate::shard::table::rate_key(&rl.key, global, ip, header);
        let now = std::time::Instant::now();
        // A `scope = "global"` limit asks the fleet-wide verdict of the client's limits thread
        // first (a key over the allowance spends no local token), then counts what it admits.
        let denied = global.then(|| table.global.denied(i as u32, key, now));
        let retry_after = match denied.flatten() {
            Some(retry_after) => Some(retry_after),
            None => match limiter.take(key, now) {
                Decision::Limited { retry_after, .. } => Some(retry_after),
                Decision::Allowed { .. } => {
                    if global {
                        table.global.record(i as u32, key);
                    }
                    None
                }
            },
        };
        if let Some(retry_after) = retry_after {
            view.stats
                .rate_limited
                .set(view.stats.rate_limited.get() + 1);
            return Err(Error::RateLimited { retry_after });
        }
    }
    if let Some(d) = &cfg.direct {
        view.stats.record(d.status, std::time::Duration::ZERO);
        return Ok(direct(d));
    }
    let cluster = cfg.cluster.ok_or(Error::NoRoute)?;
    let hash_key = hash_key(&table, cluster, headers).unwrap_or(b"");
    let target = Target {
        table: &table,
        cluster: &table.clusters[cluster],
        route: Some((view, cfg)),
        key: hash_key,
    };
    send::exchange(inner, &target, &parts, body).await
}

/// A route's direct answer as a response.
fn direct(d: &crate::config::Direct) -> Response {
    let mut resp = Response::new(ResponseBody::local(Bytes::from(d.body.clone())));
    *resp.status_mut() = http::StatusCode::from_u16(d.status).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(&d.content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

/// The balancer's hash key for a request to `cluster`: the header or cookie its `hash` names
/// (a `client_ip` hash has one client here: no key).
fn hash_key<'h>(
    table: &Table,
    cluster: usize,
    headers: &'h [httparse::Header<'h>],
) -> Option<&'h [u8]> {
    match &table.config.clusters[cluster].lb {
        Algorithm::Hash(HashOn::Header(name)) => header_value(headers, name),
        Algorithm::Hash(HashOn::Cookie(name)) => cookie_value(headers, name),
        _ => None,
    }
}
