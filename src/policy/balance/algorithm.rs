//! Balancing algorithms as the config names them: [`Algorithm`] and [`HashOn`], parsed from and
//! printed back to their config spelling. Pure data, parsed with the config (main thread at start,
//! coordinator on reload) and read by each shard thread when it builds a [`super::Balancer`].

use std::str::FromStr;

/// What a hash balancer hashes so that one client keeps landing on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// The client's IP address octets; pass those of `IpAddr::to_canonical()` so that a v4
    /// client hashes alike whether it arrived over IPv4 or as a v4-mapped IPv6 address.
    ClientIp,
    /// The value of this request header; the name is kept in lower case.
    Header(String),
    /// The value of this cookie; cookie names are case-sensitive and kept as written.
    Cookie(String),
}

/// A balancing algorithm as named in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    /// Smooth weighted round-robin, as nginx does it.
    Weighted,
    /// Power of two random choices over requests in flight on this shard.
    LeastRequest,
    /// Power of two random choices over [`PeakEwma`](super::PeakEwma) cost.
    PeakEwma,
    Random,
    /// Maglev consistent hashing of a per-request key.
    Hash(HashOn),
}

pub(super) const CHOICES: &str =
    "round-robin, weighted, least-request, ewma, random, hash:client-ip, \
                       hash:header:NAME, hash:cookie:NAME";

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "round-robin" => Algorithm::RoundRobin,
            "weighted" => Algorithm::Weighted,
            "least-request" => Algorithm::LeastRequest,
            "ewma" => Algorithm::PeakEwma,
            "random" => Algorithm::Random,
            "hash:client-ip" => Algorithm::Hash(HashOn::ClientIp),
            _ => {
                if let Some(name) = s.strip_prefix("hash:header:") {
                    Algorithm::Hash(HashOn::Header(token(name, "header")?.to_ascii_lowercase()))
                } else if let Some(name) = s.strip_prefix("hash:cookie:") {
                    Algorithm::Hash(HashOn::Cookie(token(name, "cookie")?.to_string()))
                } else {
                    return Err(format!(
                        "unknown balancing algorithm {s:?}; expected one of: {CHOICES}"
                    ));
                }
            }
        })
    }
}

/// `name` when it is a valid HTTP token (RFC 9110 `tchar`), which header and cookie names are.
fn token<'a>(name: &'a str, what: &str) -> Result<&'a str, String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!(
            "invalid {what} name {name:?} (a non-empty HTTP token); expected one of: {CHOICES}"
        ));
    }
    Ok(name)
}

impl Algorithm {
    /// The config-file spelling; `name().parse()` gives back an equal algorithm.
    pub fn name(&self) -> String {
        match self {
            Algorithm::RoundRobin => "round-robin".into(),
            Algorithm::Weighted => "weighted".into(),
            Algorithm::LeastRequest => "least-request".into(),
            Algorithm::PeakEwma => "ewma".into(),
            Algorithm::Random => "random".into(),
            Algorithm::Hash(HashOn::ClientIp) => "hash:client-ip".into(),
            Algorithm::Hash(HashOn::Header(n)) => format!("hash:header:{n}"),
            Algorithm::Hash(HashOn::Cookie(n)) => format!("hash:cookie:{n}"),
        }
    }
}
