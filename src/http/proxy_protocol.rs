//! STUB (replaced by the edge branch).
use std::net::SocketAddr;
pub enum Parsed { Complete { consumed: usize, source: Option<SocketAddr>, destination: Option<SocketAddr> }, Partial }
#[derive(Debug)]
pub enum ProxyError { Invalid, Unsupported, TooLong }
pub fn parse(_b: &[u8]) -> Result<Parsed, ProxyError> { Err(ProxyError::Invalid) }
