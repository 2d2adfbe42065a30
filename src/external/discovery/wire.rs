//! One DNS question and its answer over the network: the message encoded and decoded by
//! `hickory-proto` (no hand-written parser), sent over UDP with a timeout, asked again over TCP
//! when the UDP answer is truncated; each resolver in turn until one answers. Discovery thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// Why a lookup gave no usable answer; the last-known endpoints serve on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No resolver answered in time (or none could be reached).
    Timeout,
    /// SERVFAIL (or another error code but REFUSED).
    ServFail,
    /// REFUSED: this server will not answer this question (some answer A and refuse AAAA).
    Refused,
    /// The name does not exist.
    NxDomain,
    /// The name exists but has no record of the type asked for.
    Empty,
    /// An answer that does not parse, or a name that cannot be asked.
    Malformed,
}

impl Failure {
    /// The `result` label of `shardgate_discovery_refreshes_total` and the word in the logs.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::ServFail => "servfail",
            Failure::Refused => "refused",
            Failure::NxDomain => "nxdomain",
            Failure::Empty => "empty",
            Failure::Malformed => "malformed",
        }
    }
}

/// Asks each resolver in turn for `name`'s records of type `rtype`; the first that answers
/// (any response code) decides. NOERROR with no answer comes back as an empty message.
pub fn ask(
    resolvers: &[SocketAddr],
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Message, Failure> {
    let name = Name::from_ascii(name).map_err(|_| Failure::Malformed)?;
    let mut last = Failure::Timeout;
    for r in resolvers {
        let id = query_id();
        let mut q = Message::new(id, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(name.clone(), rtype));
        let bytes = q.to_vec().map_err(|_| Failure::Malformed)?;
        let answer = match udp(*r, &bytes, id, timeout) {
            Ok(m) if m.metadata.truncation => tcp(*r, &bytes, id, timeout),
            other => other,
        };
        match answer {
            Ok(m) => {
                return match m.metadata.response_code {
                    ResponseCode::NoError => Ok(m),
                    ResponseCode::NXDomain => Err(Failure::NxDomain),
                    ResponseCode::Refused => Err(Failure::Refused),
                    _ => Err(Failure::ServFail),
                }
            }
            Err(f) => last = f,
        }
    }
    Err(last)
}

/// A query id from the clock and the process id (not a security boundary: the resolvers are
/// the operator's own, and an answer must echo the id and come from the address asked).
fn query_id() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ std::process::id().rotate_left(16)) as u16
}

fn udp(to: SocketAddr, query: &[u8], id: u16, timeout: Duration) -> Result<Message, Failure> {
    let local: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(local).map_err(|_| Failure::Timeout)?;
    sock.connect(to).map_err(|_| Failure::Timeout)?;
    sock.send(query).map_err(|_| Failure::Timeout)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Timeout);
        }
        sock.set_read_timeout(Some(left))
            .map_err(|_| Failure::Timeout)?;
        // A refused port (ICMP) or the timeout: this resolver does not answer.
        let n = sock.recv(&mut buf).map_err(|_| Failure::Timeout)?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id && m.metadata.message_type == MessageType::Response => {
                return Ok(m)
            }
            // A stray or late datagram: keep waiting for ours.
            _ => continue,
        }
    }
}

fn tcp(to: SocketAddr, query: &[u8], id: u16, timeout: Duration) -> Result<Message, Failure> {
    let mut s = TcpStream::connect_timeout(&to, timeout).map_err(|_| Failure::Timeout)?;
    s.set_read_timeout(Some(timeout))
        .and_then(|_| s.set_write_timeout(Some(timeout)))
        .map_err(|_| Failure::Timeout)?;
    let len = u16::try_from(query.len()).map_err(|_| Failure::Malformed)?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    s.write_all(&out).map_err(|_| Failure::Timeout)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(|_| Failure::Timeout)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).map_err(|_| Failure::Timeout)?;
    match Message::from_vec(&buf) {
        Ok(m) if m.metadata.id == id => Ok(m),
        _ => Err(Failure::Malformed),
    }
}
