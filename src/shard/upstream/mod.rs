//! The upstream layer of the request path: this shard's view of the clusters (endpoints with
//! their pools, breakers, EWMA and health), keep-alive pools with their connection caps and
//! waiting queue, and the HTTP/1.1 client side of one attempt (head and body out, response back
//! to the client's side, `Expect` handling, splice for large bodies between plain TCP sockets;
//! a sibling for a client that is an HTTP/2 stream, h1_from_h2.rs), over plain TCP or TLS
//! connections (stream.rs); for clusters that speak HTTP/2 (`protocol = "h2"`/`"h2c"`), a pool of
//! multiplexed connections per endpoint (h2pool.rs, each driven by its task in h2conn.rs) and the
//! attempt over one stream for either client kind (h2_from_h1.rs with h2_body_from_h1.rs,
//! h2_from_h2.rs, sharing h2stream.rs, and replay.rs: the body a refused stream had taken, sent again).
//! It imports neither the pipeline above it nor the protocol front-ends. Shard thread only.

pub mod attempt;
pub mod body;
pub mod cluster;
pub mod expect;
pub mod grpc_web;
pub mod h1;
pub mod h1_from_h2;
pub mod h2_body_from_h1;
pub mod h2_from_h1;
pub mod h2_from_h2;
pub mod h2conn;
pub mod h2pool;
pub mod h2stream;
pub mod pool;
pub mod relay;
pub mod replay;
pub mod splice;
pub mod stream;
