//! Endpoints found through DNS, as written: `dns:HOST:PORT [weight=N]` (every A and AAAA record
//! of HOST is an endpoint on PORT) and `srv:_service._proto.name` (the SRV targets, ports and
//! weights of the lowest reachable priority class, RFC 2782, then their A/AAAA records), plus
//! the names the endpoints found get (`HOST:PORT@IP`: unique per address, the host part kept
//! for TLS SNI).
//! Pure data: parsed on the main thread, looked up by the coordinator's discovery thread.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What a `dns:` or `srv:` endpoint asks DNS for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DnsName {
    /// `dns:HOST:PORT`: the A and AAAA records of `host`, each on `port`.
    Addrs { host: String, port: u16 },
    /// `srv:NAME`: the SRV records of `name`.
    Srv { name: String },
}

/// One discovery endpoint as written; its weight applies to every address it finds (`dns:`
/// only: SRV records carry their own weights).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Discover {
    pub name: DnsName,
    pub weight: u32,
}

/// How often a discovered name is asked again at least (the TTL is clamped up to it), unless
/// the cluster's `resolve_interval` says otherwise.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(1);

impl Discover {
    /// `dns:HOST:PORT` or `srv:NAME` (without the weight); `None` when `text` is neither form.
    pub fn parse(text: &str, weight: Option<u32>) -> Option<Result<Discover, String>> {
        if let Some(rest) = text.strip_prefix("dns:") {
            return Some(parse_addrs(rest, weight.unwrap_or(1)));
        }
        let rest = text.strip_prefix("srv:")?;
        if weight.is_some() {
            return Some(Err(format!(
                "{text:?}: srv: endpoints take their weights from the SRV records, not weight=N"
            )));
        }
        Some(parse_srv(rest))
    }

    /// As written in the config (`dns:api.internal:80 weight=2`, `srv:_http._tcp.api`).
    pub fn written(&self) -> String {
        match &self.name {
            DnsName::Addrs { host, port } if self.weight == 1 => format!("dns:{host}:{port}"),
            DnsName::Addrs { host, port } => format!("dns:{host}:{port} weight={}", self.weight),
            DnsName::Srv { name } => format!("srv:{name}"),
        }
    }
}

fn parse_addrs(rest: &str, weight: u32) -> Result<Discover, String> {
    let bad = || format!("\"dns:{rest}\": expected dns:HOST:PORT (like dns:api.internal:8080)");
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    check_host(host).map_err(|m| format!("\"dns:{rest}\": {m}"))?;
    Ok(Discover {
        name: DnsName::Addrs {
            host: host.to_string(),
            port,
        },
        weight,
    })
}

fn parse_srv(name: &str) -> Result<Discover, String> {
    check_host(name).map_err(|m| format!("\"srv:{name}\": {m}"))?;
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 3 || !labels[0].starts_with('_') || !labels[1].starts_with('_') {
        return Err(format!(
            "\"srv:{name}\": expected srv:_service._proto.name (like srv:_http._tcp.api.internal)"
        ));
    }
    Ok(Discover {
        name: DnsName::Srv {
            name: name.to_string(),
        },
        weight: 1,
    })
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`, 1 to 63 bytes each.
fn check_host(host: &str) -> Result<(), String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return Err("not a DNS name".into());
    }
    if host.parse::<IpAddr>().is_ok() {
        return Err("an IP address needs no DNS: write it without dns:".into());
    }
    for label in host.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!("{label:?} is not a DNS label"));
        }
    }
    Ok(())
}

/// The name of a discovered endpoint: `HOST:PORT@IP` (the port is the endpoint's).
pub fn endpoint_name(host: &str, addr: SocketAddr) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    format!("{host}:{}@{}", addr.port(), addr.ip())
}

/// Whether an endpoint came from DNS discovery (only those names carry an `@`).
pub fn is_discovered(endpoint: &str) -> bool {
    endpoint.contains('@')
}

/// The `host:port` part of an endpoint name, for TLS SNI (the whole name when not discovered).
pub fn host_port(endpoint: &str) -> &str {
    endpoint.split_once('@').map_or(endpoint, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_and_srv_forms_parse_and_write_back() {
        let d = Discover::parse("dns:api.internal:8080", Some(3))
            .unwrap()
            .unwrap();
        assert_eq!(
            d.name,
            DnsName::Addrs {
                host: "api.internal".into(),
                port: 8080
            }
        );
        assert_eq!(d.written(), "dns:api.internal:8080 weight=3");
        let s = Discover::parse("srv:_http._tcp.api.consul", None)
            .unwrap()
            .unwrap();
        assert_eq!(s.written(), "srv:_http._tcp.api.consul");
        assert!(Discover::parse("api.internal:80", None).is_none());
    }

    #[test]
    fn bad_forms_are_refused_with_the_form_to_use() {
        for bad in [
            "dns:api.internal",
            "dns:api.internal:0",
            "dns:api.internal:http",
            "dns::80",
            "dns:bad host:80",
            "dns:127.0.0.1:80",
            "srv:api.internal",
            "srv:_http.api",
        ] {
            let e = Discover::parse(bad, None).unwrap().unwrap_err();
            assert!(e.contains("dns:") || e.contains("srv:"), "{bad}: {e}");
        }
        let e = Discover::parse("srv:_http._tcp.api", Some(2))
            .unwrap()
            .unwrap_err();
        assert!(e.contains("weight"), "{e}");
    }

    #[test]
    fn discovered_names_keep_the_host_for_sni() {
        let n = endpoint_name("api.internal.", "[::1]:80".parse().unwrap());
        assert_eq!(n, "api.internal:80@::1");
        assert!(is_discovered(&n));
        assert_eq!(host_port(&n), "api.internal:80");
        assert_eq!(host_port("127.0.0.1:80"), "127.0.0.1:80");
        assert!(!is_discovered("127.0.0.1:80"));
    }
}
