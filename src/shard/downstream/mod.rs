//! The downstream layer of the request path: protocol front-ends that turn what a client sends
//! into requests for the pipeline. Today the HTTP/1.1 connection (keep-alive, pipelining, the
//! idle sleep without buffers, PROXY headers) and the tunnel after a `101`; an HTTP/2 connection
//! will sit beside `conn.rs`, one pipeline call per stream. Imports the pipeline and the upstream
//! layer, never the other way. Shard thread.

pub mod client;
pub mod conn;
mod h1;
mod head;
pub mod idle;
pub mod tls;
mod tunnel;
mod wait;
