//! The downstream layer of the request path: protocol front-ends that turn what a client sends
//! into requests for the pipeline: the HTTP/1.1 connection (keep-alive, pipelining, the idle
//! sleep without buffers, PROXY headers), the tunnel after a `101`, and the HTTP/2 connection
//! (h2/: h2c chosen by its preface in `conn.rs`), one task and one pipeline call per stream.
//! Imports the pipeline and the upstream layer, never the other way. Shard thread.

pub mod client;
pub mod conn;
mod h1;
pub mod h2;
mod head;
pub mod idle;
pub mod tls;
mod tunnel;
mod wait;
