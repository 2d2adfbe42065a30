//! STUB (replaced by the ops branch).
pub enum Ask { Healthz, Readyz, Metrics, Config, Shards, Drain, Reload }
pub struct Reply { pub status: u16, pub content_type: &'static str, pub body: String }
pub struct AdminCall { pub ask: Ask, pub reply: crossbeam_channel::Sender<Reply> }
pub fn spawn(_l: std::net::TcpListener, _c: crossbeam_channel::Sender<AdminCall>) -> std::io::Result<std::thread::JoinHandle<()>> { Ok(std::thread::spawn(|| {})) }
