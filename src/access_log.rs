//! STUB (replaced by the ops branch).
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
pub enum Target { Off, Stdout, File(std::path::PathBuf) }
impl std::str::FromStr for Target { type Err = String; fn from_str(s: &str) -> Result<Self, String> { Ok(match s { "off" => Target::Off, "stdout" => Target::Stdout, p => Target::File(p.into()) }) } }
pub struct Writer;
impl Writer { pub fn start(_t: Target) -> std::io::Result<Writer> { Ok(Writer) } pub fn shard_log(&self) -> ShardLog { ShardLog } pub fn reopen(&self) {} pub fn stop(self) {} }
pub struct ShardLog;
impl ShardLog { pub fn enabled(&self) -> bool { false } pub fn log(&self, _e: &Entry<'_>) {} pub fn flush(&self) {} }
pub struct Entry<'a> { pub time: SystemTime, pub client: SocketAddr, pub method: &'a [u8], pub path: &'a [u8], pub status: u16, pub bytes_in: u64, pub bytes_out: u64, pub upstream: Option<SocketAddr>, pub upstream_time: Option<Duration>, pub total_time: Duration, pub request_id: &'a [u8], pub trace_id: Option<&'a [u8]>, pub shard: usize, pub route: &'a str }
