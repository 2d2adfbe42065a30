//! What one `dns:` or `srv:` endpoint finds: the A and AAAA records of a host (each address an
//! endpoint), or the SRV targets of the lowest priority class that has a target with an address
//! (RFC 2782) with their ports, weights and addresses (from the answer's additional section,
//! else asked for); and the shortest TTL among the records used. Discovery thread.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};

use super::wire::{ask, Failure};
use crate::config::discovery::endpoint_name;
use crate::config::{Discover, DnsName, Endpoint};

/// The endpoints a name stands for now (sorted by name) and how long that holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub endpoints: Vec<Endpoint>,
    pub ttl: Duration,
}

/// Looks `d` up against `resolvers`, each question bounded by `timeout`.
pub fn lookup(d: &Discover, resolvers: &[SocketAddr], timeout: Duration) -> Result<Found, Failure> {
    let mut found = match &d.name {
        DnsName::Addrs { host, port } => {
            let (ips, ttl) = addresses(resolvers, host, timeout, None)?;
            let endpoints = (ips.into_iter())
                .map(|ip| endpoint(host, SocketAddr::new(ip, *port), d.weight))
                .collect();
            Found { endpoints, ttl }
        }
        DnsName::Srv { name } => srv(resolvers, name, timeout)?,
    };
    found.endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    found.endpoints.dedup_by(|a, b| a.name == b.name);
    Ok(found)
}

fn endpoint(host: &str, addr: SocketAddr, weight: u32) -> Endpoint {
    Endpoint {
        name: endpoint_name(host, addr),
        addr,
        weight,
    }
}

/// Every A and AAAA address of `host` and the shortest TTL among them; the records may come
/// from an SRV answer's additional section (`given`) instead of two questions.
fn addresses(
    resolvers: &[SocketAddr],
    host: &str,
    timeout: Duration,
    given: Option<&Message>,
) -> Result<(Vec<IpAddr>, Duration), Failure> {
    if let Some(m) = given {
        let found = records_for(m.additionals.iter(), host);
        if !found.0.is_empty() {
            return Ok(found);
        }
    }
    let mut ips = Vec::new();
    let mut ttl = None::<Duration>;
    let mut missing = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA] {
        match ask(resolvers, host, rtype, timeout) {
            Ok(m) => {
                let (mut found, t) = records_for(m.answers.iter(), "");
                if !found.is_empty() {
                    ttl = Some(ttl.map_or(t, |x| x.min(t)));
                }
                ips.append(&mut found);
            }
            // A host with only A records says NOERROR with no AAAA (some servers say NXDOMAIN
            // or REFUSED for the other type): only both missing means no address.
            Err(f @ (Failure::NxDomain | Failure::Empty | Failure::Refused)) => missing.push(f),
            Err(f) => return Err(f),
        }
    }
    match (ttl, missing.as_slice()) {
        (Some(ttl), _) => Ok((ips, ttl)),
        (None, [a, b]) if a == b => Err(*a),
        (None, _) => Err(Failure::Empty),
    }
}

/// The A/AAAA addresses among `records` (owned by `host`, any owner when empty; a CNAME chain
/// in an answer ends at the addresses) and their shortest TTL.
fn records_for<'a>(
    records: impl Iterator<Item = &'a hickory_proto::rr::Record>,
    host: &str,
) -> (Vec<IpAddr>, Duration) {
    let want = host.trim_end_matches('.');
    let mut ips = Vec::new();
    let mut ttl = u32::MAX;
    for r in records {
        let owner = r.name.to_ascii();
        if !want.is_empty() && !owner.trim_end_matches('.').eq_ignore_ascii_case(want) {
            continue;
        }
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        ips.push(ip);
        ttl = ttl.min(r.ttl);
    }
    (ips, Duration::from_secs(u64::from(ttl)))
}

/// One SRV record: priority, weight, port, target and TTL.
type Srv = (u16, u16, u16, String, u32);

/// The lowest priority class of `name`'s SRV records with a target that has an address, each
/// target's addresses an endpoint. A class whose every target has no address (its host gone
/// from DNS) cannot be reached: the next one serves (RFC 2782: the lowest-numbered priority
/// the client can reach).
fn srv(resolvers: &[SocketAddr], name: &str, timeout: Duration) -> Result<Found, Failure> {
    let m = ask(resolvers, name, RecordType::SRV, timeout)?;
    let records: Vec<Srv> = (m.answers.iter())
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.priority, s.weight, s.port, s.target.to_ascii(), r.ttl)),
            _ => None,
        })
        // "." says the service is decidedly not available there (RFC 2782).
        .filter(|s| s.3 != "." && s.2 != 0)
        .collect();
    let mut priorities: Vec<u16> = records.iter().map(|s| s.0).collect();
    priorities.sort_unstable();
    priorities.dedup();
    for priority in priorities {
        let class: Vec<&Srv> = records.iter().filter(|s| s.0 == priority).collect();
        if let Some(found) = class_endpoints(resolvers, &m, &class, timeout)? {
            return Ok(found);
        }
    }
    Err(Failure::Empty)
}

/// The endpoints of one priority class (`None`: no target has an address); its shortest TTL.
fn class_endpoints(
    resolvers: &[SocketAddr],
    answer: &Message,
    class: &[&Srv],
    timeout: Duration,
) -> Result<Option<Found>, Failure> {
    let top = class.iter().map(|s| s.1).max().unwrap_or(0);
    let mut ttl = Duration::from_secs(u64::from(
        class.iter().map(|s| s.4).min().unwrap_or(u32::MAX),
    ));
    let mut endpoints = Vec::new();
    for (_, weight, port, target, _) in class.iter().copied() {
        let (ips, t) = match addresses(resolvers, target, timeout, Some(answer)) {
            Ok(found) => found,
            // A target without an address is left out; the others still serve.
            Err(Failure::NxDomain | Failure::Empty | Failure::Refused) => continue,
            Err(f) => return Err(f),
        };
        ttl = ttl.min(t);
        for ip in ips {
            let w = scale(*weight, top);
            endpoints.push(endpoint(target, SocketAddr::new(ip, *port), w));
        }
    }
    Ok((!endpoints.is_empty()).then_some(Found { endpoints, ttl }))
}

/// An SRV weight (0..=65535) as an endpoint weight (1..=1000), in proportion to the class's
/// largest; weight 0 (a target "very small chance" should pick) becomes 1.
fn scale(weight: u16, top: u16) -> u32 {
    let w = u32::from(weight);
    let w = if top > 1000 {
        w * 1000 / u32::from(top)
    } else {
        w
    };
    w.max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn srv_weights_keep_their_proportions_within_endpoint_weights() {
        assert_eq!(super::scale(10, 30), 10);
        assert_eq!(super::scale(0, 30), 1);
        assert_eq!(super::scale(65535, 65535), 1000);
        assert_eq!(super::scale(16384, 65535), 250);
    }
}
